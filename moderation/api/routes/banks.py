"""Admin API for the hash banks: add an entry, look a hash or image up, import and export hash
lists, enable/disable entries, and the retro-matching runs (what ``moderation bank
add/match/import/export/enable/disable/retro`` do, through the same services)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from PIL.Image import Image as PILImage

from moderation.domain import BankKind
from moderation.hashbank.hashing import PdqHash
from moderation.images import ImageRejected
from moderation.services import banks as bank_service
from moderation.services import retro as retro_service
from moderation.services.reviews import catalog_categories

from ..deps import ApiState, StateDep, in_db
from ..schemas.banks import BankAddIn, BankAddOut, BankMatchIn, BankMatchOut
from ..schemas.common import MAX_DB_ID, CleanStr, error_responses, unprocessable
from ._admin import Admin, actor_of, body_doc, read_json

__all__ = ["router"]

router = APIRouter(prefix="/v1/banks", tags=["banks"])
_MEDIA = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
EntryId = Annotated[int, Path(ge=1, le=MAX_DB_ID)]


def _run_json(run: retro_service.RetroProgress) -> dict[str, object]:
    return {
        "id": run.id,
        "trigger": run.trigger,
        "status": run.status,
        "entries": len(run.entry_ids),
        "total": run.total,
        "scanned": run.scanned,
        "matched": run.matched,
        "redecided": run.redecided,
        "error": run.error,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def _retro(state: ApiState, entry_ids: list[int], trigger: str) -> dict[str, object]:
    """Queue a retro-matching run for a worker (run here when the broker is down)."""
    run = retro_service.schedule(
        state.sessions,
        state.settings,
        entry_ids,
        trigger=trigger,
        send_task=state.publisher.client.send_task,
    )
    return _run_json(run)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {"content": {m: {"schema": {"type": "string"}} for m in _MEDIA.values()}},
        **error_responses(401, 403, 422, 503),
    },
)
def export(
    state: StateDep,
    _admin: Admin,
    fmt: Annotated[Literal["csv", "jsonl"], Query(alias="format")] = "csv",
    bank: BankKind | None = None,
    category: Annotated[CleanStr | None, Query(max_length=64)] = None,
    include_disabled: bool = False,
) -> StreamingResponse:
    """The banks as a hash list (columns hash, quality, bank, category, tags, source,
    added_at), streamed."""
    session = state.sessions()

    def lines():  # type: ignore[no-untyped-def]
        try:
            yield from bank_service.export_hash_list(
                session, fmt=fmt, bank=bank, category=category, include_disabled=include_disabled
            )
        finally:
            session.close()

    return StreamingResponse(lines(), media_type=_MEDIA[fmt])


@router.post("/import", responses=error_responses(400, 401, 403, 413, 422, 503))
async def import_(
    request: Request,
    state: StateDep,
    admin: Admin,
    fmt: Annotated[Literal["csv", "jsonl"] | None, Query(alias="format")] = None,
    bank: BankKind | None = None,
    category: Annotated[CleanStr | None, Query(max_length=64)] = None,
    source: Annotated[CleanStr | None, Query(max_length=200)] = None,
    name: Annotated[CleanStr, Query(max_length=200)] = "upload",
    retro: bool = True,
) -> dict[str, object]:
    """Import a hash list sent as the request body (CSV with a header, or JSON Lines).
    Malformed lines come back with their numbers and are skipped; entries already banked are
    skipped; the new ones are retro-matched in one run."""
    body = await request.body()  # after the admin check; MODERATION_MAX_REQUEST_BYTES caps it
    try:
        text = body.decode("utf-8-sig")
        ok = "\x00" not in text
    except UnicodeDecodeError:
        ok = False
    if not ok:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the hash list must be UTF-8 text")
    chosen = fmt or bank_service.detect_format(name, text[:200])

    def run_import() -> bank_service.HashListImport:
        # parsing and inserting 100 k lines takes seconds: off the event loop
        return in_db(
            state,
            lambda s: bank_service.import_hash_list(
                s, text.splitlines(), fmt=chosen, imported_by=actor_of(admin),
                file_name=name, default_bank=bank, default_category=category,
                default_source=source, min_quality=state.settings.bank_min_quality,
                categories=catalog_categories(state.settings.catalog_file),
            ),
        )  # fmt: skip

    report = await run_in_threadpool(run_import)
    run = (
        await run_in_threadpool(_retro, state, report.added, f"import:{name}")
        if retro and report.added
        else None
    )
    return {
        "added": len(report.added),
        "duplicates": report.result.duplicates,
        "low_quality": report.result.low_quality,
        "errors": [{"line": e.line, "message": e.message} for e in report.errors],
        "retro_run": run,
    }


@router.post("/entries/{entry_id}/{action}", responses=error_responses(401, 403, 404, 422, 503))
def toggle(
    entry_id: EntryId, action: Literal["enable", "disable"], state: StateDep, admin: Admin
) -> dict[str, object]:
    """Disable an entry (workers stop matching it at their next batch) or re-enable it (and
    retro-match it)."""
    entry = in_db(
        state,
        lambda s: bank_service.set_enabled(
            s, entry_id, enabled=action == "enable", actor=actor_of(admin)
        ),
        [(bank_service.UnknownBankEntry, 404)],
    )
    run = _retro(state, [entry.id], f"api:enable#{entry.id}") if entry.enabled else None
    return {"id": entry.id, "enabled": entry.enabled, "retro_run": run}


@router.get("/retro-runs", responses=error_responses(401, 403, 422, 503))
def retro_runs(
    state: StateDep, _admin: Admin, limit: Annotated[int, Query(ge=1, le=500)] = 20
) -> list[dict[str, object]]:
    """Retro-matching runs, newest first, with their progress and outcome."""
    runs = in_db(state, lambda s: retro_service.latest_runs(s, limit))
    return [_run_json(r) for r in runs]


def _image(state: ApiState, encoded: str) -> bytes:
    """The decoded upload's bytes (413 over the upload limit, 422 not base64)."""
    limit = state.settings.max_upload_bytes
    if len(encoded) // 4 * 3 > limit + 2:  # refuse before decoding
        raise HTTPException(413, f"image_base64: the image exceeds the {limit}-byte limit")
    try:
        return base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        raise unprocessable("not valid base64", ("body", "image_base64")) from None


