"""Page 2, Review: a reviewer works the queue, one item at a time.

``GET /review`` only reads: it shows the viewer's live claim (``services.reviews.claims_of``)
— its image, blurred for the top severities until clicked, its per-category scores with the
winning phrasings, and one decision per review category — or, with none, a "Start reviewing"
button. That button posts ``/review/claim``, which claims the next item
(``services.reviews.claim_items``: highest priority first, a lease of
``MODERATION_REVIEW_LEASE_S``). ``POST /review/items/{id}`` records the decisions
(``services.reviews.record_review``, one transaction), claims the next item and redirects to
``/review``: submit & next, so a reviewer clicks "Start" once per sitting. ``/static/review.js``
adds the keys (v / n / o decide the current category and submit when every category has a
label; r reveals the image); without script the buttons do the same. Every POST carries the
session's CSRF token (``deps.require_csrf``); ``web.security`` refuses cross-site ones.

``GET /review/items/{id}/image`` serves the job's bytes (``image_blobs`` or a ``file://``
``storage_uri``, through the pipeline's own reader and its size cap) only when they decode as
an allowed image format, with the content type of the format found — never one taken from the
upload — and headers that stop the browser from sniffing or running anything in it.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from PIL import Image as PILImage
from PIL import UnidentifiedImageError
from starlette.concurrency import run_in_threadpool

from moderation.config import Settings
from moderation.domain import ReviewLabel, RiskTier
from moderation.images import ALLOWED_FORMATS, ImageRejected
from moderation.pipeline.decode import read_payload_bytes
from moderation.services.confidence import confidence_of
from moderation.services.reviews import (
    BankingOptions,
    ClaimConflict,
    ClaimedItem,
    InvalidReview,
    UnknownReviewItem,
    claim_items,
    claims_of,
    item_payload,
    record_review,
    routed_categories,
)
from moderation.web.deps import DashboardState, Page, render, require_csrf

__all__ = [
    "BLURRED_TIERS",
    "PAGE",
    "ScoreRow",
    "image_media_type",
    "parse_decisions",
    "router",
    "score_rows",
]

log = logging.getLogger(__name__)
PAGE = Page(path="/review", title="Review", order=2)
router = APIRouter()

BLURRED_TIERS = frozenset({RiskTier.HIGH, RiskTier.EXTREME})  # shown blurred until clicked
ANONYMOUS_REVIEWER = "local"  # the reviewer's name when the dashboard asks nobody to log in
MAX_NOTE_CHARS = 2000
MAX_FORM_BYTES = 64 * 1024  # labels, other categories and a note; nothing legitimate is larger
KEYS = {"v": ReviewLabel.VIOLATION, "n": ReviewLabel.NOT_VIOLATION, "o": ReviewLabel.OTHER_CATEGORY}


@dataclass(frozen=True)
class ScoreRow:
    category: str
    score: float
    phrasing: str | None
    tier: RiskTier
    asked: bool  # one of the item's review categories
    confidence: str | None = None  # the seed's level among observed scores (None: too few)


def score_rows(
    scores: Mapping[str, tuple[float, str | None, RiskTier]],
    asked: Sequence[str],
    confidence: Mapping[str, str | None] | None = None,
) -> list[ScoreRow]:
    """Every scored category, highest score first (the reviewer reads the top first)."""
    levels = confidence or {}
    rows = [
        ScoreRow(category, score, phrasing, RiskTier(tier), category in asked, levels.get(category))
        for category, (score, phrasing, tier) in scores.items()
    ]
    return sorted(rows, key=lambda r: (-r.score, r.category))


@dataclass(frozen=True)
class Decision:
    category: str
    label: ReviewLabel
    other_category: str | None


def parse_decisions(form: Mapping[str, str], categories: Sequence[str]) -> list[Decision]:
    """The decisions a review form carries: ``label:<category>`` (and ``other:<category>``
    for ``other_category``) for the item's review categories. Raises ``InvalidReview``."""
    decisions = []
    for category in categories:
        raw = (form.get(f"label:{category}") or "").strip()
        if not raw:
            continue
        try:
            label = ReviewLabel(raw)
        except ValueError:
            raise InvalidReview(f"unknown label {raw!r} for {category}") from None
        other = (form.get(f"other:{category}") or "").strip() or None
        decisions.append(
            Decision(category, label, other if label is ReviewLabel.OTHER_CATEGORY else None)
        )
    if not decisions:
        raise InvalidReview("choose a label for at least one category")
    return decisions


def image_media_type(data: bytes) -> str:
    """The content type of ``data`` found by decoding its header (allowed formats only).

    Raises ``ImageRejected`` for anything that is not one of ``ALLOWED_FORMATS``: the route
    never serves bytes a browser could take for HTML or script.
    """
    try:
        with PILImage.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as opened:
            fmt = opened.format or ""
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageRejected("not_an_image", f"stored bytes are not an image: {exc}") from None
    media = PILImage.MIME.get(fmt)
    if media is None:  # pragma: no cover - every allowed format has a MIME type
        raise ImageRejected("not_an_image", f"no content type for {fmt}")
    return media


def _state(request: Request) -> DashboardState:
    state: DashboardState = request.app.state.dashboard
    return state


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _reviewer(request: Request) -> str:
    return getattr(request.state, "viewer", None) or ANONYMOUS_REVIEWER


