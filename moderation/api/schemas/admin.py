"""Request and response models of the admin API: thresholds, tokens, action rules."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from moderation.domain import RiskTier
from moderation.thresholds.tiers import LADDER

from .common import CleanStr, DbId

__all__ = [
    "CalibratedCategoryOut",
    "CalibrationOut",
    "ActionRulesIn",
    "ActionRulesInForceOut",
    "ActionRuleVersionOut",
    "PinIn",
    "RetentionDayOut",
    "RetentionOut",
    "RetentionRunOut",
    "RollbackIn",
    "ThresholdRollbackIn",
    "ThresholdSetIn",
    "ThresholdVersionOut",
    "TokenCreated",
    "TokenIn",
    "TokenOut",
]

Reason = CleanStr
_EXAMPLE = (0.2, 0.3, 0.4, 0.5)
Score = Annotated[
    float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)
]  # cut-offs of an example ladder
_REASON = Field(min_length=1, max_length=2000, description="Why (kept in the audit log).")


class ThresholdVersionOut(BaseModel):
    id: int
    category: str
    value: float = Field(description="The base (violation, medium-tier) cut-off.")
    cutoffs: dict[str, float] = Field(description="Tier → lowest score reaching it.")
    scale: str
    policy: str
    strategy: str
    reason: str
    created_by: str
    created_at: dt.datetime
    restored_from_id: int | None
    pinned: bool
    active: bool | None = Field(None, description="Whether it is its category's version.")
    stats: dict[str, Any] = Field(default_factory=dict)


class ThresholdSetIn(BaseModel):
    """Exactly one of ``base`` and ``cutoffs``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"base": 0.31, "reason": "too many false positives on beach photos"},
                {
                    "cutoffs": {t.value: v for t, v in zip(LADDER, _EXAMPLE, strict=True)},
                    "scale": "gme_cosine",
                    "reason": "policy review 2026-12",
                },
            ]
        },
    )

    base: Score | None = None
    cutoffs: dict[RiskTier, Score] | None = Field(
        None, description="The cut-off of every non-clear tier (warning … extreme)."
    )
    scale: CleanStr | None = Field(None, max_length=32, description="Default: the active's.")
    reason: Reason = _REASON


class ThresholdRollbackIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"to": 12, "reason": "bad calibration"}]}
    )

    to: DbId | None = Field(None, description="Version to restore (default: the previous).")
    reason: Reason | None = Field(None, min_length=1, max_length=2000)


class PinIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "holiday freeze"}]}
    )

    reason: Reason | None = Field(None, min_length=1, max_length=2000)


class TokenIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "upload-service", "role": "submitter"}]},
    )

    name: CleanStr = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
    role: Literal["submitter", "reviewer", "admin"]


class TokenOut(BaseModel):
    name: str
    role: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class TokenCreated(BaseModel):
    name: str
    role: str
    secret: str = Field(description="The bearer secret: shown once, only its hash is kept.")


class ActionRulesIn(BaseModel):
    """A new action rule set (docs/actions.md) and why."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "reason": "age-gate adult content instead of blurring it",
                    "rules": {
                        "order": ["allow", "blur", "age_restrict", "hold", "block"],
                        "default": {"action": "allow"},
                        "rules": [
                            {"category": "*", "tier": ["medium", "high"], "action": "blur"},
                            {"category": "*", "tier": "extreme", "action": "block",
                             "escalate": True},
                            {"category": "sexual", "tier": ["medium", "high"],
                             "action": "age_restrict"},
                            {"category": "*", "tier": ["medium", "high", "extreme"],
                             "source": "bank", "action": "block"},
                        ],
                    },
                }
            ]
        },
    )  # fmt: skip

    rules: dict[str, Any] = Field(description="order, default, rules (validated by the server).")
    reason: Reason = _REASON


class RollbackIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"to": 3, "reason": "revert"}]}
    )

    to: DbId | None = Field(None, description="Version to restore (default: the previous).")
    reason: Reason | None = Field(None, min_length=1, max_length=2000)


class ActionRuleVersionOut(BaseModel):
    id: int
    rules: dict[str, Any]
    reason: str
    created_by: str
    created_at: dt.datetime
    restored_from_id: int | None


class ActionRulesInForceOut(BaseModel):
    source: Literal["version", "file", "packaged"] = Field(
        description="A DB version, MODERATION_ACTION_RULES_FILE, or the packaged default."
    )
    version_id: int | None
    rules: dict[str, Any]


class CalibratedCategoryOut(BaseModel):
    category: str
    scale: str
    n: int = Field(description="Labelled scores of the category.")
    positives: int = Field(description="Of them, violations.")
    appeals: int = Field(0, description="Of them, decided appeals (weighted labels).")
    threshold: float | None = Field(description="The chosen base (medium-tier) cut-off.")
    cutoffs: dict[str, float] | None = Field(description="The ladder the version would carry.")
    precision: float | None
    recall: float | None
    fpr: float | None
    bound: str | None = Field(description="The statistical guarantee behind the choice.")
    previous_version_id: int | None
    previous_value: float | None
    version_id: int | None = Field(description="The version written (apply=true), else None.")
    error: str | None = Field(description="Why no threshold could be chosen (then nothing is "
                              "written for any category).")  # fmt: skip


class CalibrationOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "strategy": "recall_target",
                    "params": {"recall": 0.95, "delta": 0.05},
                    "model_ids": ["fake-cosine"],
                    "written": False,
                    "categories": [
                        {
                            "category": "weapons", "scale": "gme_cosine", "n": 400,
                            "positives": 120, "appeals": 0, "threshold": 0.2731,
                            "cutoffs": {t.value: v for t, v in zip(
                                LADDER, (0.2481, 0.2731, 0.3131, 0.3631), strict=True
                            )},
                            "precision": 0.81, "recall": 0.967, "fpr": 0.098,
                            "bound": "exact binomial (Clopper–Pearson) order statistic …",
                            "previous_version_id": 4, "previous_value": 0.3,
                            "version_id": None, "error": None,
                        }
                    ],
                }
            ]
        }
    )  # fmt: skip

    strategy: str
    params: dict[str, float]
    model_ids: list[str] = Field(description="The scorer behind stored scores (none for given).")
    written: bool = Field(description="Whether versions were written (apply=true).")
    categories: list[CalibratedCategoryOut]


class RetentionDayOut(BaseModel):
    day: dt.date
    clear: int = Field(description="Images of clear jobs whose bytes were deleted that day.")
    reviewed: int = Field(description="Images of reviewed non-violations, the same.")
    bytes: int


class RetentionOut(BaseModel):
    """The retention policy in force and what it deleted per day (docs/security.md)."""

    clear_days: int = Field(description="MODERATION_RETENTION_CLEAR_DAYS")
    reviewed_days: int = Field(description="MODERATION_RETENTION_REVIEWED_DAYS")
    interval_s: int = Field(description="MODERATION_RETENTION_INTERVAL_S (0: no beat runs)")
    by_day: list[RetentionDayOut] = Field(description="The last 14 days with a run, newest first.")


class RetentionRunOut(BaseModel):
    dry_run: bool
    purged: int = Field(description="Images whose bytes were (dry run: would be) deleted.")
    purged_clear: int
    purged_reviewed: int
    purged_bytes: int
    errors: int = Field(description="Blob-store copies that could not be deleted (logged).")
