"""``moderation bank``: add images to the PDQ hash banks, list, disable/enable, explain matches."""

from __future__ import annotations

import contextlib
import getpass
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import typer
from PIL import Image
from rich.progress import track
from rich.table import Table
from sqlalchemy.orm import Session

from moderation.config import Settings
from moderation.domain import BankKind
from moderation.hashbank.banks import (
    BankHit,
    BankMatch,
)
from moderation.hashbank.hashing import PdqHash
from moderation.images import ImageRejected
from moderation.services import banks as bank_service
from moderation.services.reviews import catalog_categories

from ._common import (
    URL_OPTION,
    CliError,
    console,
    database_session,
    open_database,
    settings_with,
)

__all__ = ["register"]

bank_app = typer.Typer(
    help="Perceptual-hash (PDQ) banks: confirmed violations per category, and benign images.",
    no_args_is_help=True,
)

BY_OPTION = typer.Option(None, "--by", help="Who is acting (audit log); default: your login.")


def _actor(by: str | None) -> str:
    if by:
        return by
    with contextlib.suppress(Exception):
        return f"cli:{getpass.getuser()}"
    return "cli"


@contextlib.contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    """One transaction on the database, refused with one line when unmigrated/unreachable."""
    with database_session(settings.database_url) as session:
        yield session


