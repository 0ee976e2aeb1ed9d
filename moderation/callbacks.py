"""Decision callbacks: SSRF-safe target checks and signed POSTs with retries and backoff."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

__all__ = ["CallbackRefused", "CallbackRejected", "check_callback_url", "deliver_callback", "sign"]

Resolver = Callable[[str, int], Sequence[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CallbackRefused(ValueError):
    """The URL may not be called (bad scheme, or it resolves to a non-public address)."""


class CallbackRejected(RuntimeError):
    """The receiver answered with a 4xx: retrying will not help."""


class _Retryable(RuntimeError):
    pass


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise CallbackRefused(f"cannot resolve {host!r}: {exc.strerror}") from None
    return sorted({str(info[4][0]) for info in infos})


def _public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _allowed(host: str, ip: IPAddress, allowlist: Sequence[str]) -> bool:
    for entry in allowlist:
        entry = entry.strip().lower()
        if entry == host.lower():
            return True
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def check_callback_url(
    url: str, allowlist: Sequence[str] = (), resolve: Resolver = _resolve
) -> list[str]:
    """The addresses ``url`` may be called at; raises ``CallbackRefused`` otherwise.

    Every address the host resolves to must be public (not loopback, private, link-local,
    reserved, multicast…) unless the host or a network containing the address is allow-listed.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackRefused(f"callback URL must be http(s)://host/…, got {url[:200]!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = resolve(parts.hostname, port)
    if not addresses:
        raise CallbackRefused(f"{parts.hostname!r} resolves to no address")
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not _public(ip) and not _allowed(parts.hostname, ip, allowlist):
            raise CallbackRefused(
                f"callback host {parts.hostname!r} resolves to non-public address {ip} "
                "(add it to MODERATION_CALLBACK_ALLOWLIST to allow it)"
            )
    return list(addresses)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


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
    """POST ``payload`` as JSON; returns the HTTP status. Retries connection errors, 429 and
    5xx with exponential backoff; a 4xx raises ``CallbackRejected`` at once.

    The connection goes to the address that was checked (Host header and TLS SNI keep the
    name), so a DNS answer that changes between check and connect cannot redirect it inside.
    """
    addresses = check_callback_url(url, allowlist, resolve)
    parts = urlsplit(url)
    host = parts.hostname or ""
    body = json.dumps(payload, default=str, sort_keys=True).encode()
    headers = {"content-type": "application/json", "user-agent": "moderation-callback/1"}
    if secret:
        headers["x-moderation-signature"] = sign(secret, body)
    headers["host"] = parts.netloc.rsplit("@", 1)[-1]
    pinned = httpx.URL(url).copy_with(host=addresses[0])
    retrying = Retrying(
        retry=retry_if_exception_type((_Retryable, httpx.TransportError)),
        stop=stop_after_attempt(max_attempts),
        wait=wait_exponential(multiplier=0.5, max=max_backoff_s),
        reraise=True,
    )
    with httpx.Client(timeout=timeout_s, follow_redirects=False, transport=transport) as client:
        for attempt in retrying:
            with attempt:
                response = client.post(
                    pinned, content=body, headers=headers, extensions={"sni_hostname": host}
                )
                if response.status_code == 429 or response.status_code >= 500:
                    raise _Retryable(f"{url} answered {response.status_code}")
                if response.status_code >= 400:
                    raise CallbackRejected(f"{url} answered {response.status_code}")
                return response.status_code
    raise AssertionError("unreachable")  # pragma: no cover
