"""Callback target checks (SSRF) and delivery with retries against a real local HTTP server."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import pytest

from moderation.callbacks import (
    CallbackRefused,
    CallbackRejected,
    check_callback_url,
    deliver_callback,
    sign,
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


def test_one_private_answer_among_public_ones_is_enough_to_refuse():
    with pytest.raises(CallbackRefused):
        check_callback_url("https://h.example/x", resolve=resolver("93.184.216.34", "10.1.1.1"))


def test_public_addresses_and_allow_listed_ones_pass():
    assert check_callback_url("https://h.example/x", resolve=resolver("93.184.216.34"))
    assert check_callback_url(
        "http://h.internal/x", ["10.0.0.0/8"], resolve=resolver("10.2.3.4")
    ) == ["10.2.3.4"]
    assert check_callback_url("http://H.internal/x", ["h.internal"], resolve=resolver("10.2.3.4"))


@pytest.mark.parametrize("url", ["ftp://h.example/x", "file:///etc/passwd", "http:///nohost", "x"])
def test_bad_schemes_and_shapes_are_refused(url):
    with pytest.raises(CallbackRefused):
        check_callback_url(url, resolve=resolver("93.184.216.34"))


class _Receiver(http.server.BaseHTTPRequestHandler):
    plan: list[int] = []
    seen: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).seen.append((dict(self.headers), body))
        status = type(self).plan.pop(0) if type(self).plan else 200
        self.send_response(status)
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
    assert headers["x-moderation-signature"] == sign("s3cret", body)
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