def _decode_file(path: Path, settings: Settings) -> Image.Image:
    """Raises CliError with the reason the file cannot be decoded."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read: {exc.strerror or exc}") from None
    try:
        return bank_service.decode_bank_image(data, settings)
    except ImageRejected as exc:
        raise CliError(f"{exc.code}: {exc.message}") from None


@bank_app.command("add")
def add(
    files: list[Path] = typer.Argument(..., help="Image files to bank."),
    bank: BankKind = typer.Option(..., "--bank", "-b", help="Which bank."),
    category: str | None = typer.Option(
        None, "--category", "-c", help="Violation category (required for confirmed_violation)."
    ),
    reason: str | None = typer.Option(None, "--reason", "-r", help="Why (default: file name)."),
    by: str | None = BY_OPTION,
    url: str | None = URL_OPTION,
) -> None:
    """Hash FILES with PDQ and add them to a bank (low-quality hashes and duplicates skipped)."""
    settings = settings_with(database_url=url)
    try:
        bank_service.check_bank_category(bank, category, catalog_categories(settings.catalog_file))
    except bank_service.BankCategoryError as exc:
        # the same checks as the API's; the CLI names its option
        message = str(exc).replace("a category is", "--category is")
        raise CliError(f"--{message}" if message.startswith("category") else message) from None
    table = Table("file", "result", "entry", "quality", "pdq hash")
    failed = 0
    added: list[int] = []
    with _session(settings) as session:
        for path in track(files, description="hashing", transient=True, disable=len(files) < 3):
            try:
                image = _decode_file(path, settings)
            except CliError as exc:
                failed += 1
                table.add_row(str(path), f"[red]{exc}[/]", "", "", "")
                continue
            pdq, result = bank_service.add_image(
                session, image, bank=bank, category=category, actor=_actor(by),
                reason=reason or f"added from file {path.name}", settings=settings,
            )  # fmt: skip
            if result.outcome == "low_quality":
                failed += 1
                shown = f"[red]quality {pdq.quality} < {settings.bank_min_quality}: not banked[/]"
            else:
                shown = result.outcome
            if result.outcome == "added" and result.entry is not None:
                added.append(result.entry.id)
            entry = f"#{result.entry.id}" if result.entry else ""
            table.add_row(str(path), shown, entry, str(pdq.quality), pdq.hex[:16] + "…")
    console.print(table)
    if added:
        _retro_after_change(settings, added, trigger="cli:add")
    if failed:
        raise CliError(f"{failed} of {len(files)} files were not banked")


@bank_app.command("list")
def list_(
    bank: BankKind | None = typer.Option(None, "--bank", "-b", help="Only this bank."),
    category: str | None = typer.Option(None, "--category", "-c", help="Only this category."),
    include_disabled: bool = typer.Option(False, "--all", help="Include disabled entries."),
    limit: int = typer.Option(50, "--limit", min=1, help="Most entries shown, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    url: str | None = URL_OPTION,
) -> None:
    """Bank entries, newest first, with counts per bank and category."""
    with _session(settings_with(database_url=url)) as session:
        entries = bank_service.list_entries(
            session, bank=bank, category=category, include_disabled=include_disabled, limit=limit
        )
        counts = bank_service.stats(session)
    if as_json:
        console.print_json(json.dumps([_entry_json(e) for e in entries]))
        return
    table = Table("id", "bank", "category", "enabled", "quality", "added by", "added", "reason")
    for e in entries:
        table.add_row(
            str(e.id), e.bank.value, e.category or "", "yes" if e.enabled else "[red]no[/]",
            str(e.pdq_quality or ""), e.added_by, f"{e.created_at:%Y-%m-%d %H:%M}", e.reason or "",
        )  # fmt: skip
    console.print(table)
    for c in counts:
        name = f"{c.bank.value}/{c.category}" if c.category else c.bank.value
        console.print(f"{name}: {c.enabled} enabled, {c.disabled} disabled", highlight=False)


def _entry_json(e: bank_service.BankEntryRecord) -> dict[str, object]:
    return {
        "id": e.id,
        "bank": e.bank.value,
        "category": e.category,
        "pdq_hash": e.pdq_hash,
        "pdq_quality": e.pdq_quality,
        "enabled": e.enabled,
        "added_by": e.added_by,
        "reason": e.reason,
        "image_id": e.image_id,
        "source_job_id": e.source_job_id,
        "created_at": e.created_at.isoformat(),
        "disabled_at": e.disabled_at.isoformat() if e.disabled_at else None,
    }


def _set_enabled(
    entry_id: int, enabled: bool, reason: str | None, by: str | None, url: str | None
) -> None:
    with _session(settings_with(database_url=url)) as session:
        try:
            entry = bank_service.set_enabled(
                session, entry_id, enabled=enabled, actor=_actor(by), reason=reason
            )
        except bank_service.UnknownBankEntry as exc:
            raise CliError(str(exc)) from None
    state = "enabled" if entry.enabled else "disabled"
    console.print(f"bank entry #{entry.id} ({entry.bank.value}) is {state}", highlight=False)
    if enabled:
        _retro_after_change(settings_with(database_url=url), [entry.id], trigger="cli:enable")


@bank_app.command("disable")
def disable(
    entry_id: int = typer.Argument(..., help="Bank entry id (see `bank list`)."),
    reason: str | None = typer.Option(None, "--reason", "-r", help="Why (audit log)."),
    by: str | None = BY_OPTION,
    url: str | None = URL_OPTION,
) -> None:
    """Stop matching an entry; it is kept (and can be re-enabled). Workers notice on refresh."""
    _set_enabled(entry_id, False, reason, by, url)


@bank_app.command("enable")
def enable(
    entry_id: int = typer.Argument(..., help="Bank entry id (see `bank list --all`)."),
    reason: str | None = typer.Option(None, "--reason", "-r", help="Why (audit log)."),
    by: str | None = BY_OPTION,
    url: str | None = URL_OPTION,
) -> None:
    """Match a disabled entry again."""
    _set_enabled(entry_id, True, reason, by, url)


@bank_app.command("match")
def match(
    file: Path = typer.Argument(..., help="Image file to look up."),
    top: int = typer.Option(5, "--top", min=1, help="Nearest entries shown."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    url: str | None = URL_OPTION,
) -> None:
    """Hash FILE and show the nearest bank entries, their distances and the verdict a worker
    would reach ("why did it match")."""
    settings = settings_with(database_url=url)
    try:
        pdq = bank_service.match_pdq(_decode_file(file, settings), settings)
    except CliError as exc:
        raise CliError(f"{file}: {exc}") from None
    with _session(settings) as session:
        found = bank_service.match_hash(session, pdq, settings, top=top)
    if as_json:
        console.print_json(json.dumps(found.as_dict(settings)))
        return
    _print_match(found.pdq, found.nearest, found.details, found.verdict, settings, found.bank_size)


def _verdict_text(verdict: BankMatch | None, pdq: PdqHash, settings: Settings) -> str:
    if pdq.quality < settings.bank_min_quality:
        return (
            f"no match: quality {pdq.quality} < {settings.bank_min_quality} "
            "(too featureless; never matched)"
        )
    if verdict is None:
        return f"no match within distance {settings.bank_match_threshold}"
    where = f"{verdict.bank.value}" + (f"/{verdict.category}" if verdict.category else "")
    if verdict.tier is None:
        effect = "recorded only; the model decides"
    elif verdict.skip_model:
        effect = f"tier {verdict.tier.value}, model skipped"
    else:
        effect = f"tier at least {verdict.tier.value}, model still scores"
    return (
        f"MATCH {where} entry #{verdict.entry_id} at distance {verdict.distance} "
        f"({verdict.variant}) → {effect}"
    )


def _print_match(
    pdq: PdqHash,
    nearest: list[BankHit],
    details: dict[int, bank_service.BankEntryRecord],
    verdict: BankMatch | None,
    settings: Settings,
    bank_size: int,
) -> None:
    console.print(f"pdq {pdq.hex}  quality {pdq.quality}", highlight=False)
    table = Table("entry", "bank", "category", "distance", "variant", "match", "added by", "reason")
    for hit in nearest:
        entry = details.get(hit.entry_id)
        within = hit.distance <= settings.bank_match_threshold
        table.add_row(
            f"#{hit.entry_id}", hit.bank.value, hit.category or "", str(hit.distance), hit.variant,
            "[bold]yes[/]" if within else "no",
            entry.added_by if entry else "", (entry.reason or "") if entry else "",
        )  # fmt: skip
    console.print(table)
    console.print(
        f"{bank_size} entries loaded; threshold {settings.bank_match_threshold}; "
        f"flips {'on' if settings.bank_match_flips else 'off'}",
        highlight=False,
    )
    console.print(_verdict_text(verdict, pdq, settings), highlight=False)


@bank_app.command("import")
def import_(
    file: Path = typer.Argument(..., help="Hash list: CSV (with a header) or JSON Lines."),
    fmt: str | None = typer.Option(
        None, "--format", help="csv or jsonl (default: from the file name or its first line)."
    ),
    bank: BankKind | None = typer.Option(None, "--bank", "-b", help="Bank for lines without."),
    category: str | None = typer.Option(
        None, "--category", "-c", help="Category for violation lines without one."
    ),
    source: str | None = typer.Option(
        None, "--source", help="Source list name for lines without one (default: file name)."
    ),
    retro: bool = typer.Option(
        True, "--retro/--no-retro", help="Retro-match the new entries against past uploads."
    ),
    by: str | None = BY_OPTION,
    url: str | None = URL_OPTION,
) -> None:
    """Import a PDQ hash list (columns: hash, quality, bank, category, tags, source,
    added_at). Malformed lines are reported with their line numbers and skipped; entries
    already banked are skipped, so re-importing a list adds nothing."""
    settings = settings_with(database_url=url)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{file}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    chosen = fmt or bank_service.detect_format(file.name, text[:200])
    if chosen not in ("csv", "jsonl"):
        raise CliError(f"--format must be csv or jsonl, not {chosen!r}")
    with _session(settings) as session:
        report = bank_service.import_hash_list(
            session, text.splitlines(), fmt=chosen, imported_by=_actor(by),  # type: ignore[arg-type]
            file_name=file.name, default_bank=bank, default_category=category,
            default_source=source, min_quality=settings.bank_min_quality,
            categories=catalog_categories(settings.catalog_file),
        )  # fmt: skip
    for error in report.errors:
        console.print(f"[red]{file.name}:{error.line}: {error.message}[/]", highlight=False)
    result = report.result
    console.print(
        f"{len(result.added)} added, {result.duplicates} already banked, "
        f"{result.low_quality} below quality {settings.bank_min_quality}, "
        f"{len(report.errors)} malformed lines skipped",
        highlight=False,
    )
    if retro and result.added:
        _retro_after_change(settings, result.added, trigger=f"import:{file.name}")
    if report.errors:
        raise CliError(f"{len(report.errors)} malformed lines in {file.name} were skipped")


@bank_app.command("export")
def export(
    output: Path | None = typer.Option(None, "--output", "-o", help="File (default: stdout)."),
    fmt: str = typer.Option("csv", "--format", help="csv or jsonl."),
    bank: BankKind | None = typer.Option(None, "--bank", "-b", help="Only this bank."),
    category: str | None = typer.Option(None, "--category", "-c", help="Only this category."),
    include_disabled: bool = typer.Option(False, "--all", help="Include disabled entries."),
    url: str | None = URL_OPTION,
) -> None:
    """Export the banks as a hash list (CSV or JSON Lines; what `bank import` reads)."""
    if fmt not in ("csv", "jsonl"):
        raise CliError(f"--format must be csv or jsonl, not {fmt!r}")
    settings = settings_with(database_url=url)
    with _session(settings) as session:
        chunks = bank_service.export_hash_list(
            session, fmt=fmt, bank=bank, category=category,  # type: ignore[arg-type]
            include_disabled=include_disabled,
        )  # fmt: skip
        if output is None:
            for chunk in chunks:
                sys.stdout.write(chunk)
            sys.stdout.flush()
            return
        try:
            with output.open("w", encoding="utf-8", newline="") as out:
                out.writelines(chunks)
        except OSError as exc:
            raise CliError(f"{output}: cannot write: {exc.strerror or exc}") from None


def _retro_after_change(settings: Settings, entry_ids: list[int], *, trigger: str) -> None:
    """Retro-match ``entry_ids`` now, in this process (the embedded default has no broker;
    with one, the CLI still does the work itself and shows it), with a progress bar: the jobs
    it re-decides show their new decision when this returns."""
    from rich.progress import Progress

    from moderation.services import retro as retro_service

    with open_database(settings.database_url) as sessions:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("retro-matching past uploads", total=None)

            def shown(run: retro_service.RetroProgress) -> None:
                progress.update(task, total=run.total or None, completed=run.scanned)

            run = retro_service.retro_match_now(
                sessions, settings, entry_ids, trigger=trigger, on_progress=shown
            )
    console.print(
        f"retro-match run #{run.id}: {run.scanned} past images scanned, {run.matched} matched, "
        f"{run.redecided} jobs re-decided",
        highlight=False,
    )


@bank_app.command("retro")
def retro(
    run_id: int | None = typer.Argument(None, help="Resume this run (default: list runs)."),
    limit: int = typer.Option(20, "--limit", min=1, help="Runs listed, newest first."),
    sweep: bool = typer.Option(
        False,
        "--sweep",
        help="First retro-match every violation entry added or re-enabled without a run (e.g. "
        "by a reviewer) and resume unfinished runs, here (what beat does on a deployment).",
    ),
    url: str | None = URL_OPTION,
) -> None:
    """Retro-matching runs and their progress; with RUN_ID, resume that run here."""
    from moderation.services import retro as retro_service

    settings = settings_with(database_url=url)
    if sweep:
        with open_database(settings.database_url) as sessions:
            outcomes = retro_service.sweep(sessions, settings)
        redecided = sum(o.run.redecided for o in outcomes)
        console.print(f"{len(outcomes)} runs, {redecided} jobs re-decided", highlight=False)
    if run_id is not None:
        with open_database(settings.database_url) as sessions:
            try:
                outcome = retro_service.resume(sessions, settings, run_id)
            except LookupError as exc:
                raise CliError(str(exc)) from None
        run = outcome.run
        console.print(
            f"run #{run.id} {run.status}: {run.scanned}/{run.total} scanned, "
            f"{run.matched} matched, {run.redecided} re-decided",
            highlight=False,
        )
        return
    with _session(settings) as session:
        runs = retro_service.latest_runs(session, limit)
    table = Table("run", "trigger", "entries", "status", "scanned", "matched", "re-decided")
    for r in runs:
        table.add_row(
            f"#{r.id}", r.trigger, str(len(r.entry_ids)), r.status, f"{r.scanned}/{r.total}",
            str(r.matched), str(r.redecided),
        )  # fmt: skip
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(bank_app, name="bank")
