"""Admin API for the hash banks: import and export hash lists, enable/disable entries, and the
retro-matching runs (what ``moderation bank import/export/enable/disable/retro`` do)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from moderation.db.retry import in_transaction
from moderation.domain import BankKind
from moderation.services import banks as bank_service
from moderation.services import retro as retro_service
from moderation.services.reviews import catalog_categories

from ..auth import Principal
from ..deps import ApiState, StateDep, require_role
from ..schemas.common import MAX_DB_ID, CleanStr, error_responses

__all__ = ["router"]

router = APIRouter(prefix="/v1/banks", tags=["banks"])
Admin = Annotated[Principal, Depends(require_role("admin"))]
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
        return in_transaction(
            state.sessions,
            lambda s: bank_service.import_hash_list(
                s, text.splitlines(), fmt=chosen, imported_by=f"api:{admin.name}",
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
    try:
        entry = in_transaction(
            state.sessions,
            lambda s: bank_service.set_enabled(
                s, entry_id, enabled=action == "enable", actor=f"api:{admin.name}"
            ),
        )
    except bank_service.UnknownBankEntry as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    run = _retro(state, [entry.id], f"api:enable#{entry.id}") if entry.enabled else None
    return {"id": entry.id, "enabled": entry.enabled, "retro_run": run}


@router.get("/retro-runs", responses=error_responses(401, 403, 422, 503))
def retro_runs(
    state: StateDep, _admin: Admin, limit: Annotated[int, Query(ge=1, le=500)] = 20
) -> list[dict[str, object]]:
    """Retro-matching runs, newest first, with their progress and outcome."""
    runs = in_transaction(state.sessions, lambda s: retro_service.latest_runs(s, limit))
    return [_run_json(r) for r in runs]
