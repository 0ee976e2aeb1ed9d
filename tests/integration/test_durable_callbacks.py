"""Durable callbacks end to end: a receiver down for a while (two minutes, compressed by the
retry settings) still gets the decision — through a restart of the ops worker — and a
delivered callback is sent again on request, by the admin API and by the CLI (real worker,
beat and CLI processes, Postgres, Redis, a real local HTTP receiver)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time

import pytest

from tests.fakes import png_bytes

from .servers import CallbackReceiver, wait_for

pytestmark = pytest.mark.integration
ADMIN = "integration-admin-token-000000000000001"
SECRET = "durable-callback-secret-0000000001"


def test_a_receiver_down_for_a_while_still_gets_the_callback_then_resends(stack_factory, pg_url):
    receiver = CallbackReceiver(secret=SECRET)  # down: connections to its port are refused
    stack = stack_factory(
        pg_url,
        callback_min_tier="clear",
        callback_allowlist=["127.0.0.0/8"],
        callback_secret=SECRET,
        callback_max_attempts=1,
        callback_timeout_s=2,
        callback_retry_base_s=0.5,
        callback_retry_cap_s=2,
        callback_max_age_s=600,
        reaper_interval_s=1,
        api_tokens=[f"pipeline:submitter:{TOKEN_OF_STACK}", f"ops:admin:{ADMIN}"],
    )
    stack.env["MODERATION_CALLBACK_SECRET"] = SECRET  # the dump masks secrets
    worker = stack.start_worker("--cpu", "1", "--ops", "--beat")
    try:
        url = receiver.url
        body = {"image_base64": base64.b64encode(png_bytes((9, 1, 1))).decode(),
                "callback_url": url, "external_id": "durable-1"}  # fmt: skip
        r = stack.client.post("/v1/jobs", json=body, headers=stack.headers)
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        # the receiver is down: dispatches fail and are rescheduled, the callback stays pending
        wait_for(lambda: stack.jobs()[job_id].callback_attempts >= 3, 60, "three failed tries")
        job = stack.jobs()[job_id]
        assert job.callback_state == "pending" and "ConnectError" in (job.callback_last_error or "")
        # the ops worker (and beat) die and come back: the retry state is in the database
        worker.kill_all()
        stack.workers.remove(worker)
        time.sleep(2)
        stack.start_worker("--cpu", "1", "--ops", "--beat")
        # (a dispatch the kill interrupted is due again after its lease: 1 × (2 + 2) + 10 s)
        wait_for(lambda: stack.jobs()[job_id].callback_attempts >= 5, 90, "more failed tries")
        assert receiver.received == []
        receiver.up()
        wait_for(lambda: stack.jobs()[job_id].callback_state != "pending", 60, "the callback sent")
        job = stack.jobs()[job_id]
        assert job.callback_state == "sent", job.callback_last_error
        assert [p["job_id"] for p in receiver.received] == [job_id]
        assert receiver.received[0]["external_id"] == "durable-1"
        assert stack.jobs()[job_id].callback_last_error is None

        # resend by the admin API (submitters may not)
        resend = {"job_ids": [job_id]}
        r = stack.client.post("/v1/callbacks/resend", json=resend, headers=stack.headers)
        assert r.status_code == 403
        admin = {"Authorization": f"Bearer {ADMIN}"}
        r = stack.client.post("/v1/callbacks/resend", json=resend, headers=admin)
        assert r.status_code == 200, r.text
        assert r.json() == {"resent": [job_id], "not_resendable": []}
        wait_for(lambda: len(receiver.received) == 2, 60, "the callback sent again (API)")
        wait_for(lambda: stack.jobs()[job_id].callback_state == "sent", 30, "sent again")

        # resend by the CLI (its own process, the stack's settings)
        done = subprocess.run(
            [sys.executable, "-m", "moderation", "callbacks", "resend", str(job_id)],
            env={**os.environ, **stack.env}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "resending 1 callbacks" in done.stdout
        wait_for(lambda: len(receiver.received) == 3, 60, "the callback sent again (CLI)")
        listed = subprocess.run(
            [sys.executable, "-m", "moderation", "callbacks", "list", "--status", "sent"],
            env={**os.environ, **stack.env}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert listed.returncode == 0 and str(job_id) in listed.stdout
    finally:
        receiver.down()
    assert {p["job_id"] for p in receiver.received} == {job_id}


TOKEN_OF_STACK = "integration-submitter-token-0000000001"
