"""Request body limits: the app-wide size limit as ASGI middleware (Content-Length and
streamed bodies alike), a per-route ``read_body`` cap, and ``count_json_objects``, the cheap
structural count that bounds a JSON body's item count before it is decoded."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool

__all__ = ["BodySizeLimit", "TooManyObjects", "count_json_objects", "read_body"]

Scope = dict[str, Any]


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """Answers 413 before reading a body whose declared length is too big, and stops reading
    a chunked body as soon as it passes the limit."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Any) -> None:
        body = json.dumps(
            {"detail": f"request body exceeds the {self.max_bytes}-byte limit"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                # the rest of the body is not read: do not keep the connection for it
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})


class TooManyObjects(Exception):
    """The JSON body opens more objects than ``read_body``'s ``max_objects``."""


async def read_body(
    request: Request, max_bytes: int, *, max_objects: int | None = None
) -> bytearray:
    """The request body, refused with 413 as soon as it is declared or streamed past
    ``max_bytes`` (call it after the route's authentication dependency has run).

    With ``max_objects``, reading stops with ``TooManyObjects`` once the part read so far
    opens more JSON objects than that: a body of millions of tiny items is refused after its
    first chunk, before the rest is received. The count is exact only for well-formed JSON,
    so the caller counts the whole body again before decoding it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, f"request body exceeds the {max_bytes}-byte limit")
    body = bytearray()  # one growing buffer, not chunks plus their join (half the peak)
    braces = 0  # every "{" so far: an upper bound, exact count only when it passes the limit
    next_count = 0
    async for chunk in request.stream():
        if len(body) + len(chunk) > max_bytes:
            raise HTTPException(413, f"request body exceeds the {max_bytes}-byte limit")
        body += chunk
        if max_objects is None:
            continue
        braces += chunk.count(b"{")
        if braces > max_objects and len(body) >= next_count:
            if await run_in_threadpool(count_json_objects, body, max_objects) > max_objects:
                raise TooManyObjects
            next_count = 2 * len(body)  # recount as the body doubles: linear in all
    return body


# a JSON string (unrolled, possessive: linear, no backtracking, one C-level run per string;
# one cut off at the end of a partly read body runs to the end) or an object opening
_TOKENS = re.compile(rb'"[^"\\]*+(?:\\(?s:.)?[^"\\]*+)*+(?:"|\Z)|\{')


def count_json_objects(raw: bytes | bytearray, limit: int) -> int:
    """A number above ``limit`` exactly when ``raw`` opens more than ``limit`` JSON objects
    (``{`` outside strings; at or under it, an upper bound). It counts no further than
    ``limit + 1``: a hostile body of millions of tiny objects is refused after scanning its
    first few kilobytes, and a big body of few objects (long base64 strings) costs one regex
    pass in C. Malformed JSON is counted as far as it goes; the decoder refuses it after."""
    if raw.count(b"{") <= limit:  # memchr speed; an upper bound of the structural count
        return raw.count(b"{")
    seen = 0
    for match in _TOKENS.finditer(raw):
        if match.group() == b"{":
            seen += 1
            if seen > limit:
                break
    return seen
