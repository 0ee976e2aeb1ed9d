"""Decision callbacks: SSRF-safe target checks and signed POSTs with retries and backoff.

A signed callback carries ``X-Moderation-Timestamp: <unix seconds>`` and
``X-Moderation-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``: binding the
time into the MAC lets a receiver refuse a replayed (old) callback, ``verify_signature``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import random
import re
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "CallbackFailed",
    "CallbackRefused",
    "CallbackRejected",
    "check_callback_url",
    "deliver_callback",
    "embedded_ipv4",
    "redact_url",
    "retry_delay",
    "schedule_retry",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Moderation-Signature"
TIMESTAMP_HEADER = "X-Moderation-Timestamp"

Resolver = Callable[[str, int], Sequence[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CallbackRefused(ValueError):
    """The URL may not be called (bad scheme, or it resolves to a non-public address)."""


class CallbackFailed(RuntimeError):
    """Every attempt failed (no connection, or 429/5xx each time)."""


class CallbackRejected(CallbackFailed):
    """The receiver answered with a 3xx (redirects are not followed) or a 4xx: retrying will
    not help."""


class _Retryable(RuntimeError):
    pass


def redact_url(url: str) -> str:
    """``url`` without its userinfo (``user:pass@``): the form that may be logged or shown."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub("", url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


_USERINFO = re.compile(r"(?<=://)[^/?#@\s]*@")


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise CallbackRefused(f"cannot resolve {host!r}: {exc.strerror}") from None
    return sorted({str(info[4][0]) for info in infos})


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix: IPv4 in the low 32
# RFC 8215 local-use NAT64: where the IPv4 sits depends on the operator's prefix length, and
# it is local by definition (Python < 3.13 calls it global), so it is never public.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated ::a.b.c.d (and ::, ::1)


def embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (and so may reach through a translator or
    tunnel): IPv4-mapped ``::ffff:0:0/96``, IPv4-compatible ``::/96``, NAT64 ``64:ff9b::/96``,
    6to4 ``2002::/16`` and Teredo ``2001::/32`` (its server and client). Empty for IPv4."""
    if isinstance(ip, ipaddress.IPv4Address):
        return []
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip in _IPV4_COMPATIBLE or ip in _NAT64:
        found.append(low32)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    return found


def _public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip in _LOCAL_NAT64:
        return False
    return all(a.is_global and not a.is_multicast for a in (ip, *embedded_ipv4(ip)))


def _allowed(host: str, ip: IPAddress, allowlist: Sequence[str]) -> bool:
    """The host name, or a network holding the address (or the IPv4 it embeds), is listed."""
    candidates = (ip, *embedded_ipv4(ip))
    for entry in allowlist:
        entry = entry.strip().lower()
        if entry == host.lower():
            return True
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue
        if any(a in network for a in candidates):
            return True
    return False


def check_callback_url(
    url: str, allowlist: Sequence[str] = (), resolve: Resolver = _resolve
) -> list[str]:
    """The addresses ``url`` may be called at; raises ``CallbackRefused`` otherwise.

    Every address the host resolves to must be public (not loopback, private, link-local,
    reserved, multicast…), and so must every IPv4 address an IPv6 one embeds (NAT64, 6to4,
    Teredo, IPv4-mapped/compatible), unless the host or a network containing the address is
    allow-listed.
    """
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise CallbackRefused(f"not a valid URL: {redact_url(url)[:200]!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackRefused(
            f"callback URL must be http(s)://host/…, got {redact_url(url)[:200]!r}"
        )
    addresses = resolve(parts.hostname, port)
    if not addresses:
        raise CallbackRefused(f"{parts.hostname!r} resolves to no address")
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not _public(ip) and not _allowed(parts.hostname, ip, allowlist):
            carried = ", ".join(map(str, embedded_ipv4(ip)))
            raise CallbackRefused(
                f"callback host {parts.hostname!r} resolves to non-public address {ip}"
                + (f" (it carries IPv4 {carried})" if carried else "")
                + " (add it to MODERATION_CALLBACK_ALLOWLIST to allow it)"
            )
    return list(addresses)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """``sha256=<hex HMAC-SHA256(secret, b"<timestamp>." + body)>``."""
    message = str(int(timestamp)).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> bool:
    """What a receiver does with the two headers: the MAC matches (compared in constant time)
    and the timestamp is within ``tolerance_s`` of ``now`` (older ones may be replays)."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, ts), signature)


