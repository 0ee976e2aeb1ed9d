"""Reviews → threshold versions: run the configured adjuster per category on DB evidence.

The pure parts are elsewhere (``evidence.collate``, ``adjusters``); this module only works out
*what is scored* (``profile_in_force``: the union of the scorer profiles the pipeline processes
registered recently, else this process's settings), loads the evidence window, asks the
adjuster, and — when the proposal differs from the active value — appends a threshold version
(``ladder_from_base``: the one re-basing rule) with the reason and the evidence statistics,
plus an audit-log entry. Thin evidence proposes no change, so nothing is written; a pinned
(hand-set) version is left alone until enough new audits arrive.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from sqlalchemy.orm import Session

from moderation.db.repositories import thresholds as versions
from moderation.db.repositories.reviews import category_evidence_and_reviews, reviewed_categories
from moderation.db.repositories.scorer_profiles import live_profiles
from moderation.thresholds.adjusters import Proposal, RecallTargetAdjuster, seed_proposal
from moderation.thresholds.evidence import Evidence
from moderation.thresholds.noise import label_noise_report
from moderation.thresholds.resolver import thresholds_in_force
from moderation.thresholds.tiers import CategoryThresholds, ladder_from_base
from moderation.thresholds.versions import write_version

if TYPE_CHECKING:
    from sqlalchemy.orm import sessionmaker

    from moderation.config import Settings
    from moderation.db.repositories.thresholds import ThresholdVersionRecord
    from moderation.scoring.base import Scorer
    from moderation.scoring.scorers import ScorerProfile

__all__ = [
    "ADJUSTERS",
    "AdjustOutcome",
    "AdjustRun",
    "AdjusterName",
    "ProfileInForce",
    "adjust_category",
    "adjust_in_force",
    "adjust_thresholds",
    "profile_in_force",
    "propose",
    "run_configured",
]

AdjusterName = Literal["recall_target", "seed"]
ADJUSTERS: tuple[AdjusterName, ...] = ("recall_target", "seed")


@dataclass(frozen=True)
class AdjustOutcome:
    """What the adjuster made of one category."""

    category: str
    scale: str
    proposal: Proposal
    version_id: int | None  # the version written; None when unchanged, dry run or skipped
    evidence: Mapping[str, Any]

    @property
    def changed(self) -> bool:
        return self.proposal.changed

    def as_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "scale": self.scale,
            "strategy": self.proposal.strategy,
            "previous": self.proposal.previous,
            "value": self.proposal.value,
            "changed": self.changed,
            "reason": self.proposal.reason,
            "version_id": self.version_id,
            "evidence": dict(self.evidence),
        }


@dataclass(frozen=True)
class AdjustRun:
    """One adjuster run: where its categories and scales came from, what it made of each
    category, and the categories it left out (category → why)."""

    profile: str
    outcomes: list[AdjustOutcome]
    skipped: Mapping[str, str]
    source: Literal["registered", "settings", "given"] = "given"

    def as_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "profile_source": self.source,
            "skipped": dict(self.skipped),
            "outcomes": [o.as_dict() for o in self.outcomes],
        }


@dataclass(frozen=True)
class ProfileInForce:
    """The scorer profile the adjuster adjusts: what the pipeline actually scores with."""

    profile: ScorerProfile
    source: Literal["registered", "settings"]
    note: str  # one line for the CLI output and the beat task's log
    skipped: Mapping[str, str]  # categories two live profiles put on different scales → why


def profile_in_force(session: Session, settings: Settings, *, now: dt.datetime) -> ProfileInForce:
    """The union of the scorer profiles registered within ``settings.adjust_profile_window_s``
    (``union_profiles``: a category whose scale they disagree on is skipped); when none is,
    ``scorer_profile(settings)`` — this process's own backend and catalog — says so."""
    from moderation.scoring.profiles import profile_from_categories, union_profiles
    from moderation.scoring.scorers import scorer_profile

    window = settings.adjust_profile_window_s
    live = live_profiles(session, since=now - dt.timedelta(seconds=window))
    if not live:
        note = (
            f"no scorer profile registered in the last {window:g} s: categories and scales from "
            f"this process's settings (MODERATION_BACKEND={settings.backend})"
        )
        return ProfileInForce(scorer_profile(settings), "settings", note, {})
    profile, skipped = union_profiles(
        [(p.worker, profile_from_categories(p.categories)) for p in live]
    )
    models = Counter(f"{p.backend} {p.model_id} catalog {p.catalog_version or '-'}" for p in live)
    note = (
        f"categories and scales of {len(live)} scorer profile(s) registered in the last "
        f"{window:g} s: " + "; ".join(f"{k} ×{n}" for k, n in models.items())
    )
    return ProfileInForce(profile, "registered", note, skipped)


