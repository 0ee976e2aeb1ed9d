"""Bodies of the ``/v1/jobs`` resource."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from moderation.services.jobs import JobView

__all__ = [
    "BankMatchOut",
    "BatchSubmission",
    "JobAccepted",
    "JobList",
    "JobOut",
    "JsonSubmission",
    "ScoreOut",
]


class JsonSubmission(BaseModel):
    """One image as base64 in JSON (the multipart form takes the same fields)."""

    image_base64: str = Field(description="The image bytes, base64-encoded.")
    external_id: str | None = Field(None, max_length=200, description="Your id for this upload.")
    callback_url: str | None = Field(
        None, max_length=2000, description="POSTed the decision when its tier is high enough."
    )
    priority: int = Field(0, ge=0, le=9, description="0 (default) … 9 (most urgent).")


class BatchSubmission(BaseModel):
    jobs: list[JsonSubmission] = Field(min_length=1)


class JobAccepted(BaseModel):
    id: int
    status: str
    sha256: str
    external_id: str | None = None
    url: str


class ScoreOut(BaseModel):
    category: str
    score: float
    tier: str
    source: str
    phrasing: str | None = None


class BankMatchOut(BaseModel):
    """The hash-bank entry that decided (or floored, or was recorded for) a job."""

    entry_id: int
    bank: str = Field(description="confirmed_violation or benign.")
    category: str | None
    distance: int | None = Field(description="PDQ Hamming distance, 0–256 (≤ threshold).")
    enabled: bool = Field(description="Whether the entry is enabled now.")
    reason: str | None = None


class JobOut(BaseModel):
    id: int
    status: str
    sha256: str
    external_id: str | None
    priority: int
    attempts: int
    error_code: str | None
    error: str | None
    submitted_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    scorer: str | None
    catalog_version: str | None
    tier: str | None
    action: str | None
    category: str | None
    policy: str | None
    threshold_versions: dict[str, Any]
    callback_state: str | None
    bank_match: BankMatchOut | None = Field(
        None, description="Set when a hash-bank entry matched the image (why it matched)."
    )
    scores: list[ScoreOut]

    @classmethod
    def of(cls, view: JobView) -> JobOut:
        return cls(
            id=view.id,
            status=str(view.status),
            sha256=view.sha256,
            external_id=view.external_id,
            priority=view.priority,
            attempts=view.attempts,
            error_code=view.error_code,
            error=view.error,
            submitted_at=view.submitted_at,
            started_at=view.started_at,
            finished_at=view.finished_at,
            scorer=view.scorer,
            catalog_version=view.catalog_version,
            tier=view.tier,
            action=view.action,
            category=view.category,
            policy=view.policy,
            threshold_versions=view.threshold_versions,
            callback_state=view.callback_state,
            bank_match=BankMatchOut(**vars(view.bank_match)) if view.bank_match else None,
            scores=[ScoreOut(**vars(s)) for s in view.scores],
        )


class JobList(BaseModel):
    jobs: list[JobOut]
    next_after_id: int | None = Field(
        None, description="Pass as after_id for the next page; null on the last page."
    )
