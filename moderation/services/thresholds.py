"""Threshold versions as use cases: list, show, set, roll back, pin, unpin, calibrate from
labels; and the thresholds ``moderation score`` decides with (``scoring_thresholds``).

``moderation thresholds`` (and any other entry point) calls these with a session in a
transaction and renders what they return; every write goes through the one writer,
``moderation.thresholds.versions.write_version`` (version + audit-log entry). A request that
cannot be carried out raises ``ThresholdChangeError`` with a message for the user.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from moderation.db.migrate import current_revision, head_revision
from moderation.db.repositories import thresholds as repo
from moderation.db.repositories.thresholds import ThresholdVersionRecord
from moderation.db.session import DatabaseURLError, make_engine, make_sessionmaker
from moderation.domain import RiskTier
from moderation.services.appeals import appeal_labels
from moderation.thresholds import calibration
from moderation.thresholds.calibration import CalibrationError, CalibrationRun, LabelRow
from moderation.thresholds.labels import LabelledScore
from moderation.thresholds.resolver import thresholds_for
from moderation.thresholds.scales import known_scales
from moderation.thresholds.tiers import CategoryThresholds, ladder_from_base
from moderation.thresholds.versions import write_version

if TYPE_CHECKING:
    from moderation.config import Settings
    from moderation.scoring.base import Scorer

__all__ = [
    "CalibrationError",
    "CalibrationRun",
    "ScoringThresholds",
    "ThresholdChange",
    "ThresholdChangeError",
    "ThresholdVersionRecord",
    "InvalidThresholds",
    "UnknownThresholdVersion",
    "VersionView",
    "active_versions",
    "calibrate",
    "in_force",
    "list_versions",
    "pin",
    "rollback",
    "scoring_thresholds",
    "set_version",
    "show_version",
    "unpin",
]


class ThresholdChangeError(ValueError):
    """The change or lookup cannot be done; the message says why (for the user)."""


class UnknownThresholdVersion(ThresholdChangeError):
    """No such version (or not one of the category named)."""


class InvalidThresholds(ThresholdChangeError):
    """The cut-offs, base or scale asked for cannot be used."""


@dataclass(frozen=True)
class ThresholdChange:
    """A version written: the new one, and the one it replaced or restores."""

    version: ThresholdVersionRecord
    previous_id: int | None = None  # the active version before the change
    restored_from_id: int | None = None  # rollback: the version restored


def calibrate(
    session: Session,
    rows: list[LabelRow],
    *,
    apply: bool,
    actor: str,
    policy: str,
    reason: str | None = None,
    appeal_weight: float | None = None,
    **options: Any,
) -> CalibrationRun:
    """``moderation calibrate`` and ``POST /v1/admin/thresholds/calibrate``: a threshold per
    category from labelled scores (``calibration.calibrate`` with ``options``: strategy,
    params, scale, categories, …). With ``apply``, and only when every category could be
    calibrated, one version per category is written (the one writer, audit-logged); else
    nothing is (the run is the proposal). ``CalibrationError`` says what is wrong.

    ``appeal_weight`` (``MODERATION_APPEAL_EVIDENCE_WEIGHT``; None: leave appeals out): the
    decided appeals of the labels' categories join them as labels of that weight (an
    overturned flag a non-violation, an upheld one a violation), except jobs the labels
    name already. Appeals are not a random sample: never counted as audits."""
    if appeal_weight is not None:
        named = {r.ref for r in rows if r.kind == "job_id"}
        options["weighted"] = [
            (LabelledScore(a.row, a.score, None), a.weight)
            for a in appeal_labels(session, weight=appeal_weight)
            if a.row.ref not in named
        ]
    run = calibration.calibrate(session, rows, **options)
    if apply and not run.failed:
        calibration.write_versions(session, run, actor=actor, policy=policy, reason=reason)
    return run


@dataclass(frozen=True)
class VersionView:
    version: ThresholdVersionRecord
    active: bool  # the category's newest version


def active_versions(session: Session) -> list[ThresholdVersionRecord]:
    """The active version of every category that has one, by category."""
    return sorted(repo.active_versions(session).values(), key=lambda v: v.category)


def list_versions(
    session: Session, category: str | None = None, *, limit: int = 100
) -> list[ThresholdVersionRecord]:
    """Versions newest first (of ``category`` only, when given)."""
    return repo.history(session, category, limit=limit)


def show_version(session: Session, version_id: int) -> VersionView:
    version = repo.get_version(session, version_id)
    if version is None:
        raise UnknownThresholdVersion(f"no threshold version {version_id}")
    active = repo.active_versions(session, [version.category])[version.category]
    return VersionView(version, active.id == version.id)


def set_version(
    session: Session,
    category: str,
    *,
    reason: str,
    actor: str,
    policy: str,
    base: float | None = None,
    cutoffs: Mapping[RiskTier, float] | None = None,
    scale: str | None = None,
) -> ThresholdChange:
    """A hand-set, pinned version of ``category``: the ladder moved to ``base`` or explicit
    ``cutoffs`` (exactly one), on ``scale`` (default: the active version's)."""
    if (base is None) == (cutoffs is None):
        raise InvalidThresholds("give exactly one of --base or --cutoffs")
    previous = repo.active_versions(session, [category]).get(category)
    scale = scale or (previous.scale if previous else None)
    if scale is None:
        raise InvalidThresholds(
            f"{category} has no version yet: pass --scale ({', '.join(known_scales())})"
        )
    previous_id = previous.id if previous else None
    try:
        ladder = ladder_from_base(base, scale) if base is not None else dict(cutoffs or {})
        record = write_version(
            session,
            kind="set",
            category=category,
            policy=policy,
            cutoffs=ladder,
            scale=scale,
            strategy="manual",
            reason=reason,
            actor=actor,
            stats={"previous_version_id": previous_id},
            pinned=True,
            details={"previous_version_id": previous_id},
        )
    except (KeyError, ValueError) as exc:
        raise InvalidThresholds(str(exc).strip("'\"")) from None
    return ThresholdChange(record, previous_id)


def rollback(
    session: Session,
    category: str,
    *,
    actor: str,
    to: int | None = None,
    reason: str | None = None,
) -> ThresholdChange:
    """Make version ``to`` (default: the one before the active) active again, as a new pinned
    version carrying its cut-offs (history is kept)."""
    versions = repo.history(session, category, limit=2)
    if not versions:
        raise ThresholdChangeError(f"{category} has no threshold versions")
    if to is None and len(versions) < 2:
        raise ThresholdChangeError(
            f"{category} has only one version ({versions[0].id}); nothing to roll back to"
        )
    target = repo.get_version(session, to) if to is not None else versions[1]
    if target is None or target.category != category:
        raise UnknownThresholdVersion(f"version {to} is not a version of {category}")
    record = write_version(
        session,
        kind="rollback",
        category=category,
        policy=target.policy,
        cutoffs=target.cutoffs,
        scale=target.scale,
        strategy=target.strategy,
        reason=reason or f"rollback to version {target.id}",
        actor=actor,
        stats=dict(target.stats),
        restored_from_id=target.id,
        pinned=True,
        details={"restored_from_id": target.id, "replaced_version_id": versions[0].id},
    )
    return ThresholdChange(record, versions[0].id, target.id)


def _set_pin(
    session: Session, category: str, pinned: bool, *, actor: str, reason: str | None
) -> ThresholdChange:
    verb = "pin" if pinned else "unpin"
    active = repo.active_versions(session, [category]).get(category)
    if active is None:
        raise ThresholdChangeError(f"{category} has no threshold version to {verb}")
    if active.pinned == pinned:
        raise ThresholdChangeError(f"{category} is already {verb}ned (version {active.id})")
    record = write_version(
        session,
        kind=verb,
        category=category,
        policy=active.policy,
        cutoffs=active.cutoffs,
        scale=active.scale,
        strategy=active.strategy,
        reason=reason or f"{verb}ned by {actor}",
        actor=actor,
        stats={"previous_version_id": active.id},
        pinned=pinned,
        details={"previous_version_id": active.id},
    )
    return ThresholdChange(record, active.id)


def pin(
    session: Session, category: str, *, actor: str, reason: str | None = None
) -> ThresholdChange:
    """A new version with the active cut-offs, pinned: the adjuster leaves the category alone."""
    return _set_pin(session, category, True, actor=actor, reason=reason)


def unpin(
    session: Session, category: str, *, actor: str, reason: str | None = None
) -> ThresholdChange:
    """A new version with the active cut-offs, unpinned: the adjuster may move it again."""
    return _set_pin(session, category, False, actor=actor, reason=reason)


@dataclass(frozen=True)
class ScoringThresholds:
    thresholds: dict[str, CategoryThresholds]
    note: str | None = None  # why no database versions could be read (None: they were)


def scoring_thresholds(settings: Settings, scorer: Scorer) -> ScoringThresholds:
    """The thresholds a one-off scoring (``moderation score``) decides with: the same
    ``thresholds_for`` the worker uses, with the configured database's active versions when
    it is there, reachable and migrated; otherwise file > catalog > preset, and a one-line
    ``note`` saying why the database was left out. Reads only; never creates a database."""
    url = settings.database_url
    try:
        parsed = make_url(url)
        shown = parsed.render_as_string(hide_password=True)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            if not Path(parsed.database).expanduser().is_file():
                return _without_db(settings, scorer, f"no database at {shown}")
        engine = make_engine(url)
    except (DatabaseURLError, SQLAlchemyError, ValueError) as exc:
        return _without_db(settings, scorer, f"database URL unusable ({exc})")
    try:
        revision = current_revision(engine)
        if revision is None or revision != head_revision():
            why = f"database {shown} is not migrated (run `moderation db upgrade`)"
            return _without_db(settings, scorer, why)
        with make_sessionmaker(engine)() as session:
            return ScoringThresholds(thresholds_for(session, scorer, settings.thresholds_file))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return _without_db(settings, scorer, f"database {shown} unreachable ({reason})")
    finally:
        engine.dispose()


def _without_db(settings: Settings, scorer: Scorer, why: str) -> ScoringThresholds:
    note = f"{why}: thresholds from the thresholds file, catalog and preset (no DB versions)"
    return ScoringThresholds(thresholds_for(None, scorer, settings.thresholds_file), note)


def in_force(session: Session, settings: Settings, *, now: dt.datetime) -> ScoringThresholds:
    """The thresholds the pipeline decides with now, for what the workers score (the scorer
    profiles they registered, as the adjuster sees them; else this process's settings) —
    the dashboard's Thresholds page. A configuration that cannot be resolved (a broken
    thresholds file or catalog, an unknown scale) gives no thresholds and a note saying why."""
    from moderation.scoring.catalog import CatalogError
    from moderation.scoring.scorers import ScorerConfigError
    from moderation.thresholds.adjusting import profile_in_force
    from moderation.thresholds.overrides import ThresholdsFileError
    from moderation.thresholds.scales import UnknownScale

    try:
        chosen = profile_in_force(session, settings, now=now)
        resolved = thresholds_for(session, chosen.profile, settings.thresholds_file)
    except (CatalogError, ScorerConfigError, ThresholdsFileError, UnknownScale) as exc:
        return ScoringThresholds({}, f"thresholds in force unavailable: {exc}")
    return ScoringThresholds(resolved, chosen.note)
