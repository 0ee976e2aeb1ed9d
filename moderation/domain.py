"""Domain vocabulary shared by every layer: job states, risk tiers, review labels."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "TIERS",
    "BankKind",
    "JobStatus",
    "ReviewItemKind",
    "ReviewItemStatus",
    "ReviewLabel",
    "RiskTier",
    "ScoreSource",
    "TierLook",
]


class JobStatus(enum.StrEnum):
    """Life of a job. Terminal states: scored, failed, quarantined."""

    QUEUED = "queued"
    PROCESSING = "processing"
    SCORED = "scored"
    FAILED = "failed"  # the input is bad (undecodable, too large…): retrying cannot help
    QUARANTINED = "quarantined"  # delivery kept failing (crash, timeout) max_attempts times

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.SCORED, JobStatus.FAILED, JobStatus.QUARANTINED)


class RiskTier(enum.StrEnum):
    """Risk tiers of the content-safety policy, least to most severe (SEED-DIGEST §4)."""

    CLEAR = "clear"
    WARNING = "warning"  # "watch"
    MEDIUM = "medium"  # base threshold crossed: violation, "review now"
    HIGH = "high"
    EXTREME = "extreme"

    @property
    def rank(self) -> int:
        """0 (clear) … 4 (extreme); comparisons between tiers go through this."""
        return _TIER_ORDER.index(self)

    @property
    def is_violation(self) -> bool:
        return self.rank >= RiskTier.MEDIUM.rank


_TIER_ORDER = list(RiskTier)


@dataclass(frozen=True)
class TierLook:
    """What every surface shows and does for one tier (the content-safety defaults)."""

    action: str  # what the policy asks for: allow, watch, review_now
    colour: str  # charts, swatches and the decision line (dashboard)
    badge: str  # background of the tier badge (review page)
    terminal: str  # rich style in the CLI tables
    badge_text: str = ""  # badge text colour when the default would not read


# The one per-tier table: thresholds.tiers.ACTIONS, the dashboard's colours and badges and the
# CLI's styles all read it, so adding a tier means the enum above, this table, the built-in
# scales' cut-offs (thresholds/scales.py) and a migration of the risk_tier DB enum.
TIERS: dict[RiskTier, TierLook] = {
    RiskTier.CLEAR: TierLook("allow", "#adb5bd", "#e9ecef", "green"),
    RiskTier.WARNING: TierLook("watch", "#fcc419", "#fff3bf", "yellow"),
    RiskTier.MEDIUM: TierLook("review_now", "#fd7e14", "#ffd8a8", "dark_orange"),
    RiskTier.HIGH: TierLook("review_now", "#e8590c", "#ffa8a8", "red"),
    RiskTier.EXTREME: TierLook("review_now", "#c92a2a", "#c92a2a", "bold red", "#fff"),
}


class ScoreSource(enum.StrEnum):
    """Where a category score came from."""

    EMBEDDING = "embedding"  # image × pattern phrasings (GME)
    CLASSIFIER = "classifier"  # a classifier that emits the category directly (Open-NSFW)
    HASH_MATCH = "hash_match"  # perceptual-hash bank hit
    FUSION = "fusion"  # weighted fusion of several real signals


class ReviewLabel(enum.StrEnum):
    """A reviewer's verdict on one (job, category)."""

    VIOLATION = "violation"
    NOT_VIOLATION = "not_violation"
    OTHER_CATEGORY = "other_category"  # a violation, but of another category


class ReviewItemKind(enum.StrEnum):
    """Why an item is in the review queue."""

    QUEUE = "queue"  # its tier needs review
    AUDIT = "audit"  # sampled below threshold to observe misses (known inclusion probability)


class ReviewItemStatus(enum.StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    DONE = "done"


class BankKind(enum.StrEnum):
    """Perceptual-hash banks."""

    CONFIRMED_VIOLATION = "confirmed_violation"
    BENIGN = "benign"
