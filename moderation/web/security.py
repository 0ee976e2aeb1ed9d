"""The dashboard's browser-facing defences, as ASGI middleware around every route.

* Every response carries ``X-Frame-Options: DENY`` and a Content-Security-Policy with
  ``frame-ancestors 'none'`` (no page can be framed: no click-jacking of the one-key review
  page), scripts and styles from the dashboard itself only, and ``nosniff``. A route that
  sets its own policy (the review image: ``default-src 'none'; sandbox``) keeps it.
* State-changing requests (any method but GET, HEAD, OPTIONS) are refused with 403 when they
  carry ``Origin: null``, an ``Origin`` other than the ``Host`` they were sent to, or a
  ``Sec-Fetch-Site`` other than ``same-origin``. Requests with neither header (scripts, old
  browsers) pass this check; every state-changing route then still needs the session's CSRF
  token (``deps.require_csrf``). The ``Host`` itself is checked before this by Starlette's
  ``TrustedHostMiddleware`` against ``MODERATION_ALLOWED_HOSTS`` (DNS rebinding).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CSP", "SAFE_METHODS", "SecurityMiddleware", "cross_site_reason"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)  # inline styles: the templates colour bars and badges with style attributes
HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def cross_site_reason(method: str, headers: Headers) -> str | None:
    """Why a request must be refused as cross-site, or None."""
    if method.upper() in SAFE_METHODS:
        return None
    origin = headers.get("origin")
    if origin is not None:
        if origin.strip().lower() == "null":
            return "requests from an opaque origin (Origin: null) are refused"
        try:
            netloc = urlsplit(origin).netloc.lower()
        except ValueError:
            netloc = ""
        if not netloc or netloc != (headers.get("host") or "").lower():
            return "cross-origin requests are refused"
    site = headers.get("sec-fetch-site")
    if site is not None and site.lower() != "same-origin":
        return f"cross-site requests are refused (Sec-Fetch-Site: {site})"
    return None


class SecurityMiddleware:
    """Refuse cross-site state changes; add the framing and content policies to responses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        reason = cross_site_reason(scope["method"], Headers(scope=scope))
        if reason is not None:
            await PlainTextResponse(reason, status_code=403)(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)
