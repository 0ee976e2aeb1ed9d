"""Shared input types and error bodies of the HTTP API.

Every value a client sends that reaches the database goes through one of these types, so a
hostile value is a 422 at the edge instead of a driver error (a 503) deep inside:

- ``DbId``: ids are 64-bit signed in PostgreSQL, so 1 … 2**63 − 1.
- ``CleanStr``: no NUL character (PostgreSQL text cannot hold one) and no lone UTF-16
  surrogate (not encodable as UTF-8). The JSON schema carries the NUL rule as a ``pattern``.
- ``UtcDatetime``: an ISO 8601 date-time (not a number, not a bare date), naive meaning UTC,
  that must exist in UTC (year 1 with a +14:00 offset does not).

The error bodies: ``ErrorOut`` (``detail`` a string) for 400/401/403/404/405/409/413/415/429/503,
``ValidationErrorOut`` (``detail`` a list of ``{loc, msg, type}``) for every 422 — the API's
own checks (``unprocessable``) answer in the same shape as schema validation.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import HTTPException
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, ValidationError

__all__ = [
    "MAX_DB_ID",
    "NO_NUL_PATTERN",
    "CleanStr",
    "DbId",
    "ErrorOut",
    "UtcDatetime",
    "ValidationErrorItem",
    "ValidationErrorOut",
    "clean_errors",
    "error_responses",
    "unprocessable",
    "validated",
]

M = TypeVar("M", bound=BaseModel)
MAX_DB_ID = 2**63 - 1
NO_NUL_PATTERN = "^[^\\x00]*$"


def check_text(value: str) -> str:
    """``value`` unchanged, or ``ValueError`` when PostgreSQL could not store it."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must not contain lone UTF-16 surrogates") from None
    return value


_ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:?\d{2})?"
)


def _iso(value: Any) -> Any:
    # pydantic would also take a number (Unix time) or a bare date: ISO 8601 date-times only
    if not isinstance(value, str) or not _ISO_DATETIME.fullmatch(value):
        raise ValueError("must be an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z")
    return value


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC") from None


DbId = Annotated[int, Field(ge=1, le=MAX_DB_ID)]
CleanStr = Annotated[str, Field(pattern=NO_NUL_PATTERN), AfterValidator(check_text)]
UtcDatetime = Annotated[dt.datetime, BeforeValidator(_iso), AfterValidator(_utc)]


class ErrorOut(BaseModel):
    detail: str


class ValidationErrorItem(BaseModel):
    loc: list[str | int] = Field(description="Where: body, query, path, then field names.")
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    detail: list[ValidationErrorItem]


def clean_errors(errors: Iterable[Any], prefix: Sequence[str | int] = ()) -> list[dict[str, Any]]:
    """Pydantic/FastAPI errors as ``{loc, msg, type}`` only: never the input (which may be
    the whole body, invalid UTF-8 or megabytes), its context or a URL."""
    out = []
    for e in errors:
        loc = [p if isinstance(p, int) else str(p) for p in (*prefix, *e.get("loc", ()))]
        out.append({"loc": loc, "msg": str(e.get("msg", ""))[:500], "type": str(e.get("type"))})
    return out


def unprocessable(msg: str, loc: Sequence[str | int] = ("body",)) -> HTTPException:
    """A 422 in the schema-validation shape (``ValidationErrorOut``)."""
    return HTTPException(422, [{"loc": list(loc), "msg": msg, "type": "value_error"}])


def validated(model: type[M], data: Any, *, json_body: bool = False) -> M:
    """``model`` of ``data`` (raw JSON bytes with ``json_body``; else form fields, all text,
    validated laxly): 400 for a body that is not UTF-8 JSON, 422 (``ValidationErrorOut``, no
    input echoed) for one that does not fit."""
    try:
        if json_body:
            return model.model_validate_json(data)
        return model.model_validate(data, strict=False)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        if any(e["type"] in ("json_invalid", "json_type") for e in errors):
            raise HTTPException(400, "request body is not valid UTF-8 JSON") from None
        raise HTTPException(422, clean_errors(errors, ("body",))) from None


_WHY = {
    400: "Malformed body: not JSON, not UTF-8, or a broken multipart form.",
    401: "Missing or unknown bearer token.",
    403: "The token's role may not do this.",
    404: "No such resource (or not yours).",
    409: "Conflicts with the resource's state.",
    413: "Body, image or item count over the limit.",
    415: "Unsupported Content-Type.",
    422: "The body or a parameter fails validation.",
    429: "Too many failed authentications from this address; retry after `Retry-After` s.",
    503: "The database is unavailable; retry later.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status it may answer besides its success. A route that
    authenticates (401) may also answer 429: the failed-auth limiter refuses an address that
    sent too many wrong tokens, whatever the request."""
    if 401 in codes and 429 not in codes:
        codes = (*codes, 429)
    return {
        code: {
            "model": ValidationErrorOut if code == 422 else ErrorOut,
            "description": _WHY[code],
        }
        for code in codes
    }
