"""``/v1/admin/thresholds``: threshold versions — list, show, set, roll back, pin, unpin (what
``moderation thresholds list/show/set/rollback/pin/unpin`` do), and calibrate from uploaded
labels (``moderation calibrate``), through the same services."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from moderation.services import thresholds as service
from moderation.services.reviews import catalog_categories
from moderation.thresholds.labels import parse_labels
from moderation.thresholds.tiers import LADDER

from ..auth import Principal
from ..deps import ErrorMap, StateDep, in_db, in_db_off_loop
from ..limits import read_body
from ..schemas.admin import (
    CalibratedCategoryOut,
    CalibrationOut,
    PinIn,
    ThresholdRollbackIn,
    ThresholdSetIn,
    ThresholdVersionOut,
)
from ..schemas.common import MAX_DB_ID, CleanStr, error_responses, unprocessable
from ._admin import Admin, actor_of, body_doc, read_json

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin/thresholds", tags=["admin: thresholds"])
VersionId = Annotated[int, Path(ge=1, le=MAX_DB_ID)]
Category = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="A category.")]
_CHANGE_ERRORS = error_responses(400, 401, 403, 404, 409, 413, 415, 422, 503)
# how a refused change is answered (first match wins: the last is the others' base class)
_REFUSALS: ErrorMap = (
    (service.UnknownThresholdVersion, 404),
    (service.InvalidThresholds, lambda exc: unprocessable(str(exc).replace("--", ""))),
    (service.ThresholdChangeError, 409),
)


MAX_LABELS_BYTES = 16 * 1024 * 1024  # ~200 k labelled rows
MAX_LABEL_ROWS = 200_000
MAX_BAD_LINES_SHOWN = 100
CategoryName = Annotated[str, Query(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
_LABELS_EXAMPLE = (
    "category,is_violation,job_id,score\n"
    "weapons,1,1042,\n"
    "weapons,0,,0.1834\n"
    "sexual,violation,,0.4121\n"
)
_LABELS_DOC = {
    "requestBody": {
        "required": True,
        "description": "Labels: CSV with a header (columns category, is_violation or label, "
        "and per row one of job_id, sha256 — a stored score — or score, a labelled score), "
        "or JSON Lines with the same keys (format=jsonl). At most 16 MiB and 200,000 rows.",
        "content": {"text/csv": {"schema": {"type": "string"}, "example": _LABELS_EXAMPLE}},
    }
}


def _out(v: service.ThresholdVersionRecord, active: bool | None = None) -> ThresholdVersionOut:
    return ThresholdVersionOut(
        id=v.id,
        category=v.category,
        value=v.value,
        cutoffs={t.value: c for t, c in sorted(v.cutoffs.items(), key=lambda kv: kv[0].rank)},
        scale=v.scale,
        policy=v.policy,
        strategy=v.strategy,
        reason=v.reason,
        created_by=v.created_by,
        created_at=v.created_at,
        restored_from_id=v.restored_from_id,
        pinned=v.pinned,
        active=active,
        stats=dict(v.stats),
    )


def _known(state: StateDep, category: str) -> None:
    if category not in catalog_categories(state.settings.catalog_file):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such category in the catalog")


@router.get(
    "", response_model=list[ThresholdVersionOut], responses=error_responses(401, 403, 422, 503)
)
def list_versions(
    state: StateDep,
    _admin: Admin,
    category: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,63}$")] = None,
    all_versions: Annotated[bool, Query(alias="all")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[ThresholdVersionOut]:
    """The active version of every category that has one; with ``category`` or ``all``, the
    history, newest first."""

    def read(s):  # type: ignore[no-untyped-def]
        if category or all_versions:
            return service.list_versions(s, category, limit=limit)
        return service.active_versions(s)

    found = in_db(state, read)
    return [_out(v) for v in found]


@router.get(
    "/versions/{version_id}",
    response_model=ThresholdVersionOut,
    responses=error_responses(401, 403, 404, 422, 503),
)
def show_version(state: StateDep, _admin: Admin, version_id: VersionId) -> ThresholdVersionOut:
    """One version in full, and whether it is its category's active one."""
    view = in_db(
        state, lambda s: service.show_version(s, version_id), [(service.ThresholdChangeError, 404)]
    )
    return _out(view.version, view.active)


