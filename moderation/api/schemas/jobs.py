"""Bodies of the ``/v1/jobs`` resource."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from moderation.services.jobs import JobView
from moderation.storage.refs import MAX_URI
from moderation.thresholds.scenarios import MAX_MATCH_TEXT

from .common import CleanStr

__all__ = [
    "BankMatchOut",
    "BatchSubmission",
    "CategoryEnforcementOut",
    "ContextIn",
    "EnforcementOut",
    "JobAccepted",
    "JobList",
    "JobOut",
    "JsonSubmission",
    "LegalHold",
    "ScoreOut",
]

# standard base64 with padding, exactly what base64.b64decode(validate=True) accepts
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


class ContextIn(BaseModel):
    """The seed's decision context (docs/policies.md): it moves this job's thresholds."""

    # strict: JSON types as declared (no false for 0, no "5" for 5); the multipart form,
    # whose values are all text, is validated with strict=False
    model_config = ConfigDict(extra="forbid", strict=True)

    candidates: int | None = Field(
        None, ge=0, le=1_000_000, description="Competing texts/listings: > 10 stricter, < 3 looser."
    )
    criticality: Literal["low", "normal", "high"] = Field(
        "normal", description="Cost of a wrong match: high stricter, low looser."
    )
    image_complexity: Literal["low", "normal", "high"] = Field(
        "normal", description="Busy images match many texts weakly: high stricter."
    )


class JsonSubmission(BaseModel):
    """One image as base64 in JSON, or its ``image_uri`` (the multipart form takes the same
    fields)."""

    model_config = ConfigDict(
        strict=True,
        # exactly one of the image's bytes and its location
        json_schema_extra={
            "oneOf": [{"required": ["image_base64"]}, {"required": ["image_uri"]}],
        },
    )

    # absent is None; an explicit null is refused (the schema has no null: see _no_null)
    image_base64: Annotated[str, Field(pattern=BASE64_PATTERN)] | SkipJsonSchema[None] = Field(
        None, description="The image bytes, base64-encoded (with padding). Or give image_uri."
    )
    image_uri: (
        Annotated[CleanStr, Field(min_length=1, max_length=MAX_URI)] | SkipJsonSchema[None]
    ) = Field(
        None,
        description="Where the image is: s3://bucket/key (an allowed bucket of the configured "
        "S3-compatible store) or file:///path (under the configured root); the worker reads "
        "it when it scores the job. No other scheme (http:// is refused).",
        examples=["s3://uploads/2026/12/06/abc.jpg"],
    )
    external_id: CleanStr | None = Field(
        None, max_length=200, description="Your id for this upload."
    )
    callback_url: CleanStr | None = Field(
        None, max_length=2000, description="POSTed the decision when its tier is high enough."
    )
    priority: int = Field(0, ge=0, le=9, description="0 (default) … 9 (most urgent).")
    match_text: CleanStr | None = Field(
        None,
        min_length=1,
        max_length=MAX_MATCH_TEXT,
        description="A text the image should match (e.g. a listing title): the decision "
        "carries match accept/review/reject. Needs an embedding backend (gme, fake).",
    )
    tags: bool | None = Field(
        None, description="Album tags for the image (default: the policy's, album_tagging on)."
    )
    context: ContextIn | None = Field(None, description="Decision context (docs/policies.md).")

    @field_validator("image_base64", "image_uri", mode="before")
    @classmethod
    def _no_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("leave the field out instead of null")
        return value

    @model_validator(mode="after")
    def _one_image(self) -> JsonSubmission:
        if (self.image_base64 is None) == (self.image_uri is None):
            raise ValueError("give exactly one of image_base64 and image_uri")
        return self


class BatchSubmission(BaseModel):
    """Several images; at most ``max_batch_jobs`` (256 by default, else 413)."""

    model_config = ConfigDict(strict=True)

    jobs: list[JsonSubmission] = Field(min_length=1)


class JobAccepted(BaseModel):
    id: int
    status: str
    sha256: str
    external_id: str | None = None
    url: str


class LegalHold(BaseModel):
    job_id: int
    image_id: int
    legal_hold: bool = Field(description="Retention never deletes the image's bytes while on.")


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


class MatchOut(BaseModel):
    score: float = Field(description="Image–text cosine of the embedding backend.")
    verdict: str = Field(description="accept, review or reject (docs/policies.md).")
    accept: float = Field(description="The accept cut-off applied (after context).")
    review: float = Field(description="The review cut-off applied (after context).")


class TagOut(BaseModel):
    label: str
    score: float
    confidence: float = Field(description="min(score / 0.5, 1), the seed's tag confidence.")


class CategoryEnforcementOut(BaseModel):
    action: str
    escalate: bool
    source: str = Field(description="Where the category's tier came from: model, bank, retro.")


class EnforcementOut(BaseModel):
    """What the action rules say the platform should do (docs/actions.md)."""

    action: str = Field(
        description="The most severe category action: allow, blur, age_restrict, hold, block "
        "or a custom action of the rules.",
        examples=["blur"],
    )
    escalate: bool = Field(description="A rule asks for human review of this item.")
    rules_version: int | None = Field(
        None, description="The action rule version applied; null: the rules file or default."
    )
    categories: dict[str, CategoryEnforcementOut] = Field(default_factory=dict)


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
    match_text: str | None = None
    context: dict[str, Any] | None = None
    match: MatchOut | None = Field(None, description="The image–text match of match_text.")
    tags: list[TagOut] | None = Field(None, description="Album tags, when the job got them.")
    scenario_error: str | None = Field(None, description="Why a match or tags were not made.")
    frame: int | None = Field(None, description="Animated images: the frame that decided.")
    decision_version: int | None = Field(None, description="2… after a re-decision.")
    decision_reason: str | None = Field(
        None, description="Why the last re-decision was made (retro_match: bank entry #…)."
    )
    enforcement: EnforcementOut | None = Field(
        None,
        description="The action rules' verdict; null until decided (or decided before the "
        "rules existed). `action` above is the review routing (allow, watch, review_now).",
    )
    confidence: dict[str, str | None] = Field(
        default_factory=dict,
        description="Per category: high, medium, low or none (the score against the "
        "category's observed p80/p40/p20); null while fewer than 20 scores are stored.",
    )

    @classmethod
    def of(cls, view: JobView, confidence: dict[str, str | None] | None = None) -> JobOut:
        scenario = view.scenario or {}
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
            match_text=view.match_text,
            context=view.context,
            match=MatchOut(**scenario["match"]) if "match" in scenario else None,
            tags=[TagOut(**t) for t in scenario["tags"]] if "tags" in scenario else None,
            scenario_error=scenario.get("error"),
            frame=view.frame,
            decision_version=view.decision_version,
            decision_reason=view.decision_reason,
            enforcement=EnforcementOut(**view.enforcement) if view.enforcement else None,
            confidence=confidence or {},
        )


class JobList(BaseModel):
    jobs: list[JobOut]
    next_after_id: int | None = Field(
        None, description="Pass as after_id for the next page; null on the last page."
    )
