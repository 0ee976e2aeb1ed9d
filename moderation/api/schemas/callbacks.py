"""Request and response bodies of the callbacks admin API."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from moderation.callbacks import redact_url
from moderation.services.callbacks import CallbackRow

from .common import DbId

__all__ = ["CallbackOut", "ResendIn", "ResendOut"]


class CallbackOut(BaseModel):
    job_id: int
    external_id: str | None
    url: str = Field(description="The callback URL without its userinfo.")
    state: str = Field(description="pending, sent, dead (a dead letter) or skipped.")
    attempts: int = Field(description="Dispatches tried since it last became due.")
    next_attempt_at: dt.datetime | None
    due_since: dt.datetime | None
    last_error: str | None
    finished_at: dt.datetime | None

    @classmethod
    def of(cls, row: CallbackRow) -> CallbackOut:
        return cls(
            job_id=row.job_id,
            external_id=row.external_id,
            url=redact_url(row.url),
            state=row.state,
            attempts=row.attempts,
            next_attempt_at=row.next_at,
            due_since=row.since,
            last_error=row.last_error,
            finished_at=row.finished_at,
        )


class ResendIn(BaseModel):
    """Either ``job_ids`` or ``all_dead``."""

    # strict: JSON types as declared (no false for 0, no "5" for 5)
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"job_ids": [42]}, {"all_dead": True}]},
    )

    job_ids: Annotated[list[DbId], Field(max_length=1000)] = Field(default_factory=list)
    all_dead: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if bool(self.job_ids) == self.all_dead:
            raise ValueError("give job_ids or all_dead: true (one of them)")
        return self


class ResendOut(BaseModel):
    resent: list[int] = Field(description="Jobs whose callback is due again now.")
    not_resendable: list[int] = Field(
        description="Asked-for jobs with no sent or dead callback (unknown, pending, skipped)."
    )