def propose(
    adjuster: AdjusterName,
    current: float,
    scale: str,
    evidence: Evidence,
    *,
    now: float,
    recall_target: float = 0.95,
) -> Proposal:
    """The named adjuster's proposal for one category (pure)."""
    if adjuster == "seed":
        return seed_proposal(current, evidence.feedback())
    if adjuster == "recall_target":
        tuned = RecallTargetAdjuster.for_scale(scale, target=recall_target)
        return tuned.propose(current, evidence, now=now)
    raise ValueError(f"unknown adjuster {adjuster!r}; one of {ADJUSTERS}")


def adjust_category(
    session: Session,
    current: CategoryThresholds,
    *,
    adjuster: AdjusterName,
    now: dt.datetime,
    horizon_s: float,
    recall_target: float = 0.95,
    policy: str = "content_safety",
    created_by: str = "adjuster",
    dry_run: bool = False,
    unpin_min_audited: int | None = None,
) -> AdjustOutcome:
    """Evidence of the last ``horizon_s`` → proposal → a new (unpinned) version when it differs.

    A pinned active version (hand-set) is left alone — unless ``unpin_min_audited`` (None or
    0: never) reviewed audits were routed since it was written: then the adjuster proposes as
    usual and a version it writes is unpinned."""
    category = current.category
    evidence, reviews = category_evidence_and_reviews(
        session, category, since=now - dt.timedelta(seconds=horizon_s)
    )
    summary = evidence.summary()
    pin = _active_pin(session, current)
    audited_since_pin = 0
    if pin is not None:
        audited_since_pin = int(evidence.since(pin.created_at.timestamp()).sampled.sum())
        if not unpin_min_audited or audited_since_pin < unpin_min_audited:
            held = Proposal(
                adjuster,
                current.base,
                current.base,
                _pinned_reason(pin, audited_since_pin, unpin_min_audited),
                {"pinned_version_id": pin.id, "audited_since_pin": audited_since_pin},
            )
            return AdjustOutcome(category, current.scale, held, None, summary)
    proposal = propose(
        adjuster,
        current.base,
        current.scale,
        evidence,
        now=now.timestamp(),
        recall_target=recall_target,
    )
    # reviewer noise from the double reviews, and recall in force corrected for it: reported
    # (the version's stats, the dashboard, the CLI), not acted on (docs/adaptive.md)
    noise = label_noise_report(evidence, reviews, proposal.value)
    proposal = dataclasses.replace(proposal, evidence={**proposal.evidence, "label_noise": noise})
    if pin is not None:
        proposal = dataclasses.replace(
            proposal,
            reason=f"{proposal.reason} (pin of version {pin.id} lifted: {audited_since_pin} "
            f"audits since ≥ {unpin_min_audited})",
        )
    if not proposal.changed or dry_run:
        return AdjustOutcome(category, current.scale, proposal, None, summary)
    stats = {
        **_json_safe(proposal.evidence),
        "evidence": summary,
        "adjuster": adjuster,
        "previous_value": proposal.previous,
        "previous_version_id": current.version_id,
        "previous_source": current.source,
        "horizon_s": horizon_s,
    }
    if pin is not None:
        stats["unpinned"] = {"version_id": pin.id, "audited_since_pin": audited_since_pin}
    record = write_version(
        session,
        kind="adjust",
        category=category,
        policy=policy,
        cutoffs=ladder_from_base(proposal.value, current.scale),
        scale=current.scale,
        strategy=proposal.strategy,
        reason=proposal.reason,
        actor=created_by,
        stats=stats,
        details={
            "adjuster": adjuster,
            "previous": proposal.previous,
            "previous_version_id": current.version_id,
            "reason": proposal.reason,
        },
    )
    return AdjustOutcome(category, current.scale, proposal, record.id, summary)


def _active_pin(session: Session, current: CategoryThresholds) -> ThresholdVersionRecord | None:
    """The active version behind ``current`` when it is pinned, else None."""
    if current.source != "version" or current.version_id is None:
        return None
    record = versions.get_version(session, current.version_id)
    return record if record is not None and record.pinned else None


