"""Decision callbacks end to end: scoring worker → ops worker → a real HTTP receiver."""

from __future__ import annotations

import base64

import pytest

from tests.fakes import png_bytes

from .servers import wait_for

pytestmark = pytest.mark.integration


def test_decisions_are_posted_to_the_callback_url(stack_factory, pg_url, callback_receiver):
    received = callback_receiver.received
    stack = stack_factory(pg_url, callback_min_tier="clear", callback_allowlist=["127.0.0.0/8"])
    stack.start_worker("--cpu", "1", "--ops")
    url = callback_receiver.url
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
    wait_for(lambda: {stack.jobs()[i].callback_state for i in ids} == {"sent"}, 30, "sent state")
    assert {p["job_id"] for p in received} == ids
    assert {p["external_id"] for p in received} == {"cb-0", "cb-1", "cb-2"}
    assert all(p["status"] == "scored" and p["tier"] == "clear" and p["scores"] for p in received)
    # the action the packaged rules give a clear tier rides along, as in GET /v1/jobs/{id}
    assert {p["enforcement"]["action"] for p in received} == {"allow"}
    assert not any(p["enforcement"]["escalate"] for p in received)
