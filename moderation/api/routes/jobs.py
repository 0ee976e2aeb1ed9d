"""``/v1/jobs``: submit images (one or a batch), read a job, list jobs, retry (admin)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from moderation.callbacks import CallbackRefused, check_callback_url
from moderation.db.retry import in_transaction
from moderation.db.types import utcnow
from moderation.domain import JobStatus
from moderation.metrics import JOBS_SUBMITTED
from moderation.pipeline.intake import (
    OptionsRefused,
    Submission,
    check_options,
    register_submissions,
)
from moderation.services.confidence import confidence_of
from moderation.services.jobs import get_job_view, list_job_views
from moderation.services.requeue import retry_and_publish
from moderation.thresholds.scenarios import JobContext, JobOptions

from ..auth import Principal
from ..deps import ApiState, StateDep, require_role
from ..schemas.jobs import BatchSubmission, JobAccepted, JobList, JobOut, JsonSubmission

__all__ = ["router"]

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
Submitter = Annotated[Principal, Depends(require_role("submitter"))]
Admin = Annotated[Principal, Depends(require_role("admin"))]
API_DB_RETRY_S = 10  # a request waits this long for a restarting database, then gets a 503


def _body_doc(json_model: type[BaseModel], multipart: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": multipart},
                "application/json": {"schema": json_model.model_json_schema()},
            },
        }
    }


_FIELDS = {
    "external_id": {"type": "string"},
    "callback_url": {"type": "string"},
    "priority": {"type": "integer", "minimum": 0, "maximum": 9},
    "match_text": {"type": "string"},
    "tags": {"type": "boolean"},
    "context": {"type": "string", "description": "a JSON object (see ContextIn)"},
}
SINGLE_DOC = _body_doc(
    JsonSubmission,
    {
        "type": "object",
        "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary"}, **_FIELDS},
    },
)
BATCH_DOC = _body_doc(
    BatchSubmission,
    {
        "type": "object",
        "required": ["files"],
        "properties": {
            "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
            "priority": _FIELDS["priority"],
            "match_text": _FIELDS["match_text"],
            "tags": _FIELDS["tags"],
            "context": _FIELDS["context"],
        },
    },
)


@dataclass(frozen=True)
class _Item:
    data: bytes
    external_id: str | None = None
    callback_url: str | None = None
    priority: int = 0
    options: JobOptions = JobOptions()


def _options(s: JsonSubmission) -> JobOptions:
    try:
        context = JobContext(**s.context.model_dump()) if s.context is not None else None
        return JobOptions(match_text=s.match_text, tags=s.tags, context=context)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


def _form_fields(form: Any) -> dict[str, Any]:
    fields = {k: form[k] for k in _FIELDS if k in form}
    if "context" in fields:
        try:
            fields["context"] = json.loads(fields["context"])
        except ValueError:
            raise HTTPException(422, "multipart field 'context' is not a JSON object") from None
    return fields


def _decode_b64(value: str, index: int) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(422, f"jobs[{index}].image_base64 is not valid base64") from None


async def _parse(request: Request, state: ApiState, *, batch: bool) -> list[_Item]:
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form(max_files=state.settings.max_batch_jobs, max_fields=100)
        uploads = form.getlist("files" if batch else "file")
        if not uploads or any(isinstance(u, str) for u in uploads):
            raise HTTPException(422, f"multipart field {'files' if batch else 'file'!r} missing")
        fields = JsonSubmission.model_validate({"image_base64": "", **_form_fields(form)})
        return [
            _Item(
                await u.read(),  # type: ignore[union-attr]
                fields.external_id,
                fields.callback_url,
                fields.priority,
                _options(fields),
            )
            for u in uploads
        ]
    if ctype.startswith("application/json"):
        raw = await request.body()
        parsed = (BatchSubmission if batch else JsonSubmission).model_validate_json(raw)
        subs = parsed.jobs if isinstance(parsed, BatchSubmission) else [parsed]
        return [
            _Item(
                _decode_b64(s.image_base64, i),
                s.external_id,
                s.callback_url,
                s.priority,
                _options(s),
            )
            for i, s in enumerate(subs)
        ]
    raise HTTPException(415, "send multipart/form-data or application/json")


def _accept(state: ApiState, principal: Principal, items: list[_Item]) -> list[JobAccepted]:
    settings = state.settings
    if len(items) > settings.max_batch_jobs:
        raise HTTPException(413, f"at most {settings.max_batch_jobs} images per request")
    for i, item in enumerate(items):
        if len(item.data) > settings.max_upload_bytes:
            raise HTTPException(
                413, f"image {i}: exceeds the {settings.max_upload_bytes}-byte limit"
            )
        try:
            check_options(item.options, settings.backend)
        except OptionsRefused as exc:
            raise HTTPException(422, str(exc)) from None
        if item.callback_url:
            try:
                check_callback_url(item.callback_url, settings.callback_allowlist)
            except CallbackRefused as exc:
                raise HTTPException(422, str(exc)) from None
    subs = [
        Submission.from_bytes(
            item.data,
            source="api",
            external_id=item.external_id,
            submitted_by=principal.name,
            priority=item.priority,
            callback_url=item.callback_url,
            # a re-run of the transaction below after a lost COMMIT finds these jobs
            intake_key=uuid.uuid4().hex,
            options=item.options,
        )
        for item in items
    ]
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


async def _submit(request: Request, state: ApiState, principal: Principal, batch: bool) -> Any:
    try:
        items = await _parse(request, state, batch=batch)
    except ValidationError as exc:
        raise HTTPException(422, exc.errors(include_url=False, include_context=False)) from None
    return await run_in_threadpool(_accept, state, principal, items)


@router.post("", status_code=202, response_model=JobAccepted, openapi_extra=SINGLE_DOC)
async def submit_job(
    request: Request, response: Response, state: StateDep, principal: Submitter
) -> JobAccepted:
    """Submit one image (multipart ``file`` or JSON ``image_base64``)."""
    accepted: list[JobAccepted] = await _submit(request, state, principal, batch=False)
    response.headers["Location"] = accepted[0].url
    return accepted[0]


@router.post("/batch", status_code=202, response_model=list[JobAccepted], openapi_extra=BATCH_DOC)
async def submit_batch(request: Request, state: StateDep, principal: Submitter) -> Any:
    """Submit many images in one request (multipart ``files`` or JSON ``jobs``)."""
    return await _submit(request, state, principal, batch=True)


def _visible(principal: Principal) -> str | None:
    """A submitter sees only its own jobs; reviewers and admins see all."""
    return None if principal.has("reviewer") else principal.name


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: int, state: StateDep, principal: Submitter) -> JobOut:
    """Status, per-category scores and confidence levels, tier, threshold versions, and the
    match verdict and tags the job asked for."""
    view, confidence = in_transaction(
        state.sessions, lambda s: _job_with_confidence(s, job_id), give_up_after_s=API_DB_RETRY_S
    )
    owner = _visible(principal)
    if view is None or (owner is not None and view.submitted_by != owner):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id}")
    return JobOut.of(view, confidence)


def _job_with_confidence(session: Any, job_id: int) -> tuple[Any, dict[str, str | None]]:
    view = get_job_view(session, job_id)
    if view is None:
        return None, {}
    model = {s.category: s.score for s in view.scores if s.source != "hash_match"}
    return view, confidence_of(session, model)


@router.get("", response_model=JobList)
def list_jobs(
    state: StateDep,
    principal: Submitter,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    since: dt.datetime | None = None,
    after_id: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JobList:
    """Jobs in id order, filtered by status and submission time (ISO 8601)."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
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
    return JobList(jobs=[JobOut.of(v) for v in views], next_after_id=next_id)


@router.post("/{job_id}/retry", status_code=202, response_model=JobOut)
def retry_job(job_id: int, state: StateDep, principal: Admin) -> JobOut:
    """Requeue a failed or quarantined job with a fresh attempt count (admin)."""
    if not retry_and_publish(state.sessions, state.publisher, [job_id]).requeued:
        raise HTTPException(409, f"job {job_id} does not exist or is not failed/quarantined")
    return get_job(job_id, state, principal)