@router.get("/review", response_class=HTMLResponse)
def review(request: Request, empty: bool = False) -> HTMLResponse:
    """The viewer's live claim, or a button to claim one (a GET changes nothing);
    ``empty``: the last claim found nothing."""
    state = _state(request)
    reviewer = _reviewer(request)
    with state.sessions() as session:
        claimed = claims_of(session, reviewer, state.clock())
        item = claimed[0] if claimed else None
        levels = confidence_of(session, {c: v[0] for c, v in item.scores.items()}) if item else {}
    return _page(request, item, reviewer, confidence=levels, empty=empty and item is None)


@router.post("/review/claim")
async def claim(request: Request) -> Response:
    """Claim the next item for the viewer (or renew their own claim) and show it."""
    form = await request.form(max_files=0, max_fields=4, max_part_size=1024)
    require_csrf(request, form.get("csrf_token"))
    return await _claim_and_show(request, _reviewer(request))


async def _claim_and_show(request: Request, reviewer: str) -> RedirectResponse:
    claimed = await run_in_threadpool(_claim_next, request, reviewer)
    return RedirectResponse(PAGE.path if claimed else f"{PAGE.path}?empty=1", status_code=303)


def _claim_next(request: Request, reviewer: str) -> bool:
    state, settings = _state(request), _settings(request)
    with state.sessions.begin() as session:
        return bool(
            claim_items(
                session,
                reviewer=reviewer,
                n=1,
                lease_s=settings.review_lease_s,
                now=state.clock(),
                audit_max_wait_s=settings.review_audit_max_wait_s,
            )
        )


def _page(
    request: Request,
    item: ClaimedItem | None,
    reviewer: str,
    *,
    error: str | None = None,
    status_code: int = 200,
    confidence: Mapping[str, str | None] | None = None,
    empty: bool = False,
) -> HTMLResponse:
    context: dict[str, object] = {
        "empty": empty,
        "item": item,
        "reviewer": reviewer,
        "error": error,
        "keys": KEYS,
        "labels": ReviewLabel,
    }
    if item is not None:
        asked = list(item.review_categories) or [c for c in [item.category] if c]
        rows = score_rows(item.scores, asked, confidence)
        context.update(
            asked=asked,
            rows=rows,
            blurred=item.tier in BLURRED_TIERS,
            # "other category" offers every scored category, highest first
            other_choices=[r.category for r in rows],
        )
    response = render(request, "review.html", PAGE, **context)
    response.status_code = status_code
    return response


@router.post("/review/items/{item_id}", response_class=HTMLResponse)
async def decide(item_id: int, request: Request) -> Response:
    """Record the form's decisions, claim the next item, show it (303 to ``/review``)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise HTTPException(413, f"a review form is at most {MAX_FORM_BYTES} bytes")
    received = await request.form(max_files=0, max_part_size=MAX_FORM_BYTES)
    form = {k: v for k, v in received.items() if isinstance(v, str)}
    require_csrf(request, form.get("csrf_token"))
    reviewer = _reviewer(request)
    try:
        banking = BankingOptions.from_settings(_settings(request))
        await run_in_threadpool(_record, _state(request), item_id, reviewer, form, banking)
    except UnknownReviewItem:
        raise HTTPException(404, f"no review item {item_id}") from None
    except ClaimConflict as exc:
        return _page(request, None, reviewer, error=str(exc), status_code=409)
    except InvalidReview as exc:
        return _page(request, None, reviewer, error=str(exc), status_code=422)
    return await _claim_and_show(request, reviewer)


def _record(
    state: DashboardState,
    item_id: int,
    reviewer: str,
    form: Mapping[str, str],
    banking: BankingOptions,
) -> None:
    """Every decision of one form in one transaction (all or none are recorded); confirmed
    violations are banked like the API banks them (``banking`` from the settings)."""
    note = (form.get("note") or "").strip()[:MAX_NOTE_CHARS] or None
    with state.sessions.begin() as session:
        categories = routed_categories(session, item_id)
        for d in parse_decisions(form, categories):
            record_review(
                session,
                item_id=item_id,
                reviewer=reviewer,
                label=d.label,
                category=d.category,
                other_category=d.other_category,
                note=note,
                now=state.clock(),
                banking=banking,
            )


@router.get("/review/items/{item_id}/image")
def item_image(item_id: int, request: Request) -> Response:
    """The item's image bytes with the content type of the format they decode as."""
    state = _state(request)
    with state.sessions() as session:
        payload = item_payload(session, item_id)
    if payload is None:  # the foreign keys keep every item's job and image
        raise HTTPException(404, f"no review item {item_id}")
    try:
        max_bytes = _settings(request).max_upload_bytes
        data = read_payload_bytes(payload, max_bytes, _settings(request))
        if len(data) > max_bytes:  # blobs were capped at intake; the setting may since be lower
            raise ImageRejected("too_large", f"{len(data)} bytes exceeds {max_bytes}")
        media_type = image_media_type(data)
    except ImageRejected as exc:
        log.warning("review item %s: image not served: %s", item_id, exc)
        status = {"missing": 404, "not_found": 404, "purged": 410, "too_large": 413}.get(
            exc.code, 502 if exc.code == "fetch_failed" else 415
        )
        raise HTTPException(status, f"image not available: {exc.message}") from None
    return Response(
        data,
        media_type=media_type,
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Content-Disposition": "inline",
            "Cache-Control": "private, no-store",
        },
    )
