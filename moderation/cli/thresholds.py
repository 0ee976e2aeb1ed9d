"""``moderation thresholds``: list, show, set, roll back, pin, unpin and adjust threshold
versions (append-only)."""

from __future__ import annotations

import contextlib
import getpass
import json
from collections.abc import Iterator
from typing import Any

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from moderation.db import make_engine, make_sessionmaker
from moderation.db.repositories import audit_log
from moderation.db.repositories import thresholds as repo
from moderation.domain import RiskTier

from ._common import CliError, console, settings_with

__all__ = [
    "ACTOR_OPTION",
    "URL_OPTION",
    "default_actor",
    "open_session",
    "register",
    "thresholds_app",
]

thresholds_app = typer.Typer(
    help="Threshold versions per category: list, show, set, rollback, pin, unpin, adjust (from "
    "reviews). Versions are append-only; the newest of a category is active. A hand-set version "
    "(set, rollback, pin) is pinned: the adjuster leaves it alone.",
    no_args_is_help=True,
)

URL_OPTION = typer.Option(
    None, "--url", help="Database URL (default: MODERATION_DATABASE_URL or the SQLite file)."
)
ACTOR_OPTION = typer.Option(None, "--actor", help="Who makes the change (default: $USER).")
JSON_OPTION = typer.Option(False, "--json", help="Print JSON.")
LADDER_NAMES = ("warning", "medium", "high", "extreme")


def default_actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in some containers
        return "cli"


@contextlib.contextmanager
def open_session(url: str | None) -> Iterator[Session]:
    """One transaction on the configured database: committed on success, else rolled back."""
    engine = make_engine(settings_with(database_url=url).database_url)
    try:
        with make_sessionmaker(engine)() as session, session.begin():
            yield session
    finally:
        engine.dispose()


def _as_dict(v: repo.ThresholdVersionRecord) -> dict[str, Any]:
    return {
        "id": v.id,
        "category": v.category,
        "value": v.value,
        "cutoffs": {t.value: c for t, c in sorted(v.cutoffs.items(), key=lambda kv: kv[0].rank)},
        "scale": v.scale,
        "policy": v.policy,
        "strategy": v.strategy,
        "reason": v.reason,
        "created_by": v.created_by,
        "created_at": v.created_at.isoformat(),
        "restored_from_id": v.restored_from_id,
        "pinned": v.pinned,
        "stats": dict(v.stats),
    }


def _table(records: list[repo.ThresholdVersionRecord], title: str) -> Table:
    table = Table(title=title)
    for column in (
        "id",
        "category",
        "base",
        "cut-offs (w/m/h/e)",
        "scale",
        "strategy",
        "pin",
        "created",
        "by",
        "reason",
    ):
        table.add_column(column, overflow="fold")
    for v in records:
        ladder = "/".join(f"{v.cutoffs[RiskTier(n)]:.4g}" for n in LADDER_NAMES)
        restored = f" (restores {v.restored_from_id})" if v.restored_from_id else ""
        table.add_row(
            str(v.id),
            v.category,
            f"{v.value:.4f}",
            ladder,
            v.scale,
            v.strategy,
            "pinned" if v.pinned else "",
            v.created_at.strftime("%Y-%m-%d %H:%M"),
            v.created_by,
            v.reason + restored,
        )
    return table


@thresholds_app.command("list")
def list_versions(
    category: str | None = typer.Option(None, "--category", help="History of this category."),
    show_all: bool = typer.Option(False, "--all", help="Every version, not only active ones."),
    limit: int = typer.Option(50, "--limit", min=1, help="Most versions to show."),
    as_json: bool = JSON_OPTION,
    url: str | None = URL_OPTION,
) -> None:
    """The active version of every category, or a history (--category, --all), newest first."""
    with open_session(url) as session:
        if category or show_all:
            records = repo.history(session, category, limit=limit)
            title = f"threshold history{f' of {category}' if category else ''}"
        else:
            records = sorted(repo.active_versions(session).values(), key=lambda v: v.category)
            title = "active thresholds (categories without a version use the preset)"
    if as_json:
        typer.echo(json.dumps([_as_dict(v) for v in records], indent=2))
    elif not records:
        console.print("no threshold versions yet: every category uses its preset")
    else:
        console.print(_table(records, title))


@thresholds_app.command("show")
def show_version(
    version_id: int = typer.Argument(..., help="Threshold version id."),
    as_json: bool = JSON_OPTION,
    url: str | None = URL_OPTION,
) -> None:
    """One version in full: cut-offs, strategy, reason and the evidence (stats) behind it."""
    with open_session(url) as session:
        version = repo.get_version(session, version_id)
        if version is None:
            raise CliError(f"no threshold version {version_id}")
        active = repo.active_versions(session, [version.category])[version.category]
    data = _as_dict(version) | {"active": active.id == version.id}
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if key != "stats":
            console.print(f"[bold]{key}[/]: {value}", highlight=False)
    console.print("[bold]stats[/]:")
    console.print_json(json.dumps(data["stats"]))