def _pinned_reason(pin: ThresholdVersionRecord, audited: int, needed: int | None) -> str:
    until = (
        f"{audited} audits since < {needed} to move it, or " if needed else "until "
    ) + f"`moderation thresholds unpin {pin.category}`"
    return f"pinned since version {pin.id} ({until})"


def adjust_thresholds(
    session: Session,
    thresholds: Mapping[str, CategoryThresholds],
    *,
    adjuster: AdjusterName,
    now: dt.datetime,
    horizon_s: float,
    categories: Iterable[str] | None = None,
    recall_target: float = 0.95,
    policy: str = "content_safety",
    created_by: str = "adjuster",
    dry_run: bool = False,
    unpin_min_audited: int | None = None,
) -> list[AdjustOutcome]:
    """Run ``adjuster`` for each category (default: every category of ``thresholds`` that had
    items routed to review within the horizon). ``thresholds`` are the ones in force
    (``resolve_thresholds``); a category not in them is an error (its scale is unknown)."""
    if categories is None:
        since = now - dt.timedelta(seconds=horizon_s)
        categories = [c for c in reviewed_categories(session, since=since) if c in thresholds]
    wanted = list(dict.fromkeys(categories))
    unknown = [c for c in wanted if c not in thresholds]
    if unknown:
        raise KeyError(f"no thresholds in force for {unknown} (known: {sorted(thresholds)})")
    return [
        adjust_category(
            session,
            thresholds[c],
            adjuster=adjuster,
            now=now,
            horizon_s=horizon_s,
            recall_target=recall_target,
            policy=policy,
            created_by=created_by,
            dry_run=dry_run,
            unpin_min_audited=unpin_min_audited,
        )
        for c in wanted
    ]


def adjust_in_force(
    session: Session,
    settings: Settings,
    *,
    now: dt.datetime,
    adjuster: AdjusterName | None = None,
    horizon_s: float | None = None,
    categories: Iterable[str] | None = None,
    scale: str | None = None,
    scorer: Scorer | None = None,
    created_by: str = "adjuster",
    dry_run: bool = False,
) -> AdjustRun:
    """``adjust_thresholds`` on the thresholds in force for what is scored: the registered
    scorer profiles (``profile_in_force``), or ``scorer``'s scales, or — with ``scale`` — every
    category with a version or routed items on that one scale. ``adjuster`` and ``horizon_s``
    default to the settings'."""
    skipped: Mapping[str, str] = {}
    source: Literal["registered", "settings", "given"] = "given"
    if scale is not None:
        thresholds = thresholds_in_force(session, settings, scale=scale)
        note = f"every category on scale {scale} (given)"
    elif scorer is not None:
        thresholds = thresholds_in_force(session, settings, scorer=scorer)
        note = f"categories and scales of the scorer {scorer.model_id} (given)"
    else:
        chosen = profile_in_force(session, settings, now=now)
        thresholds = thresholds_in_force(session, settings, scorer=chosen.profile)  # type: ignore[arg-type]
        note, skipped, source = chosen.note, chosen.skipped, chosen.source
    if categories is not None:
        wanted = list(dict.fromkeys(categories))
        skipped = {c: why for c, why in skipped.items() if c in wanted}
        categories = [c for c in wanted if c not in skipped]
    outcomes = adjust_thresholds(
        session,
        thresholds,
        adjuster=adjuster or settings.adjuster,
        now=now,
        horizon_s=horizon_s or settings.adjust_horizon_s,
        categories=categories,
        recall_target=settings.recall_target,
        policy=settings.policy,
        created_by=created_by,
        dry_run=dry_run,
        unpin_min_audited=settings.adjust_unpin_min_audited,
    )
    return AdjustRun(note, outcomes, dict(skipped), source)


def run_configured(
    settings: Settings,
    sessions: sessionmaker[Session],
    *,
    now: dt.datetime,
    scorer: Scorer | None = None,
    created_by: str = "adjuster",
) -> AdjustRun:
    """One run of ``settings.adjuster`` over every reviewed category, in one transaction
    (what the beat task does), on what the pipeline scores (``adjust_in_force``)."""
    from moderation.db.retry import in_transaction

    return in_transaction(
        sessions,
        lambda session: adjust_in_force(
            session, settings, now=now, scorer=scorer, created_by=created_by
        ),
    )


def _json_safe(value: Any) -> Any:
    """NaN/inf → None, recursively (threshold_versions.stats is JSON; JSONB refuses NaN)."""
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
