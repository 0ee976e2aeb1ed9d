"""``/v1/jobs``: submit images (one or a batch), read a job, list jobs, retry (admin)."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from moderation.callbacks import CallbackRefused, check_callback_url
from moderation.config import Settings
from moderation.db.retry import in_transaction
from moderation.db.types import utcnow
from moderation.domain import JobStatus
from moderation.metrics import JOBS_SUBMITTED
from moderation.pipeline.intake import (
    OptionsRefused,
    Submission,
    check_options,
    keep_bytes,
    register_submissions,
)
from moderation.services.confidence import confidence_of
from moderation.services.jobs import JobView, get_job_view, list_job_views, submitter_view
from moderation.services.requeue import retry_and_publish
from moderation.services.retention import UnknownJob, set_legal_hold
from moderation.storage.blobs import open_blob_store
from moderation.storage.refs import MAX_URI, ReferenceRefused, check_image_uri
from moderation.thresholds.scenarios import MAX_MATCH_TEXT, JobContext, JobOptions

from ..auth import Principal
from ..deps import API_DB_RETRY_S, ApiState, StateDep, require_role
from ..limits import TooManyObjects, count_json_objects, read_body
from ..schemas.common import (
    MAX_DB_ID,
    NO_NUL_PATTERN,
    UtcDatetime,
    error_responses,
    unprocessable,
    validated,
)
from ..schemas.jobs import (
    BatchSubmission,
    JobAccepted,
    JobList,
    JobOut,
    JsonSubmission,
    LegalHold,
)

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
Submitter = Annotated[Principal, Depends(require_role("submitter"))]
Admin = Annotated[Principal, Depends(require_role("admin"))]


def _body_doc(json_model: str, multipart: dict[str, Any]) -> dict[str, Any]:
    # the JSON body's model is put in components by app.openapi (models_json_schema), so its
    # nested $refs resolve there
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": multipart},
                "application/json": {"schema": {"$ref": f"#/components/schemas/{json_model}"}},
            },
        }
    }


_TEXT = {"type": "string", "pattern": NO_NUL_PATTERN}
_FIELDS: dict[str, dict[str, Any]] = {
    "external_id": {**_TEXT, "maxLength": 200},
    "callback_url": {**_TEXT, "maxLength": 2000},
    "priority": {"type": "integer", "minimum": 0, "maximum": 9},
    "match_text": {**_TEXT, "minLength": 1, "maxLength": MAX_MATCH_TEXT},
    "tags": {"type": "boolean"},
    "context": {
        "type": "string",
        "description": "a JSON object (see ContextIn)",
        "contentMediaType": "application/json",
    },
}
_URI = {
    **_TEXT,
    "minLength": 1,
    "maxLength": MAX_URI,
    "description": "s3://bucket/key or file:///path (instead of a file part)",
}
SINGLE_DOC = _body_doc(
    "JsonSubmission",
    {
        "type": "object",
        "properties": {
            "file": {"type": "string", "format": "binary"},
            "image_uri": _URI,
            **_FIELDS,
        },
    },
)
BATCH_DOC = _body_doc(
    "BatchSubmission",
    {
        "type": "object",
        "properties": {
            "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
            "image_uri": {"type": "array", "items": _URI},
            "priority": _FIELDS["priority"],
            "match_text": _FIELDS["match_text"],
            "tags": _FIELDS["tags"],
            "context": _FIELDS["context"],
        },
    },
)
# every status the submit routes answer besides 202 (413: body, image or item count)
SUBMIT_ERRORS = error_responses(400, 401, 403, 413, 415, 422, 503)


@dataclass(frozen=True)
class _Item:
    data: bytes | None  # None: image_uri names where the image is
    external_id: str | None = None
    callback_url: str | None = None
    priority: int = 0
    options: JobOptions = JobOptions()
    image_uri: str | None = None


def _options(s: JsonSubmission, loc: tuple[str | int, ...]) -> JobOptions:
    try:
        context = JobContext(**s.context.model_dump()) if s.context is not None else None
        return JobOptions(match_text=s.match_text, tags=s.tags, context=context)
    except ValueError as exc:
        raise unprocessable(str(exc), loc) from None


def _form_fields(form: Any, names: Any) -> dict[str, Any]:
    fields = {}
    for name in names:
        values = form.getlist(name)
        if not values:
            continue
        if len(values) > 1 or not isinstance(values[0], str):
            raise unprocessable(f"multipart field {name!r} must be one plain (non-file) value")
        fields[name] = values[0]
    if "context" in fields:
        try:
            fields["context"] = json.loads(fields["context"])
        except ValueError:
            raise unprocessable("multipart field 'context' is not a JSON object") from None
    return fields


def _decode_b64(value: str, loc: tuple[str | int, ...], max_bytes: int) -> bytes:
    if len(value) // 4 * 3 > max_bytes + 2:  # refuse before decoding
        where = ".".join(map(str, (*loc[1:], "image_base64")))
        raise HTTPException(413, f"{where}: the image exceeds the {max_bytes}-byte limit")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise unprocessable("not valid base64", (*loc, "image_base64")) from None


def _too_many(settings: Settings, batch: bool) -> HTTPException:
    if batch:
        return HTTPException(413, f"at most {settings.max_batch_jobs} images per request")
    return unprocessable("one submission: an object with at most a 'context' object inside")


def _parse_json(raw: bytearray, settings: Settings, *, batch: bool) -> list[_Item]:
    """Runs in a worker thread: a body of 100 MB takes the event loop no time.

    The item count is bounded before the body is decoded: a submission is at most two
    objects (itself and its ``context``), so a body that opens more than
    ``2 × max_batch_jobs + 1`` objects is refused — while it is received (``read_body``) and
    once more on the whole body here, before any JSON decoding."""
    max_jobs = settings.max_batch_jobs if batch else 1
    if count_json_objects(raw, 2 * max_jobs + 1) > 2 * max_jobs + 1:
        raise _too_many(settings, batch)
    parsed = validated(BatchSubmission if batch else JsonSubmission, raw, json_body=True)
    subs = parsed.jobs if isinstance(parsed, BatchSubmission) else [parsed]
    if len(subs) > max_jobs:
        raise HTTPException(413, f"at most {max_jobs} images per request")
    locs = [("body", "jobs", i) if batch else ("body",) for i in range(len(subs))]
    options = [_options(s, loc) for s, loc in zip(subs, locs, strict=True)]
    return [
        _Item(
            None
            if s.image_base64 is None
            else _decode_b64(s.image_base64, loc, settings.max_upload_bytes),
            s.external_id,
            s.callback_url,
            s.priority,
            opts,
            s.image_uri,
        )
        for s, loc, opts in zip(subs, locs, options, strict=True)
    ]


async def _parse(request: Request, state: ApiState, *, batch: bool) -> list[_Item]:
    """The submissions of the body. Called after the route's role dependency, so an
    unauthenticated request is answered before its body is read."""
    settings = state.settings
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        field = "files" if batch else "file"
        max_files = settings.max_batch_jobs if batch else 1
        # one file over the batch limit is let in, so that the count below answers (413, or
        # 422 for several files to the single-job route); past that Starlette's 400
        form = await request.form(
            max_files=settings.max_batch_jobs + 1, max_fields=100 + settings.max_batch_jobs
        )
        uploads = form.getlist(field)
        uris = form.getlist("image_uri")
        if any(isinstance(u, str) for u in uploads) or any(not isinstance(u, str) for u in uris):
            raise unprocessable(f"multipart {field!r} must be file parts, 'image_uri' text")
        if not uploads and not uris:
            raise unprocessable(f"multipart field {field!r} missing (a file part) or 'image_uri'")
        if len(uploads) + len(uris) > max_files:
            if batch:
                raise HTTPException(413, f"at most {max_files} images per request")
            raise unprocessable(
                "POST /v1/jobs takes one 'file' or 'image_uri' (use /v1/jobs/batch for more)"
            )
        others = [k for k in form if k not in (field, "image_uri")]
        unknown = sorted(set(others) - set(_FIELDS))
        if unknown:
            raise unprocessable(f"unknown multipart fields {unknown}")
        fields = validated(JsonSubmission, {"image_base64": "", **_form_fields(form, _FIELDS)})
        options = _options(fields, ("body",))
        items = [
            _Item(
                await u.read(),  # type: ignore[union-attr]
                fields.external_id,
                fields.callback_url,
                fields.priority,
                options,
            )
            for u in uploads
        ]
        return items + [
            _Item(None, fields.external_id, fields.callback_url, fields.priority, options, str(u))
            for u in uris
        ]
    if ctype.startswith("application/json"):
        max_objects = 2 * (settings.max_batch_jobs if batch else 1) + 1
        try:
            raw = await read_body(request, settings.max_request_bytes, max_objects=max_objects)
        except TooManyObjects:
            raise _too_many(settings, batch) from None
        return await run_in_threadpool(_parse_json, raw, settings, batch=batch)
    raise HTTPException(415, "send multipart/form-data or application/json")


def _accept(state: ApiState, principal: Principal, items: list[_Item]) -> list[JobAccepted]:
    settings = state.settings
    if len(items) > settings.max_batch_jobs:
        raise HTTPException(413, f"at most {settings.max_batch_jobs} images per request")
    refs: dict[int, str] = {}
    for i, item in enumerate(items):
        if item.image_uri is not None:
            try:
                refs[i] = check_image_uri(item.image_uri, settings)
            except ReferenceRefused as exc:
                loc = ("body", "jobs", i, "image_uri") if len(items) > 1 else ("body", "image_uri")
                raise unprocessable(str(exc), loc) from None
        elif item.data is not None and len(item.data) > settings.max_upload_bytes:
            raise HTTPException(
                413, f"image {i}: exceeds the {settings.max_upload_bytes}-byte limit"
            )
        try:
            check_options(item.options, settings.backend)
        except OptionsRefused as exc:
            raise unprocessable(str(exc)) from None
        if item.callback_url:
            try:
                check_callback_url(item.callback_url, settings.callback_allowlist)
            except CallbackRefused as exc:
                raise unprocessable(str(exc), ("body", "callback_url")) from None
    subs = [
        Submission.from_reference(refs[i], **_fields(principal, item))
        if i in refs
        else Submission.from_bytes(item.data or b"", **_fields(principal, item))
        for i, item in enumerate(items)
    ]
    try:
        subs = keep_bytes(open_blob_store(settings), subs)
    except Exception as exc:  # the blob store (dir/s3) is down: nothing was queued
        log.warning("blob store refused an upload: %s: %s", type(exc).__name__, exc)
        raise HTTPException(503, "the blob store is unavailable; try again") from None
    ids = in_transaction(
        state.sessions,
        lambda s: register_submissions(s, subs, utcnow(), publishing=True),
        give_up_after_s=API_DB_RETRY_S,
    )
    JOBS_SUBMITTED.inc(len(ids))
    by_priority: dict[int, list[int]] = {}
    for job_id, item in zip(ids, items, strict=True):
        by_priority.setdefault(item.priority, []).append(job_id)
    for priority, group in by_priority.items():
        state.publisher.enqueue(  # type: ignore[attr-defined]
            state.sessions, group, priority, premarked=True
        )
    return [
        JobAccepted(
            id=job_id,
            status="queued",
            sha256=s.sha256,
            external_id=s.external_id,
            url=f"/v1/jobs/{job_id}",
        )
        for job_id, s in zip(ids, subs, strict=True)
    ]


def _fields(principal: Principal, item: _Item) -> dict[str, Any]:
    return {
        "source": "api",
        "external_id": item.external_id,
        "submitted_by": principal.name,
        "priority": item.priority,
        "callback_url": item.callback_url,
        # a re-run of the intake transaction after a lost COMMIT finds these jobs
        "intake_key": uuid.uuid4().hex,
        "options": item.options,
    }


async def _submit(request: Request, state: ApiState, principal: Principal, batch: bool) -> Any:
    items = await _parse(request, state, batch=batch)
    return await run_in_threadpool(_accept, state, principal, items)


@router.post(
    "",
    status_code=202,
    response_model=JobAccepted,
    openapi_extra=SINGLE_DOC,
    responses=SUBMIT_ERRORS,
)
async def submit_job(
    request: Request, response: Response, state: StateDep, principal: Submitter
) -> JobAccepted:
    """Submit one image (multipart ``file`` or JSON ``image_base64``), or its location
    (``image_uri``: ``s3://`` an allowed bucket, ``file://`` under the configured root)."""
    accepted: list[JobAccepted] = await _submit(request, state, principal, batch=False)
    response.headers["Location"] = accepted[0].url
    return accepted[0]


@router.post(
    "/batch",
    status_code=202,
    response_model=list[JobAccepted],
    openapi_extra=BATCH_DOC,
    responses=SUBMIT_ERRORS,
)
async def submit_batch(request: Request, state: StateDep, principal: Submitter) -> Any:
    """Submit many images in one request (multipart ``files`` or JSON ``jobs``)."""
    return await _submit(request, state, principal, batch=True)


def _visible(principal: Principal) -> str | None:
    """A submitter sees only its own jobs; reviewers and admins see all."""
    return None if principal.has("reviewer") else principal.name


# ``:int``: only digits reach the job routes, so GET /v1/jobs/batch is a 405 (POST-only path)
JobId = Annotated[int, Path(ge=1, le=MAX_DB_ID)]


@router.get(
    "/{job_id:int}", response_model=JobOut, responses=error_responses(401, 403, 404, 422, 503)
)
def get_job(job_id: JobId, state: StateDep, principal: Submitter) -> JobOut:
    """Status, per-category scores and confidence levels, tier, threshold versions, and the
    match verdict and tags the job asked for. A submitter sees only its own jobs, and of a
    hash-bank match the bank and category, not the entry's reason (who confirmed it on
    which job)."""
    view, confidence = in_transaction(
        state.sessions, lambda s: _job_with_confidence(s, job_id), give_up_after_s=API_DB_RETRY_S
    )
    owner = _visible(principal)
    if view is None or (owner is not None and view.submitted_by != owner):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id}")
    return JobOut.of(_shown(principal, view), confidence)