def _parse_cutoffs(text: str) -> dict[RiskTier, float]:
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise CliError(
            f"--cutoffs must be 4 numbers warning,medium,high,extreme: {text!r}"
        ) from None
    if len(values) != 4:
        raise CliError(
            f"--cutoffs needs 4 numbers (warning,medium,high,extreme), got {len(values)}"
        )
    return {RiskTier(n): v for n, v in zip(LADDER_NAMES, values, strict=True)}


def _set_cutoffs(base: float | None, cutoffs: str | None, scale: str) -> dict[RiskTier, float]:
    from moderation.thresholds.tiers import ladder_from_base

    if (base is None) == (cutoffs is None):
        raise CliError("give exactly one of --base or --cutoffs")
    try:
        return ladder_from_base(base, scale) if base is not None else _parse_cutoffs(str(cutoffs))
    except (KeyError, ValueError) as exc:
        raise CliError(str(exc).strip("'\"")) from None


@thresholds_app.command("set")
def set_version(
    category: str = typer.Argument(..., help="Violation category."),
    base: float | None = typer.Option(None, "--base", help="Violation cut-off; tiers follow."),
    cutoffs: str | None = typer.Option(None, "--cutoffs", help="warning,medium,high,extreme."),
    scale: str | None = typer.Option(None, "--scale", help="Score scale (default: active's)."),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the version and audit log)."),
    actor: str | None = ACTOR_OPTION,
    url: str | None = URL_OPTION,
) -> None:
    """Append a hand-set version for CATEGORY (it becomes active, pinned)."""
    who = default_actor(actor)
    with open_session(url) as session:
        previous = repo.active_versions(session, [category]).get(category)
        scale = scale or (previous.scale if previous else None)
        if scale is None:
            raise CliError(f"{category} has no version yet: pass --scale (gme_cosine, probability)")
        try:
            record = repo.append_version(
                session,
                category=category,
                policy=settings_with().policy,
                cutoffs=_set_cutoffs(base, cutoffs, scale),
                scale=scale,
                strategy="manual",
                reason=reason,
                created_by=who,
                stats={"previous_version_id": previous and previous.id},
                pinned=True,
            )
        except ValueError as exc:
            raise CliError(str(exc)) from None
        audit_log.record_action(
            session,
            actor=who,
            action="thresholds.set",
            target_type="threshold_version",
            target_id=record.id,
            details={
                "category": category,
                "value": record.value,
                "previous_version_id": previous and previous.id,
            },
        )
    console.print(f"{category}: version {record.id} active (base {record.value:.4f}, {scale})")


@thresholds_app.command("rollback")
def rollback(
    category: str = typer.Argument(..., help="Violation category."),
    to: int | None = typer.Option(None, "--to", help="Version to restore (default: previous)."),
    reason: str | None = typer.Option(None, "--reason", help="Why (default: 'rollback to N')."),
    actor: str | None = ACTOR_OPTION,
    url: str | None = URL_OPTION,
) -> None:
    """Make an older version of CATEGORY active again, as a new pinned version (history is
    kept)."""
    who = default_actor(actor)
    with open_session(url) as session:
        versions = repo.history(session, category, limit=2)
        if not versions:
            raise CliError(f"{category} has no threshold versions")
        if to is None and len(versions) < 2:
            raise CliError(
                f"{category} has only one version ({versions[0].id}); nothing to roll back to"
            )
        target = repo.get_version(session, to) if to is not None else versions[1]
        if target is None or target.category != category:
            raise CliError(f"version {to} is not a version of {category}")
        record = repo.append_version(
            session,
            category=category,
            policy=target.policy,
            cutoffs=target.cutoffs,
            scale=target.scale,
            strategy=target.strategy,
            reason=reason or f"rollback to version {target.id}",
            created_by=who,
            stats=dict(target.stats),
            restored_from_id=target.id,
            pinned=True,
        )
        audit_log.record_action(
            session,
            actor=who,
            action="thresholds.rollback",
            target_type="threshold_version",
            target_id=record.id,
            details={
                "category": category,
                "restored_from_id": target.id,
                "replaced_version_id": versions[0].id,
            },
        )
    console.print(
        f"{category}: version {record.id} active, restoring version {target.id} "
        f"(base {record.value:.4f})"
    )