def deliver_callback(
    url: str,
    payload: Mapping[str, Any],
    *,
    allowlist: Sequence[str] = (),
    secret: str | None = None,
    timeout_s: float = 10.0,
    max_attempts: int = 5,
    resolve: Resolver = _resolve,
    transport: httpx.BaseTransport | None = None,
    max_backoff_s: float = 30.0,
) -> int:
    """POST ``payload`` as JSON; returns the (2xx) HTTP status. Retries connection errors, 429
    and 5xx with exponential backoff, then raises ``CallbackFailed``; a 3xx (redirects are not
    followed) or a 4xx raises ``CallbackRejected`` at once. Each attempt is signed afresh (its
    own timestamp) when ``secret`` is set. Error messages name the URL without its userinfo.

    The connection goes to the address that was checked (Host header and TLS SNI keep the
    name), so a DNS answer that changes between check and connect cannot redirect it inside.
    """
    addresses = check_callback_url(url, allowlist, resolve)
    parts = urlsplit(url)
    host = parts.hostname or ""
    body = json.dumps(payload, default=str, sort_keys=True).encode()
    shown = redact_url(url)
    headers = {"content-type": "application/json", "user-agent": "moderation-callback/1"}
    headers["host"] = parts.netloc.rsplit("@", 1)[-1]
    pinned = httpx.URL(url).copy_with(host=addresses[0])
    retrying = Retrying(
        retry=retry_if_exception_type((_Retryable, httpx.TransportError)),
        stop=stop_after_attempt(max_attempts),
        wait=wait_exponential(multiplier=0.5, max=max_backoff_s),
        reraise=True,
    )
    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=False, transport=transport) as client:
            for attempt in retrying:
                with attempt:
                    if secret:
                        ts = int(time.time())
                        headers[TIMESTAMP_HEADER] = str(ts)
                        headers[SIGNATURE_HEADER] = sign(secret, body, ts)
                    response = client.post(
                        pinned, content=body, headers=headers, extensions={"sni_hostname": host}
                    )
                    return _outcome(response.status_code, shown)
    except _Retryable as exc:
        raise CallbackFailed(f"{exc} ({max_attempts} attempts)") from None
    except httpx.HTTPError as exc:
        detail = _USERINFO.sub("", str(exc))
        raise CallbackFailed(
            f"{shown} unreachable after {max_attempts} attempts: {type(exc).__name__}: {detail}"
        ) from None
    raise AssertionError("unreachable")  # pragma: no cover


def _outcome(status: int, shown_url: str) -> int:
    """The status if it is a success; raises what retrying (or not) it needs otherwise."""
    if status == 429 or status >= 500:
        raise _Retryable(f"{shown_url} answered {status}")
    if 300 <= status < 400:
        raise CallbackRejected(f"{shown_url} answered {status} (redirects are not followed)")
    if status >= 400 or status < 200:
        raise CallbackRejected(f"{shown_url} answered {status}")
    return status


def retry_delay(
    attempts: int, *, base_s: float, cap_s: float, rng: Callable[[], float] = random.random
) -> float:
    """Seconds to wait after ``attempts`` failed dispatches: ``base_s * 2**(attempts-1)``
    capped at ``cap_s``, then jittered to between half and all of it (so receivers coming back
    are not hit by every waiting callback at once)."""
    ceiling = min(cap_s, base_s * 2.0 ** max(0, min(attempts - 1, 60)))
    return ceiling * (0.5 + 0.5 * rng())


def schedule_retry(
    attempts: int,
    *,
    now: dt.datetime,
    since: dt.datetime,
    base_s: float,
    cap_s: float,
    max_age_s: float,
    rng: Callable[[], float] = random.random,
) -> dt.datetime | None:
    """When to try again after ``attempts`` failures of a callback due since ``since``; None:
    give up (the next try would fall past ``max_age_s`` — a dead letter)."""
    at = now + dt.timedelta(seconds=retry_delay(attempts, base_s=base_s, cap_s=cap_s, rng=rng))
    return at if at <= since + dt.timedelta(seconds=max_age_s) else None
