"""Page 4, Matcher playground (the seed's own page): an uploaded image against typed candidate
texts, each text's score a bar coloured by the seed's bands; plus the image's category scores
and tiers as the pipeline would record them."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException

from moderation.db.views import begin_read_only
from moderation.domain import RiskTier
from moderation.images import ALLOWED_FORMATS, DecodedImage, ImageRejected, decode_image
from moderation.scoring.base import ScoreSet
from moderation.thresholds.overrides import ThresholdsFileError
from moderation.thresholds.presets import SCORE_BANDS
from moderation.thresholds.resolver import thresholds_for
from moderation.thresholds.tiers import CategoryThresholds, Decision, decide
from moderation.web.deps import DashboardState, Page, render, require_csrf
from moderation.web.pages.overview import TIER_COLORS
from moderation.web.playground import (
    MAX_TEXT_CHARS,
    MAX_TEXTS,
    AnalysedImage,
    Playground,
    PlaygroundUnavailable,
    TextScore,
    TextsRejected,
    parse_texts,
)

__all__ = ["BAND_COLORS", "PAGE", "Bar", "CategoryRow", "bars", "category_rows", "router"]

log = logging.getLogger(__name__)
PAGE = Page(path="/matcher", title="Matcher", order=4)
router = APIRouter()

# The seed page printed ≥ 0.3 green and < 0.1 red; the bands in between get the steps between.
BAND_COLORS = {
    "very_high": "#2b8a3e", "high": "#51cf66", "medium": "#fab005", "low": "#fd7e14",
    "none": "#e03131",
}  # fmt: skip
DEFAULT_TEXTS = "A girl\nA boy\nA cat\nA dog\nA tree\nA car"  # the seed page's example
FORM_OVERHEAD = 1 << 20  # multipart framing and the texts, on top of the largest image
FIELD_BYTES = 256 << 10  # one text field: MAX_TEXTS × MAX_TEXT_CHARS UTF-8 fits with room


@dataclass(frozen=True)
class Bar:
    text: str
    score: float
    band: str
    width: float  # percent of the axis, 0–100


@dataclass(frozen=True)
class CategoryRow:
    category: str
    score: float
    scale: str
    tier: RiskTier
    phrasing: str | None
    source: str  # where the cut-offs came from: preset, file or "version #id"
    cutoffs: Mapping[RiskTier, float]


def bars(scores: Sequence[TextScore]) -> tuple[list[Bar], float]:
    """Bars on an axis from 0 to 0.5 (GME's observed range) or to 1 when a score exceeds 0.5.

    Negative cosines get an empty bar; the number beside it still shows the value.
    """
    axis = 0.5 if all(s.score <= 0.5 for s in scores) else 1.0
    return [
        Bar(s.text, s.score, s.band, 100.0 * min(max(s.score / axis, 0.0), 1.0)) for s in scores
    ], axis


def category_rows(
    scores: ScoreSet, thresholds: Mapping[str, CategoryThresholds], decision: Decision
) -> list[CategoryRow]:
    """One row per scored category, most severe tier first, then highest score."""
    rows = []
    for category, score in scores.items():
        th = thresholds[category]
        source = f"version #{th.version_id}" if th.version_id is not None else th.source
        tier = decision.category_tiers[category]
        rows.append(
            CategoryRow(category, score.score, th.scale, tier, score.phrasing, source, th.cutoffs)
        )
    return sorted(rows, key=lambda r: (-r.tier.rank, -r.score, r.category))


def _page(request: Request, status: int = 200, **context: Any) -> HTMLResponse:
    state: DashboardState = request.app.state.dashboard
    playground = state.playground
    scorer = playground.loaded
    embedder = playground.embedder
    context.setdefault("texts", DEFAULT_TEXTS)
    response = render(
        request, "matcher.html", PAGE,
        backend=playground.backend, matches_texts=playground.matches_texts,
        model_id=scorer.model_id if scorer is not None else None,
        catalog_version=scorer.catalog_version if scorer is not None else None,
        embedder=embedder.info if embedder is not None else None,
        band_colors=BAND_COLORS, bands=SCORE_BANDS, tier_colors=TIER_COLORS,
        max_texts=MAX_TEXTS, max_text_chars=MAX_TEXT_CHARS,
        max_upload_bytes=playground.settings.max_upload_bytes, formats=ALLOWED_FORMATS,
        **context,
    )  # fmt: skip
    response.status_code = status
    return response


@router.get(PAGE.path, response_class=HTMLResponse)
def matcher(request: Request) -> HTMLResponse:
    """The playground's form (the seed's example texts filled in)."""
    return _page(request)


@router.post(PAGE.path, response_class=HTMLResponse)
async def match(request: Request) -> HTMLResponse:
    """Score an uploaded image against the typed texts; input errors come back inline."""
    state: DashboardState = request.app.state.dashboard
    playground = state.playground
    form, error = await _read_form(request, playground)
    if form is None:
        return _page(request, 422, errors=[error])
    try:
        require_csrf(request, form.get("csrf_token"))
        raw = form.get("texts")
        texts_raw = raw if isinstance(raw, str) else ""
        errors: list[str] = []
        texts: list[str] = []
        try:
            texts = parse_texts(texts_raw)
        except TextsRejected as exc:
            errors.append(str(exc))
        image = await _image_from(form, playground, errors)
    finally:
        await form.close()
    if errors or image is None:
        return _page(request, 422, errors=errors, texts=texts_raw)
    try:
        context = await run_in_threadpool(_evaluate, state, image, texts)
    except PlaygroundUnavailable as exc:
        return _page(request, 503, errors=[str(exc)], texts=texts_raw)
    except ThresholdsFileError as exc:
        return _page(request, 503, errors=[str(exc)], texts=texts_raw)
    except DBAPIError:
        raise  # the app's handler answers 503 with the database's reason
    except Exception as exc:  # a model failing on one image: say so on the page
        log.exception("matcher playground: scoring failed")
        return _page(request, 500, errors=[f"scoring failed: {exc}"], texts=texts_raw)
    return _page(request, texts=texts_raw, text_count=len(texts), **context)


async def _read_form(request: Request, playground: Playground) -> tuple[FormData | None, str]:
    """The multipart form, or why it cannot be read (refused before reading when too large)."""
    max_bytes = playground.settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + FORM_OVERHEAD:
        return None, (
            f"too_large: the upload is {int(declared):,} bytes; images up to {max_bytes:,} bytes "
            "are accepted (MODERATION_MAX_UPLOAD_BYTES)"
        )
    try:
        form = await request.form(max_files=1, max_fields=5, max_part_size=FIELD_BYTES)
    except HTTPException as exc:  # Starlette's answer to a malformed or oversized multipart body
        return None, f"the form could not be read: {exc.detail}"
    return form, ""


async def _image_from(
    form: FormData, playground: Playground, errors: list[str]
) -> DecodedImage | AnalysedImage | None:
    """The uploaded image decoded, or the one analysed for the previous submit (``reuse``)."""
    upload = form.get("image")
    if isinstance(upload, UploadFile) and upload.filename:
        settings = playground.settings
        data = await upload.read(settings.max_upload_bytes + 1)  # one byte over is enough to refuse
        try:
            return await run_in_threadpool(
                decode_image, data,
                max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels,
                working_pixels=settings.decode_pixels,
            )  # fmt: skip
        except ImageRejected as exc:
            errors.append(f"{upload.filename}: {exc.code}: {exc.message}")
            return None
    reuse = form.get("reuse")
    if isinstance(reuse, str) and reuse:
        remembered = playground.recall(reuse)
        if remembered is None:
            errors.append("the previous image is no longer kept by this server: upload it again")
        return remembered
    errors.append("choose an image file to match the texts against")
    return None


def _evaluate(
    state: DashboardState, image: DecodedImage | AnalysedImage, texts: Sequence[str]
) -> dict[str, Any]:
    """The model work and the thresholds lookup (blocking: runs in the thread pool)."""
    playground = state.playground
    scorer = playground.scorer()
    analysed = image if isinstance(image, AnalysedImage) else playground.analyse(image)
    with state.sessions() as session:
        begin_read_only(session)
        thresholds = thresholds_for(session, scorer, playground.settings.thresholds_file)
    values = {c: s.score for c, s in analysed.scores.items()}
    decision = decide(values, thresholds, playground.settings.policy)
    matched = playground.match(analysed, texts) if playground.embedder is not None else []
    text_bars, axis = bars(matched)
    return {
        "image": analysed,
        "decision": decision,
        "categories": category_rows(analysed.scores, thresholds, decision),
        "bars": text_bars,
        "axis": axis,
    }