def _set_pin(category: str, pinned: bool, reason: str | None, who: str, url: str | None) -> int:
    """Append a version of ``category`` with the active cut-offs and ``pinned``; its id."""
    verb = "pin" if pinned else "unpin"
    with open_session(url) as session:
        active = repo.active_versions(session, [category]).get(category)
        if active is None:
            raise CliError(f"{category} has no threshold version to {verb}")
        if active.pinned == pinned:
            raise CliError(f"{category} is already {verb}ned (version {active.id})")
        record = repo.append_version(
            session,
            category=category,
            policy=active.policy,
            cutoffs=active.cutoffs,
            scale=active.scale,
            strategy=active.strategy,
            reason=reason or f"{verb}ned by {who}",
            created_by=who,
            stats={"previous_version_id": active.id},
            pinned=pinned,
        )
        audit_log.record_action(
            session,
            actor=who,
            action=f"thresholds.{verb}",
            target_type="threshold_version",
            target_id=record.id,
            details={"category": category, "previous_version_id": active.id},
        )
    return record.id


@thresholds_app.command("pin")
def pin(
    category: str = typer.Argument(..., help="Violation category."),
    reason: str | None = typer.Option(None, "--reason", help="Why (default: 'pinned by …')."),
    actor: str | None = ACTOR_OPTION,
    url: str | None = URL_OPTION,
) -> None:
    """Pin CATEGORY's active cut-offs (a new version carrying them): the adjuster leaves them
    alone until `unpin`, or until MODERATION_ADJUST_UNPIN_MIN_AUDITED audits arrive."""
    version = _set_pin(category, True, reason, default_actor(actor), url)
    console.print(f"{category}: pinned (version {version}, same cut-offs)")


@thresholds_app.command("unpin")
def unpin(
    category: str = typer.Argument(..., help="Violation category."),
    reason: str | None = typer.Option(None, "--reason", help="Why (default: 'unpinned by …')."),
    actor: str | None = ACTOR_OPTION,
    url: str | None = URL_OPTION,
) -> None:
    """Hand CATEGORY back to the adjuster (a new unpinned version with the same cut-offs)."""
    version = _set_pin(category, False, reason, default_actor(actor), url)
    console.print(f"{category}: unpinned (version {version}, same cut-offs)")


@thresholds_app.command("adjust")
def adjust(
    category: list[str] | None = typer.Option(
        None, "--category", help="Adjust only this category (repeatable; default: all reviewed)."
    ),
    adjuster: str | None = typer.Option(
        None, "--adjuster", help="recall_target or seed (default: MODERATION_ADJUSTER)."
    ),
    scale: str | None = typer.Option(
        None,
        "--scale",
        help="Score scale of every category (default: the scorer profiles registered by the "
        "workers and `moderation scan`; without any, the settings' backend and catalog).",
    ),
    horizon_s: float | None = typer.Option(
        None, "--horizon-s", min=1, help="Evidence window (default: MODERATION_ADJUST_HORIZON_S)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show proposals, write nothing."),
    as_json: bool = JSON_OPTION,
    actor: str | None = ACTOR_OPTION,
    url: str | None = URL_OPTION,
) -> None:
    """Run the reviewer-feedback adjuster; a changed proposal becomes a new version.

    Categories and scales come from the scorer profiles the workers and `moderation scan`
    registered recently (else from the settings, which the output says); pinned categories
    are left alone."""
    from moderation.db.types import utcnow
    from moderation.thresholds.adjusting import ADJUSTERS, adjust_in_force

    settings = settings_with(database_url=url)
    name = adjuster or settings.adjuster
    if name not in ADJUSTERS:
        raise CliError(f"--adjuster must be one of {list(ADJUSTERS)}, got {name!r}")
    who = default_actor(actor)
    try:
        with open_session(url) as session:
            run = adjust_in_force(
                session,
                settings,
                now=utcnow(),
                adjuster=name,  # type: ignore[arg-type]
                horizon_s=horizon_s,
                categories=category or None,
                scale=scale,
                created_by=who,
                dry_run=dry_run,
            )
    except (KeyError, ValueError) as exc:
        raise CliError(str(exc).strip("'\"")) from None
    if as_json:
        typer.echo(json.dumps(run.as_dict(), indent=2, default=str))
        return
    console.print(f"scales: {run.profile}", highlight=False)
    for skipped, why in run.skipped.items():
        console.print(f"{skipped}: skipped — {why}", highlight=False)
    if not run.outcomes:
        console.print("no category has reviewed items in the evidence window")
    for o in run.outcomes:
        p = o.proposal
        ev = o.evidence
        what = (
            f"{p.previous:.4f} → {p.value:.4f}"
            + (f" (version {o.version_id})" if o.version_id else " (dry run)" if dry_run else "")
            if o.changed
            else f"unchanged at {p.previous:.4f}"
        )
        console.print(
            f"{o.category} ({p.strategy}): {what} — {p.reason} "
            f"(n={ev.get('n')}, positives={ev.get('positives')}, audited={ev.get('audited')})"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(thresholds_app, name="thresholds")
