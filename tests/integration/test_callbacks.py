"""Decision callbacks end to end: scoring worker → ops worker → a real HTTP receiver."""

from __future__ import annotations

import base64
import http.server
import json
import threading

import pytest

from tests.fakes import png_bytes

from .servers import wait_for

pytestmark = pytest.mark.integration


def test_decisions_are_posted_to_the_callback_url(stack_factory, pg_url):
    received: list[dict] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        stack = stack_factory(pg_url, callback_min_tier="clear", callback_allowlist=["127.0.0.0/8"])
        stack.start_worker("--cpu", "1", "--ops")
        url = f"http://127.0.0.1:{server.server_address[1]}/moderation"
        body = {
            "jobs": [
                {"image_base64": base64.b64encode(png_bytes((i, 5, 5))).decode(),
                 "callback_url": url, "external_id": f"cb-{i}"}
                for i in range(3)
            ]
        }  # fmt: skip
        r = stack.client.post("/v1/jobs/batch", json=body, headers=stack.headers)
        assert r.status_code == 202, r.text
        ids = {j["id"] for j in r.json()}
        wait_for(lambda: len(received) >= 3, 90, "three callbacks")
        wait_for(
            lambda: {stack.jobs()[i].callback_state for i in ids} == {"sent"}, 30, "sent state"
        )
    finally:
        server.shutdown()
    assert {p["job_id"] for p in received} == ids
    assert {p["external_id"] for p in received} == {"cb-0", "cb-1", "cb-2"}
    assert all(p["status"] == "scored" and p["tier"] == "clear" and p["scores"] for p in received)
