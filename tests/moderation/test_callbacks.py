"""Callback target checks (SSRF) and delivery with retries against a real local HTTP server."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator

import pytest

from moderation.callbacks import (
    CallbackFailed,
    CallbackRefused,
    CallbackRejected,
    check_callback_url,
    deliver_callback,
    redact_url,
    sign,
    verify_signature,
)


def resolver(*addresses: str):
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.5",
        "192.168.1.1",
        "172.16.0.1",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "0.0.0.0",
        "100.64.0.1",
        "224.0.0.1",
        "::ffff:127.0.0.1",
    ],
)
def test_non_public_addresses_are_refused(address):
    with pytest.raises(CallbackRefused, match="non-public"):
        check_callback_url("https://hooks.example.com/x", resolve=resolver(address))


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of the metadata address 169.254.169.254
        "64:ff9b:1::a00:5",  # local-use NAT64 (RFC 8215)
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a00:5::1",  # 6to4 of 10.0.0.5
        "::127.0.0.1",  # IPv4-compatible
        "::169.254.169.254",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo (client 192.0.2.45)
        "::ffff:10.0.0.1",  # IPv4-mapped
    ],
)
def test_ipv6_addresses_carrying_a_non_public_ipv4_are_refused(address):
    with pytest.raises(CallbackRefused, match="non-public"):
        check_callback_url("https://hooks.example.com/x", resolve=resolver(address))


@pytest.mark.parametrize(
    "url", ["http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::]/", "http://[::127.0.0.1]/"]
)
def test_ipv6_literals_carrying_loopback_are_refused_through_the_real_resolver(url):
    with pytest.raises(CallbackRefused, match=r"carries IPv4 127\.0\.0\.1"):
        check_callback_url(url)


def test_ipv6_forms_of_public_ipv4_pass_and_the_allowlist_covers_embedded_ipv4():
    for address in ("64:ff9b::5db8:d822", "2002:5db8:d822::1", "::ffff:93.184.216.34"):
        assert check_callback_url("https://h.example/x", resolve=resolver(address))
    nat64_private = resolver("64:ff9b::a00:5")  # 10.0.0.5
    assert check_callback_url("http://h.internal/x", ["10.0.0.0/8"], resolve=nat64_private)
    assert check_callback_url("http://h.internal/x", ["64:ff9b::/96"], resolve=nat64_private)
    assert check_callback_url("http://h.internal/x", ["h.internal"], resolve=nat64_private)
    with pytest.raises(CallbackRefused):
        check_callback_url("http://h.internal/x", ["192.168.0.0/16"], resolve=nat64_private)


def test_one_private_answer_among_public_ones_is_enough_to_refuse():
    with pytest.raises(CallbackRefused):
        check_callback_url("https://h.example/x", resolve=resolver("93.184.216.34", "10.1.1.1"))


def test_public_addresses_and_allow_listed_ones_pass():
    assert check_callback_url("https://h.example/x", resolve=resolver("93.184.216.34"))
    assert check_callback_url(
        "http://h.internal/x", ["10.0.0.0/8"], resolve=resolver("10.2.3.4")
    ) == ["10.2.3.4"]
    assert check_callback_url("http://H.internal/x", ["h.internal"], resolve=resolver("10.2.3.4"))


@pytest.mark.parametrize(
    "url", ["ftp://h.example/x", "file:///etc/passwd", "http:///nohost", "x", "http://h:99999/"]
)
def test_bad_schemes_and_shapes_are_refused(url):
    with pytest.raises(CallbackRefused):
        check_callback_url(url, resolve=resolver("93.184.216.34"))


def test_refusals_do_not_echo_userinfo():
    with pytest.raises(CallbackRefused) as info:
        check_callback_url("ftp://bob:hunter2@h.example/x", resolve=resolver("93.184.216.34"))
    assert "hunter2" not in str(info.value) and "ftp://h.example/x" in str(info.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://bob:hunter2@h.example:8443/x?q=1", "https://h.example:8443/x?q=1"),
        ("https://token@h.example/x", "https://h.example/x"),
        ("https://h.example/x@y", "https://h.example/x@y"),
        ("http://[::1]:80/", "http://[::1]:80/"),
    ],
)
def test_redact_url_strips_userinfo_only(url, shown):
    assert redact_url(url) == shown


def test_signature_binds_the_timestamp_and_verification_rejects_old_or_forged_ones():
    body, now = b'{"job_id": 1}', 1_700_000_000
    signature = sign("s3cret", body, now)
    assert signature.startswith("sha256=") and signature != sign("s3cret", body, now + 1)
    assert verify_signature("s3cret", body, str(now), signature, now=now + 299)
    assert not verify_signature("s3cret", body, str(now), signature, now=now + 301)  # replay
    assert not verify_signature("s3cret", body, str(now + 1), signature, now=now)  # moved ts
    assert not verify_signature("s3cret", body + b" ", str(now), signature, now=now)
    assert not verify_signature("other", body, str(now), signature, now=now)
    assert not verify_signature("s3cret", body, "soon", signature, now=now)


class _Receiver(http.server.BaseHTTPRequestHandler):
    plan: list[int] = []
    seen: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).seen.append((dict(self.headers), body))
        status = type(self).plan.pop(0) if type(self).plan else 200
        self.send_response(status)
        if 300 <= status < 400:
            self.send_header("location", "/elsewhere")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"plan": [], "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_address[1]}/hook", handler
    server.shutdown()


def test_loopback_receiver_is_refused_unless_allow_listed(receiver):
    url, _ = receiver
    with pytest.raises(CallbackRefused):
        deliver_callback(url, {"job_id": 1})


def test_delivery_retries_5xx_then_succeeds_and_signs(receiver):
    url, handler = receiver
    handler.plan = [503, 500]
    status = deliver_callback(
        url,
        {"job_id": 7, "tier": "high"},
        allowlist=["127.0.0.0/8", "::1/128"],
        secret="s3cret",
        max_backoff_s=0.01,
    )
    assert status == 200 and len(handler.seen) == 3
    headers, body = handler.seen[-1]
    assert json.loads(body) == {"job_id": 7, "tier": "high"}
    timestamp = int(headers["X-Moderation-Timestamp"])
    assert abs(timestamp - time.time()) < 60
    assert headers["X-Moderation-Signature"] == sign("s3cret", body, timestamp)
    assert verify_signature(
        "s3cret", body, headers["X-Moderation-Timestamp"], headers["X-Moderation-Signature"]
    )
    assert headers["host"].startswith("localhost:")  # the name survives the address pinning


def test_delivery_gives_up_after_max_attempts_and_4xx_is_final(receiver):
    url, handler = receiver
    handler.plan = [503] * 10
    with pytest.raises(RuntimeError):
        deliver_callback(
            url, {}, allowlist=["127.0.0.0/8", "::1/128"], max_attempts=3, max_backoff_s=0.01
        )
    assert len(handler.seen) == 3
    handler.plan, handler.seen[:] = [404], []
    with pytest.raises(CallbackRejected):
        deliver_callback(url, {}, allowlist=["127.0.0.0/8", "::1/128"], max_backoff_s=0.01)
    assert len(handler.seen) == 1


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_a_final_failure_and_is_not_followed(receiver, status):
    url, handler = receiver
    handler.plan = [status]
    with pytest.raises(CallbackRejected, match="redirects are not followed"):
        deliver_callback(url, {}, allowlist=["127.0.0.0/8", "::1/128"], max_backoff_s=0.01)
    assert len(handler.seen) == 1  # neither retried nor followed to /elsewhere


def test_failures_name_the_url_without_its_userinfo(receiver):
    url, handler = receiver
    secret_url = url.replace("http://", "http://bob:hunter2@")
    handler.plan = [503, 503, 404]
    with pytest.raises(CallbackFailed) as retried:
        deliver_callback(
            secret_url, {}, allowlist=["127.0.0.0/8", "::1/128"], max_attempts=2,
            max_backoff_s=0.01,
        )  # fmt: skip
    with pytest.raises(CallbackRejected) as rejected:
        deliver_callback(secret_url, {}, allowlist=["127.0.0.0/8", "::1/128"])
    closed = "http://bob:hunter2@127.0.0.1:9/hook"  # nothing listens on the discard port
    with pytest.raises(CallbackFailed) as unreachable:
        deliver_callback(
            closed, {}, allowlist=["127.0.0.0/8"], max_attempts=1, timeout_s=2,
            resolve=resolver("127.0.0.1"),
        )  # fmt: skip
    for exc in (retried.value, rejected.value, unreachable.value):
        assert "hunter2" not in str(exc) and "bob" not in str(exc), exc
    assert url in str(retried.value) and url in str(rejected.value)
    assert "http://127.0.0.1:9/hook" in str(unreachable.value)
    assert handler.seen[-1][0]["Authorization"].startswith("Basic ")  # still sent as auth


def test_retry_delays_grow_exponentially_with_jitter_and_stop_at_the_max_age():
    import datetime as dt

    from moderation.callbacks import retry_delay, schedule_retry

    full = [retry_delay(n, base_s=30, cap_s=3600, rng=lambda: 1.0) for n in range(1, 10)]
    assert full == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert retry_delay(3, base_s=30, cap_s=3600, rng=lambda: 0.0) == 60  # half at least
    since = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    at = schedule_retry(1, now=since, since=since, base_s=30, cap_s=3600, max_age_s=86400,
                        rng=lambda: 1.0)  # fmt: skip
    assert at == since + dt.timedelta(seconds=30)
    late = since + dt.timedelta(hours=23, minutes=30)
    assert schedule_retry(30, now=late, since=since, base_s=30, cap_s=3600, max_age_s=86400,
                          rng=lambda: 1.0) is None  # fmt: skip
