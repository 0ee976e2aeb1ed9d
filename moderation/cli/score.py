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
    from moderation.scoring.texts import Scenario
    from moderation.thresholds.scenarios import JobContext, JobOptions
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
    scenario: Scenario | None = None  # match verdict, tags (when asked)
    confidence: dict[str, str | None] = field(default_factory=dict)
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
    paths: list[Path],
    scorer: Scorer,
    thresholds: dict[str, CategoryThresholds],
    settings: Settings,
    options: JobOptions | None = None,
) -> list[FileResult]:
    """Decode and score ``settings.batch_size`` files at a time, then decide; order kept.

    Every file is decided as a job with ``options`` (match text, tags, context) would be under
    ``settings.policy``; confidence levels are taken against this run's scores. Only one batch
    of decoded pixels is held at a time, so any number of files fits in memory.
    """
    from moderation.scoring.scorers import score_isolating, score_keeping_vectors, scorer_embedder
    from moderation.scoring.texts import TagVocabulary, TextUnsupported, make_scenarios
    from moderation.thresholds.presets import policy_named
    from moderation.thresholds.scenarios import (
        JobOptions,
        apply_policy,
        context_thresholds,
        wants_tags,
    )
    from moderation.thresholds.tiers import decide

    options = options or JobOptions()
    policy = policy_named(settings.policy)
    texts = bool(options.match_text or wants_tags(options, policy))
    embedder = scorer_embedder(scorer)
    if texts and embedder is None:
        raise TextUnsupported(
            f"--match-text and --tags need a backend that embeds text (gme or fake); "
            f"{settings.backend} cannot"
        )
    vocabulary: list[TagVocabulary] = []

    def tag_vocabulary() -> TagVocabulary:
        if not vocabulary:
            assert embedder is not None
            vocabulary.append(TagVocabulary(embedder, settings.tag_labels))
        return vocabulary[0]

    job_thresholds = context_thresholds(thresholds, options.context)
    results: list[FileResult] = []
    with Progress(console=err_console, transient=True, disable=len(paths) <= 1) as progress:
        task = progress.add_task("scoring", total=len(paths))
        for start in range(0, len(paths), settings.batch_size):
            read = [_read(path, settings) for path in paths[start : start + settings.batch_size]]
            good = [(result, image) for result, image in read if image is not None]
            images = [image for _, image in good]
            vectors = None
            if texts and images:
                try:
                    forward, vectors = score_keeping_vectors(scorer, images)
                    score_sets: list[Any] = list(forward)
                except Exception:  # one bad image: fall back to scoring them one by one
                    score_sets = score_isolating(scorer, images)
            else:
                score_sets = score_isolating(scorer, images) if images else []
            scenarios = make_scenarios(
                scorer,
                policy,
                [options] * len(good),
                vectors,
                list(range(len(good))) if vectors is not None else [None] * len(good),
                tag_vocabulary,
            )
            for (result, _), score_set, scenario in zip(good, score_sets, scenarios, strict=True):
                if isinstance(score_set, Exception):
                    result.error_code, result.error = "scoring_failed", str(score_set)
                    continue
                result.scores = score_set
                values = {c: s.score for c, s in score_set.items()}
                decision = decide(values, job_thresholds, settings.policy)
                result.decision = apply_policy(decision, policy, scenario.match)
                result.scenario = scenario
            results.extend(result for result, _ in read)
            progress.advance(task, len(read))
    _add_confidence(results)
    return results


