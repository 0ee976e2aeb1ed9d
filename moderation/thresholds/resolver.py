"""The one resolver of the thresholds in force: DB version > thresholds file > catalog > preset.

Every surface that turns scores into tiers asks ``thresholds_for`` (the scorer it decides
with, a session or None, the thresholds file): the worker's batches and ``moderation scan``
(``pipeline.batch``), ``moderation score`` (through ``services.thresholds.scoring_thresholds``,
which finds the database when one is configured and migrated), the dashboard's matcher page,
the adjuster (``thresholds_in_force``). So the same image and scorer get the same tier
everywhere. (The API only submits jobs and reads the decisions the worker wrote.)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from moderation.db.repositories import thresholds as versions
from moderation.db.repositories.reviews import reviewed_categories
from moderation.thresholds.overrides import apply_overrides, load_thresholds_file
from moderation.thresholds.scales import check_scales
from moderation.thresholds.tiers import CategoryThresholds, preset_thresholds

if TYPE_CHECKING:
    from moderation.config import Settings
    from moderation.scoring.base import Scorer
    from moderation.scoring.scorers import ScorerProfile

__all__ = ["resolve_thresholds", "thresholds_for", "thresholds_in_force"]


def resolve_thresholds(
    session: Session | None,
    scales: Mapping[str, str],
    severities: Mapping[str, int] | None = None,
    bases: Mapping[str, float] | None = None,
    *,
    thresholds_file: Path | str | None = None,
) -> dict[str, CategoryThresholds]:
    """Thresholds the policy should use now, per category, highest precedence first:

    1. the active DB version, when it is *on the same score scale* as the scorer's (a version
       calibrated for GME cosine must never be applied to a classifier probability);
    2. the entry of ``thresholds_file`` (``settings.thresholds_file``) on the same scale;
    3. the preset of the scale, moved by the catalog's ``bases`` (``Scorer.base_thresholds``).

    DB versions win because they are the audited, deliberate changes (calibration, ``thresholds
    set``, rollback, the adaptive adjuster); the file is deployment configuration and the
    catalog's base is the pattern author's default. ``session`` None: no database (step 1 is
    skipped), as for ``moderation score`` without one.
    """
    check_scales(scales)
    resolved = preset_thresholds(scales, severities, bases)
    if thresholds_file is not None:
        resolved = apply_overrides(resolved, load_thresholds_file(thresholds_file), severities)
    if session is None:
        return resolved
    for category, version in versions.active_versions(session, scales).items():
        if version.scale != scales[category]:
            continue
        resolved[category] = CategoryThresholds(
            category=category,
            cutoffs=version.cutoffs,
            severity=resolved[category].severity,
            scale=version.scale,
            version_id=version.id,
            source="version",
        )
    return resolved


def thresholds_for(
    session: Session | None,
    scorer: Scorer | ScorerProfile,
    thresholds_file: Path | str | None,
) -> dict[str, CategoryThresholds]:
    """The thresholds ``scorer`` decides with now: ``resolve_thresholds`` over its scales,
    severities and catalog bases. The one call every deciding surface makes."""
    return resolve_thresholds(
        session,
        scorer.scales,
        scorer.severities,
        scorer.base_thresholds,
        thresholds_file=thresholds_file,
    )


def thresholds_in_force(
    session: Session,
    settings: Settings,
    *,
    scale: str | None = None,
    scorer: Scorer | None = None,
) -> dict[str, CategoryThresholds]:
    """The thresholds the pipeline decides with now (``resolve_thresholds``).

    The score scale of each category comes from ``scorer`` — when not given, from
    ``scorer_profile(settings)``: the catalog and backend a worker would use, no model loaded
    — or, with ``scale``, every category that has a version or routed items is taken to be on
    that one scale.
    """
    if scale is not None:
        names = set(reviewed_categories(session)) | set(versions.active_versions(session))
        return resolve_thresholds(
            session, dict.fromkeys(sorted(names), scale), thresholds_file=settings.thresholds_file
        )
    from moderation.scoring.scorers import scorer_profile

    profile = scorer if scorer is not None else scorer_profile(settings)
    return thresholds_for(session, profile, settings.thresholds_file)
