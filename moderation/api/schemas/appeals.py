"""Request and response bodies of the appeals API."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from moderation.domain import RiskTier
from moderation.services.appeals import AppealRow

from .common import CleanStr

__all__ = ["AppealDecisionIn", "AppealIn", "AppealOut"]

# a tier's name, from the one per-tier table (strict models take no enum from JSON strings)
TierName = Literal[tuple(t.value for t in RiskTier)]  # type: ignore[valid-type]


class AppealIn(BaseModel):
    # strict: JSON types as declared
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"reason": "This is a museum photo of a statue."}]},
    )

    reason: Annotated[CleanStr, Field(min_length=1, max_length=2000)]


class AppealDecisionIn(BaseModel):
    """``upheld``, or ``overturned`` with the corrected ``tier``."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [{"outcome": "overturned", "tier": "clear", "note": "art, not nudity"}]
        },
    )

    outcome: Literal["upheld", "overturned"]
    tier: TierName | None = Field(None, description="The corrected tier (overturned only).")
    note: Annotated[CleanStr | None, Field(max_length=2000)] = None

    @model_validator(mode="after")
    def _tier_when_overturned(self) -> Self:
        if self.outcome == "overturned" and self.tier is None:
            raise ValueError("overturning needs the corrected tier")
        if self.outcome == "upheld" and self.tier is not None:
            raise ValueError("an upheld appeal keeps its tier: leave tier out")
        return self


class AppealOut(BaseModel):
    id: int
    job_id: int
    submitted_by: str
    reason: str
    status: str = Field(description="open or decided.")
    tier: str = Field(description="The appealed decision's tier.")
    category: str | None
    decision_version: int = Field(description="The appealed decision's version.")
    claimed_by: str | None
    claim_expires_at: dt.datetime | None
    outcome: str | None
    new_tier: str | None
    decided_by: str | None
    note: str | None
    created_at: dt.datetime
    decided_at: dt.datetime | None

    @classmethod
    def of(cls, row: AppealRow) -> AppealOut:
        return cls(**row.__dict__)
