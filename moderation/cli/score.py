"""``moderation score``: score image files, apply the threshold policy, print the result."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from moderation.domain import TIERS

from ._common import CliError, check_backend, console, err_console, settings_with

if TYPE_CHECKING:
    from PIL.Image import Image

    from moderation.config import Settings
    from moderation.scoring.base import Scorer, ScoreSet
    from moderation.thresholds.tiers import CategoryThresholds, Decision

__all__ = ["FileResult", "register", "score_files"]

TIER_STYLE = {tier.value: look.terminal for tier, look in TIERS.items()}


@dataclass
class FileResult:
    """One input file: its scores and decision, or why it could not be scored."""

    path: str
    sha256: str | None = None
    width: int = 0
    height: int = 0
    scores: ScoreSet = field(default_factory=dict)
    decision: Decision | None = None
    error_code: str | None = None
    error: str | None = None


def _read(path: Path, settings: Settings) -> tuple[FileResult, Image | None]:
    from moderation.images import ImageRejected, decode_image

    result = FileResult(str(path))
    try:
        if path.is_dir():
            raise ImageRejected("not_a_file", "is a directory")
        size = path.stat().st_size
        # refuse before reading: a huge file must not be pulled into memory
        if size > settings.max_upload_bytes:
            raise ImageRejected(
                "too_large", f"{size} bytes exceeds the {settings.max_upload_bytes}-byte limit"
            )
        decoded = decode_image(
            path.read_bytes(),
            max_bytes=settings.max_upload_bytes,
            max_pixels=settings.max_image_pixels,
            working_pixels=settings.decode_pixels,
        )
    except ImageRejected as exc:
        result.error_code, result.error = exc.code, exc.message
        return result, None
    except FileNotFoundError:
        result.error_code, result.error = "not_found", "no such file"
        return result, None
    except OSError as exc:
        result.error_code, result.error = "unreadable", exc.strerror or str(exc)
        return result, None
    result.sha256, result.width, result.height = decoded.sha256, decoded.width, decoded.height
    return result, decoded.image


def score_files(
    paths: list[Path], scorer: Scorer, thresholds: dict[str, CategoryThresholds], settings: Settings
) -> list[FileResult]:
    """Decode and score ``settings.batch_size`` files at a time, then decide; order kept.

    Only one batch of decoded pixels is held at a time, so any number of files fits in memory.
    """
    from moderation.scoring.scorers import score_isolating
    from moderation.thresholds.tiers import decide

    results: list[FileResult] = []
    with Progress(console=err_console, transient=True, disable=len(paths) <= 1) as progress:
        task = progress.add_task("scoring", total=len(paths))
        for start in range(0, len(paths), settings.batch_size):
            read = [_read(path, settings) for path in paths[start : start + settings.batch_size]]
            good = [(result, image) for result, image in read if image is not None]
            score_sets = score_isolating(scorer, [image for _, image in good]) if good else []
            for (result, _), score_set in zip(good, score_sets, strict=True):
                if isinstance(score_set, Exception):
                    result.error_code, result.error = "scoring_failed", str(score_set)
                    continue
                result.scores = score_set
                result.decision = decide({c: s.score for c, s in score_set.items()}, thresholds)
            results.extend(result for result, _ in read)
            progress.advance(task, len(read))
    return results


def _as_json(results: list[FileResult], scorer: Scorer, backend: str) -> dict[str, Any]:
    rows = []
    for r in results:
        if r.decision is None:
            rows.append(
                {"path": r.path, "ok": False, "error": {"code": r.error_code, "message": r.error}}
            )
            continue
        d = r.decision
        rows.append(
            {
                "path": r.path,
                "ok": True,
                "sha256": r.sha256,
                "width": r.width,
                "height": r.height,
                "decision": {
                    "tier": str(d.tier),
                    "action": d.action,
                    "category": d.category,
                    "priority": round(d.priority, 4),
                },
                "scores": {
                    c: {
                        "score": round(s.score, 6),
                        "scale": scorer.scales[c],
                        "tier": str(d.category_tiers[c]),
                        "source": str(s.source),
                        "phrasing": s.phrasing,
                    }
                    for c, s in r.scores.items()
                },
            }
        )
    return {
        "backend": backend,
        "model_id": scorer.model_id,
        "catalog_version": scorer.catalog_version,
        "results": rows,
    }


def _print_tables(results: list[FileResult], scorer: Scorer) -> None:
    table = Table(title=f"category scores ({scorer.model_id})")
    for column in ("image", "category", "score", "scale", "tier", "winning phrasing"):
        table.add_column(column, overflow="fold")
    verdicts = Table(title="decisions")
    for column in ("image", "tier", "action", "category", "priority"):
        verdicts.add_column(column, overflow="fold")
    for r in results:
        if r.decision is None:
            continue
        d, name = r.decision, escape(Path(r.path).name)
        ranked = sorted(
            r.scores.items(), key=lambda cs: (-d.category_tiers[cs[0]].rank, -cs[1].score)
        )
        for category, s in ranked:
            tier = str(d.category_tiers[category])
            table.add_row(
                name, category, f"{s.score:.4f}", scorer.scales[category],
                f"[{TIER_STYLE[tier]}]{tier}[/]", escape(s.phrasing or "—"),
            )  # fmt: skip
            name = ""
        tier = str(d.tier)
        verdicts.add_row(
            escape(Path(r.path).name), f"[{TIER_STYLE[tier]}]{tier}[/]", d.action,
            d.category or "—", f"{d.priority:.2f}",
        )  # fmt: skip
    if table.row_count:
        console.print(table)
        console.print(verdicts)


def score(
    images: list[Path] = typer.Argument(..., metavar="IMAGE", help="Image files to score."),
    patterns: Path | None = typer.Option(
        None,
        "--patterns",
        help="Violation catalog YAML (default: MODERATION_CATALOG_FILE or the packaged one); "
        "open_nsfw uses only its severities.",
    ),
    backend: str | None = typer.Option(
        None,
        "--backend",
        help="A registered backend: open_nsfw (embedded default), gme, fake, …; default "
        "MODERATION_BACKEND.",
    ),
    gme_path: Path | None = typer.Option(None, "--gme-path", help="GME weights directory."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Score IMAGE files: per-category scores, winning phrasings, risk tiers.

    Exit status: 0 all scored, 1 some file could not be scored, 2 bad configuration.
    """
    from moderation.embedders.registry import BackendUnavailable
    from moderation.scoring.catalog import CatalogError
    from moderation.scoring.scorers import ScorerConfigError, build_scorer
    from moderation.services.thresholds import scoring_thresholds
    from moderation.thresholds.overrides import ThresholdsFileError
    from moderation.thresholds.scales import UnknownScale

    check_backend(backend)
    settings = settings_with(backend=backend, catalog_file=patterns, gme_path=gme_path)
    try:
        scorer = build_scorer(settings)
    except (CatalogError, ScorerConfigError, BackendUnavailable, UnknownScale) as exc:
        raise CliError(str(exc)) from None
    try:
        resolved = scoring_thresholds(settings, scorer)
    except ThresholdsFileError as exc:
        raise CliError(str(exc)) from None
    if resolved.note:
        err_console.print(f"note: {escape(resolved.note)}", highlight=False, soft_wrap=True)
    thresholds = resolved.thresholds
    results = score_files(images, scorer, thresholds, settings)
    for r in results:
        if r.error is not None:
            err_console.print(
                f"[bold red]error:[/] {escape(r.path)}: {r.error_code}: {escape(r.error)}",
                highlight=False,
                soft_wrap=True,
            )
    failed = sum(r.error is not None for r in results)
    if as_json:
        typer.echo(json.dumps(_as_json(results, scorer, settings.backend), indent=2))
    else:
        _print_tables(results, scorer)
        console.print(f"{len(results) - failed} scored, {failed} failed", highlight=False)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("score")(score)