async def _change(state: StateDep, write) -> ThresholdVersionOut:  # type: ignore[no-untyped-def]
    change = await in_db_off_loop(state, write, _REFUSALS)
    return _out(change.version, True)


@router.post(
    "/{category}/set",
    status_code=201,
    response_model=ThresholdVersionOut,
    openapi_extra=body_doc(ThresholdSetIn),
    responses=_CHANGE_ERRORS,
)
async def set_version(
    request: Request, state: StateDep, admin: Admin, category: Category
) -> ThresholdVersionOut:
    """A hand-set, pinned version of the category: the ladder moved to ``base``, or explicit
    ``cutoffs``. 404: not a catalog category; 422: unusable cut-offs or scale."""
    body = await read_json(request, ThresholdSetIn)
    _known(state, category)
    cutoffs = None
    if body.cutoffs is not None:
        if set(body.cutoffs) != set(LADDER):
            names = ", ".join(t.value for t in LADDER)
            raise unprocessable(f"cutoffs needs exactly {names}", ("body", "cutoffs"))
        cutoffs = dict(body.cutoffs)
    return await _change(
        state,
        lambda s: service.set_version(
            s, category, reason=body.reason, actor=actor_of(admin), policy=state.settings.policy,
            base=body.base, cutoffs=cutoffs, scale=body.scale,
        ),
    )  # fmt: skip


@router.post(
    "/{category}/rollback",
    status_code=201,
    response_model=ThresholdVersionOut,
    openapi_extra=body_doc(ThresholdRollbackIn, required=False),
    responses=_CHANGE_ERRORS,
)
async def rollback(
    request: Request, state: StateDep, admin: Admin, category: Category
) -> ThresholdVersionOut:
    """Make an older version (``to``; default the previous) active again, as a new pinned
    version. 404: unknown version or category; 409: nothing to roll back to."""
    body = await read_json(request, ThresholdRollbackIn, optional=True)
    _known(state, category)
    return await _change(
        state,
        lambda s: service.rollback(
            s, category, actor=actor_of(admin), to=body.to, reason=body.reason
        ),
    )


async def _pin(
    request: Request, state: StateDep, admin: Principal, category: str, pinned: bool
) -> ThresholdVersionOut:
    body = await read_json(request, PinIn, optional=True)
    _known(state, category)
    change = service.pin if pinned else service.unpin
    return await _change(
        state, lambda s: change(s, category, actor=actor_of(admin), reason=body.reason)
    )


@router.post(
    "/{category}/pin",
    status_code=201,
    response_model=ThresholdVersionOut,
    openapi_extra=body_doc(PinIn, required=False),
    responses=_CHANGE_ERRORS,
)
async def pin(
    request: Request, state: StateDep, admin: Admin, category: Category
) -> ThresholdVersionOut:
    """Pin the category's active cut-offs (a new version carrying them): the adjuster leaves
    them alone. 409: no version yet, or already pinned."""
    return await _pin(request, state, admin, category, True)


@router.post(
    "/{category}/unpin",
    status_code=201,
    response_model=ThresholdVersionOut,
    openapi_extra=body_doc(PinIn, required=False),
    responses=_CHANGE_ERRORS,
)
async def unpin(
    request: Request, state: StateDep, admin: Admin, category: Category
) -> ThresholdVersionOut:
    """Hand the category back to the adjuster (a new unpinned version, same cut-offs). 409:
    no version yet, or not pinned."""
    return await _pin(request, state, admin, category, False)


def _labels_format(request: Request, text: str, fmt: str | None) -> str:
    if fmt is not None:
        return fmt
    content_type = request.headers.get("content-type", "")
    if "ndjson" in content_type or "jsonl" in content_type:
        return "jsonl"
    return "jsonl" if text.lstrip()[:1] == "{" else "csv"


def _calibration_out(run: service.CalibrationRun) -> CalibrationOut:
    rows = []
    for c in run.categories:
        r = c.result
        rows.append(
            CalibratedCategoryOut(
                category=c.category,
                scale=c.scale,
                n=int(c.scores.size),
                positives=int(c.labels.sum()),
                appeals=c.appeals,
                threshold=r.threshold if r else None,
                cutoffs={t.value: v for t, v in c.cutoffs.items()} if c.cutoffs else None,
                precision=r.precision if r else None,
                recall=r.recall if r else None,
                fpr=r.fpr if r else None,
                bound=r.bound if r else None,
                previous_version_id=c.previous.id if c.previous else None,
                previous_value=c.previous.value if c.previous else None,
                version_id=c.version_id,
                error=c.error,
            )
        )
    return CalibrationOut(
        strategy=run.strategy,
        params=dict(run.params),
        model_ids=run.model_ids,
        written=run.written,
        categories=rows,
    )