def _shown(principal: Principal, view: JobView) -> JobView:
    return view if principal.has("reviewer") else submitter_view(view)


def _job_with_confidence(session: Any, job_id: int) -> tuple[Any, dict[str, str | None]]:
    view = get_job_view(session, job_id)
    if view is None:
        return None, {}
    model = {s.category: s.score for s in view.scores if s.source != "hash_match"}
    return view, confidence_of(session, model)


@router.get("", response_model=JobList, responses=error_responses(401, 403, 422, 503))
def list_jobs(
    state: StateDep,
    principal: Submitter,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    since: Annotated[UtcDatetime | None, Query(description="ISO 8601; naive is UTC.")] = None,
    after_id: Annotated[int, Query(ge=0, le=MAX_DB_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JobList:
    """Jobs in id order, filtered by status and submission time (ISO 8601)."""
    views = in_transaction(
        state.sessions,
        lambda s: list_job_views(
            s,
            status=status_,
            since=since,
            submitted_by=_visible(principal),
            after_id=after_id,
            limit=limit,
        ),
        give_up_after_s=API_DB_RETRY_S,
    )
    next_id = views[-1].id if len(views) == limit else None
    return JobList(jobs=[JobOut.of(_shown(principal, v)) for v in views], next_after_id=next_id)


@router.post(
    "/{job_id:int}/retry",
    status_code=202,
    response_model=JobOut,
    responses=error_responses(401, 403, 404, 409, 422, 503),
)
def retry_job(job_id: JobId, state: StateDep, principal: Admin) -> JobOut:
    """Requeue a failed or quarantined job with a fresh attempt count (admin)."""
    if not retry_and_publish(state.sessions, state.publisher, [job_id]).requeued:
        raise HTTPException(409, f"job {job_id} does not exist or is not failed/quarantined")
    return get_job(job_id, state, principal)


@router.put(
    "/{job_id:int}/legal-hold",
    response_model=LegalHold,
    responses=error_responses(401, 403, 404, 422, 503),
)
def put_legal_hold(job_id: JobId, state: StateDep, principal: Admin) -> LegalHold:
    """Put a legal hold on the job's image: retention keeps its bytes (admin, audit-logged)."""
    return _legal_hold(job_id, state, principal, True)


@router.delete(
    "/{job_id:int}/legal-hold",
    response_model=LegalHold,
    responses=error_responses(401, 403, 404, 422, 503),
)
def delete_legal_hold(job_id: JobId, state: StateDep, principal: Admin) -> LegalHold:
    """Lift the legal hold on the job's image (admin, audit-logged)."""
    return _legal_hold(job_id, state, principal, False)


def _legal_hold(job_id: int, state: ApiState, principal: Principal, held: bool) -> LegalHold:
    try:
        image_id = in_transaction(
            state.sessions,
            lambda s: set_legal_hold(s, job_id, held, actor=principal.name),
            give_up_after_s=API_DB_RETRY_S,
        )
    except UnknownJob:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id}") from None
    return LegalHold(job_id=job_id, image_id=image_id, legal_hold=held)
