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

from moderation.domain import RiskTier
from moderation.services import thresholds as service
from moderation.services.thresholds import ThresholdVersionRecord
from moderation.thresholds.tiers import LADDER

from ._common import CliError, console, database_session, settings_with

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
LADDER_NAMES = tuple(t.value for t in LADDER)


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
    with database_session(url) as session:
        yield session


def _as_dict(v: ThresholdVersionRecord) -> dict[str, Any]:
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


def _table(records: list[ThresholdVersionRecord], title: str) -> Table:
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
            records = service.list_versions(session, category, limit=limit)
            title = f"threshold history{f' of {category}' if category else ''}"
        else:
            records = service.active_versions(session)
            title = "active thresholds (categories without a version use the preset)"
    if as_json:
        typer.echo(json.dumps([_as_dict(v) for v in records], indent=2))
    elif not records:
        console.print("no threshold versions yet: every category uses its preset")
    else:
        console.print(_table(records, title))


@contextlib.contextmanager
def _change(url: str | None) -> Iterator[Session]:
    """``open_session`` whose ``ThresholdChangeError`` becomes the CLI's one-line error."""
    try:
        with open_session(url) as session:
            yield session
    except service.ThresholdChangeError as exc:
        raise CliError(str(exc)) from None


@thresholds_app.command("show")
def show_version(
    version_id: int = typer.Argument(..., help="Threshold version id."),
    as_json: bool = JSON_OPTION,
    url: str | None = URL_OPTION,
) -> None:
    """One version in full: cut-offs, strategy, reason and the evidence (stats) behind it."""
    with _change(url) as session:
        view = service.show_version(session, version_id)
    data = _as_dict(view.version) | {"active": view.active}
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if key != "stats":
            console.print(f"[bold]{key}[/]: {value}", highlight=False)
    console.print("[bold]stats[/]:")
    console.print_json(json.dumps(data["stats"]))


def _parse_cutoffs(text: str) -> dict[RiskTier, float]:
    names = ",".join(LADDER_NAMES)
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise CliError(f"--cutoffs must be {len(LADDER)} numbers {names}: {text!r}") from None
    if len(values) != len(LADDER):
        raise CliError(f"--cutoffs needs {len(LADDER)} numbers ({names}), got {len(values)}")
    return {RiskTier(n): v for n, v in zip(LADDER_NAMES, values, strict=True)}


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
    ladder = _parse_cutoffs(cutoffs) if cutoffs is not None else None
    with _change(url) as session:
        change = service.set_version(
            session,
            category,
            reason=reason,
            actor=default_actor(actor),
            policy=settings_with().policy,
            base=base,
            cutoffs=ladder,
            scale=scale,
        )
    v = change.version
    console.print(f"{category}: version {v.id} active (base {v.value:.4f}, {v.scale})")


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
    with _change(url) as session:
        change = service.rollback(
            session, category, actor=default_actor(actor), to=to, reason=reason
        )
    console.print(
        f"{category}: version {change.version.id} active, restoring version "
        f"{change.restored_from_id} (base {change.version.value:.4f})"
    )


@thresholds_app.command("pin")
def pin(
    category: str = typer.Argument(..., help="Violation category."),
    reason: str | None = typer.Option(None, "--reason", help="Why (default: 'pinned by …')."),
    actor: str | None = ACTOR_OPTION,
    url: str | None = URL_OPTION,
) -> None:
    """Pin CATEGORY's active cut-offs (a new version carrying them): the adjuster leaves them
    alone until `unpin`, or until MODERATION_ADJUST_UNPIN_MIN_AUDITED audits arrive."""
    with _change(url) as session:
        change = service.pin(session, category, actor=default_actor(actor), reason=reason)
    console.print(f"{category}: pinned (version {change.version.id}, same cut-offs)")


@thresholds_app.command("unpin")
def unpin(
    category: str = typer.Argument(..., help="Violation category."),
    reason: str | None = typer.Option(None, "--reason", help="Why (default: 'unpinned by …')."),
    actor: str | None = ACTOR_OPTION,
    url: str | None = URL_OPTION,
) -> None:
    """Hand CATEGORY back to the adjuster (a new unpinned version with the same cut-offs)."""
    with _change(url) as session:
        change = service.unpin(session, category, actor=default_actor(actor), reason=reason)
    console.print(f"{category}: unpinned (version {change.version.id}, same cut-offs)")


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
        noise = p.evidence.get("label_noise")
        if noise and noise.get("recall_corrected") is not None:
            lo, hi = noise["recall_corrected_interval"]
            e_lo, e_hi = noise["reviewer_error_interval"]
            console.print(
                f"  label noise: reviewer error {noise['reviewer_error']:.4f} "
                f"[{e_lo:.4f}, {e_hi:.4f}] from {noise['pairs']} double reviews; recall at "
                f"{noise['threshold']:.4f} corrected {noise['recall_corrected']:.4f} "
                f"[{lo:.4f}, {hi:.4f}]",
                highlight=False,
            )


def register(app: typer.Typer) -> None:
    app.add_typer(thresholds_app, name="thresholds")