@router.post(
    "/calibrate",
    response_model=CalibrationOut,
    openapi_extra=_LABELS_DOC,
    responses={
        201: {"model": CalibrationOut, "description": "apply=true: the versions written."},
        **error_responses(400, 401, 403, 413, 422, 503),
    },
)
async def calibrate(
    request: Request,
    state: StateDep,
    admin: Admin,
    strategy: Literal[
        "recall_target", "precision_target", "roc_optimal", "mean_std", "percentile"
    ] = "recall_target",
    recall: Annotated[float, Query(gt=0, lt=1, description="recall_target: recall.")] = 0.95,
    delta: Annotated[float, Query(gt=0, lt=1, description="recall_target: failure rate.")] = 0.05,
    precision: Annotated[float, Query(gt=0, le=1, description="precision_target.")] = 0.9,
    category: Annotated[list[CategoryName] | None, Query(max_length=64)] = None,
    scale: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,31}$")] = None,
    fmt: Annotated[Literal["csv", "jsonl"] | None, Query(alias="format")] = None,
    apply: bool = False,
    appeals: Annotated[
        bool,
        Query(
            description="Add the decided appeals of the labels' categories as labels weighted "
            "MODERATION_APPEAL_EVIDENCE_WEIGHT (never counted as audits)."
        ),
    ] = False,
    reason: Annotated[CleanStr | None, Query(min_length=1, max_length=2000)] = None,
) -> JSONResponse:
    """Calibrate thresholds from uploaded labels, as ``moderation calibrate`` does (the same
    service): a threshold per category by ``strategy``. A dry run by default: the answer is
    the proposal (200). ``apply=true`` writes one version per category through the one
    version writer, audit-logged (201) — only when every category could be calibrated, else
    422 and nothing is written. Bad lines: 422 listing each with its number (nothing is
    calibrated from a partial file); a category must be in the catalog. ``scale`` is the
    scale of given scores (default: the category's active version's)."""
    raw = await read_body(request, MAX_LABELS_BYTES)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the labels must be UTF-8 text") from None
    if "\x00" in text:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the labels must be UTF-8 text")
    if text.count("\n") > MAX_LABEL_ROWS + 1:
        raise HTTPException(413, f"at most {MAX_LABEL_ROWS} label rows per request")
    chosen = _labels_format(request, text, fmt)
    catalog = catalog_categories(state.settings.catalog_file)
    try:
        rows, problems = await run_in_threadpool(parse_labels, text, fmt=chosen, categories=catalog)
    except service.CalibrationError as exc:
        raise unprocessable(str(exc)) from None
    if problems:
        shown = problems[:MAX_BAD_LINES_SHOWN]
        detail = [{"loc": ["body", p.line], "msg": p.message, "type": "value_error"} for p in shown]
        if len(problems) > len(shown):
            more = f"and {len(problems) - len(shown)} more bad lines"
            detail.append({"loc": ["body"], "msg": more, "type": "value_error"})
        raise HTTPException(422, detail)
    if not rows:
        raise unprocessable("no label rows")
    params = {"recall": recall, "delta": delta, "precision": precision}
    run = await in_db_off_loop(
        state,
        lambda s: service.calibrate(
            s, rows, apply=apply, actor=actor_of(admin), policy=state.settings.policy,
            reason=reason, strategy=strategy, params=params, scale=scale, categories=category,
            labels_file=f"api upload ({len(rows)} rows, {chosen})",
            appeal_weight=state.settings.appeal_evidence_weight if appeals else None,
        ),
        [(service.CalibrationError, lambda exc: unprocessable(str(exc).replace("--", "")))],
    )  # fmt: skip
    if apply and run.failed:
        details = "; ".join(f"{c.category}: {c.error}" for c in run.failed)
        raise unprocessable(
            f"{len(run.failed)} of {len(run.categories)} categories not calibrated, "
            f"nothing written: {details}"
        )
    out = _calibration_out(run)
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if run.written else 200)