def _decoded(state: ApiState, encoded: str) -> PILImage:
    """The uploaded picture: 413 over the upload limit, 422 not base64 or not an image."""
    try:
        return bank_service.decode_bank_image(_image(state, encoded), state.settings)
    except ImageRejected as exc:
        if exc.code == "too_large":
            raise HTTPException(413, f"{exc.code}: {exc.message}") from None
        raise unprocessable(f"{exc.code}: {exc.message}", ("body", "image_base64")) from None


def _add(
    state: ApiState, body: BankAddIn, actor: str
) -> tuple[PdqHash, bank_service.BankAddResult]:
    """Hash (when an image was sent) and bank, in one transaction; runs in a worker thread."""
    reason = body.reason or f"added over the API by {actor}"
    if body.image_base64 is not None:
        image = _decoded(state, body.image_base64)
        return in_db(
            state,
            lambda s: bank_service.add_image(
                s, image, bank=body.bank, category=body.category, actor=actor, reason=reason,
                settings=state.settings,
            ),
        )  # fmt: skip
    pdq = PdqHash.from_hex(body.hash or "", body.quality)
    result = in_db(
        state,
        lambda s: bank_service.add_hash(
            s, pdq, bank=body.bank, category=body.category, actor=actor, reason=reason,
            settings=state.settings,
        ),
    )  # fmt: skip
    return pdq, result


@router.post(
    "/entries",
    status_code=201,
    response_model=BankAddOut,
    openapi_extra=body_doc(BankAddIn),
    responses={
        200: {"model": BankAddOut, "description": "Already banked: the existing entry."},
        **error_responses(400, 401, 403, 413, 415, 422, 503),
    },
)
async def add_entry(request: Request, state: StateDep, admin: Admin) -> JSONResponse:
    """Bank a PDQ hash or an image (``moderation bank add``): audit-logged, the category
    checked against the catalog, a new entry retro-matched against past uploads. 201 added;
    200 duplicate (an enabled entry with the hash is already in the bank and category); 422
    for a hash or image too featureless to match on (quality below
    MODERATION_BANK_MIN_QUALITY) or a category the bank does not take."""
    body = await read_json(request, BankAddIn, max_bytes=state.settings.max_request_bytes)
    try:
        bank_service.check_bank_category(
            body.bank, body.category, catalog_categories(state.settings.catalog_file)
        )
    except bank_service.BankCategoryError as exc:
        raise unprocessable(str(exc), ("body", "category")) from None
    pdq, result = await run_in_threadpool(_add, state, body, actor_of(admin))
    outcome, entry = result.outcome, result.entry
    if outcome == "low_quality" or entry is None:
        raise unprocessable(
            f"quality {pdq.quality} < {state.settings.bank_min_quality}: too featureless to "
            "match on, not banked",
            ("body",),
        )
    run = None
    if outcome == "added":
        run = await run_in_threadpool(_retro, state, [entry.id], f"api:add#{entry.id}")
    out = BankAddOut(
        outcome=outcome, entry_id=entry.id, pdq_hash=pdq.hex, quality=pdq.quality, retro_run=run
    )
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if outcome == "added" else 200)


@router.post(
    "/match",
    response_model=BankMatchOut,
    openapi_extra=body_doc(BankMatchIn),
    responses=error_responses(400, 401, 403, 413, 415, 422, 503),
)
async def match(request: Request, state: StateDep, _admin: Admin) -> BankMatchOut:
    """The nearest enabled entries to a PDQ hash or an image, and the verdict a worker would
    reach (``moderation bank match``: "why did it match")."""
    body = await read_json(request, BankMatchIn, max_bytes=state.settings.max_request_bytes)

    def look_up() -> dict[str, object]:
        if body.image_base64 is not None:
            image = _decoded(state, body.image_base64)
            pdq = bank_service.match_pdq(image, state.settings)
        else:
            pdq = PdqHash.from_hex(body.hash or "", body.quality)
        found = in_db(
            state, lambda s: bank_service.match_hash(s, pdq, state.settings, top=body.top)
        )
        return found.as_dict(state.settings)

    return BankMatchOut.model_validate(await run_in_threadpool(look_up))