def _add_confidence(results: list[FileResult]) -> None:
    """Each score's confidence level among this run's scores of its category."""
    from moderation.thresholds.scenarios import confidence_level

    reference: dict[str, list[float]] = {}
    for r in results:
        for category, s in r.scores.items():
            reference.setdefault(category, []).append(s.score)
    for r in results:
        r.confidence = {c: confidence_level(s.score, reference[c]) for c, s in r.scores.items()}


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
                    "policy": d.policy,
                },
                **((r.scenario.record() or {}) if r.scenario else {}),
                "scores": {
                    c: {
                        "score": round(s.score, 6),
                        "scale": scorer.scales[c],
                        "tier": str(d.category_tiers[c]),
                        "source": str(s.source),
                        "phrasing": s.phrasing,
                        "confidence": r.confidence.get(c),
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
    for column in ("image", "category", "score", "scale", "tier", "confidence", "winning phrasing"):
        table.add_column(column, overflow="fold")
    verdicts = Table(title="decisions")
    for column in ("image", "tier", "action", "category", "priority", "match", "tags"):
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
                f"[{TIER_STYLE[tier]}]{tier}[/]", r.confidence.get(category) or "—",
                escape(s.phrasing or "—"),
            )  # fmt: skip
            name = ""
        tier = str(d.tier)
        verdicts.add_row(
            escape(Path(r.path).name), f"[{TIER_STYLE[tier]}]{tier}[/]", d.action,
            d.category or "—", f"{d.priority:.2f}", *_scenario_cells(r.scenario),
        )  # fmt: skip
    if table.row_count:
        console.print(table)
        console.print(verdicts)


def _scenario_cells(scenario: Scenario | None) -> tuple[str, str]:
    if scenario is None or scenario.error:
        return ("—", "—") if scenario is None else (scenario.error, "—")
    match = scenario.match
    cell = f"{match.verdict} ({match.score:.3f})" if match else "—"
    tags = scenario.tagging
    labels = ", ".join(f"{t.label} {t.score:.2f}" for t in tags.tags) if tags else "—"
    return cell, escape(labels or "none")


def _parse_context(pairs: list[str]) -> JobContext | None:
    """``--context key=value`` pairs as a ``JobContext``; ``CliError`` naming what is wrong."""
    from moderation.thresholds.scenarios import JobContext

    if not pairs:
        return None
    raw: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise CliError(f"--context {pair!r}: expected key=value")
        key = key.strip()
        if key == "candidates":
            try:
                raw[key] = int(value)
            except ValueError:
                raise CliError(f"--context candidates must be an integer, got {value!r}") from None
        else:
            raw[key] = value.strip()
    try:
        return JobContext.parse(raw)
    except (TypeError, ValueError) as exc:
        raise CliError(str(exc)) from None


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
    match_text: str | None = typer.Option(
        None,
        "--match-text",
        help="A text every image should match (e.g. a listing title): prints the match "
        "verdict accept/review/reject; the ecommerce policy acts on it. Needs gme or fake.",
    ),
    tags: bool | None = typer.Option(
        None, "--tags/--no-tags", help="Album tags (default: on under the album_tagging policy)."
    ),
    context: list[str] = typer.Option(
        [],
        "--context",
        help="Decision context key=value, repeatable: candidates=N, criticality=low|normal|high, "
        "image_complexity=low|normal|high (docs/policies.md).",
    ),
) -> None:
    """Score IMAGE files: per-category scores, winning phrasings, risk tiers, confidence
    levels; with --match-text / --tags / --context, the seed's scenarios (docs/policies.md).

    Exit status: 0 all scored, 1 some file could not be scored, 2 bad configuration.
    """
    from moderation.embedders.registry import BackendUnavailable
    from moderation.scoring.catalog import CatalogError
    from moderation.scoring.scorers import ScorerConfigError, build_scorer
    from moderation.services.thresholds import scoring_thresholds
    from moderation.thresholds.overrides import ThresholdsFileError
    from moderation.thresholds.scales import UnknownScale
    from moderation.thresholds.scenarios import JobOptions

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
    try:
        options = JobOptions(match_text=match_text, tags=tags, context=_parse_context(context))
        results = score_files(images, scorer, thresholds, settings, options)
    except ValueError as exc:  # TextUnsupported, a blank or too long --match-text
        raise CliError(str(exc)) from None
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
