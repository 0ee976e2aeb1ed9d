"""The httpx client against the real app served by uvicorn, Postgres and Redis."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from moderation.client import ApiError, Client
from tests.fakes import png_bytes
from tests.moderation.conftest import TOKENS


@pytest.fixture
def client(api) -> Iterator[Client]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(api.client.app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    with Client(f"http://127.0.0.1:{port}", TOKENS["alice"]) as client:
        yield client
    server.should_exit = True
    thread.join(10)


def test_submit_path_get_and_list(client, tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(png_bytes((9, 9, 9)))
    job = client.submit(path, external_id="x-1", priority=3)
    assert job["status"] == "queued" and job["external_id"] == "x-1"
    assert client.get(job["id"])["priority"] == 3
    many = client.submit_many([png_bytes((1, 1, 1)), png_bytes((2, 2, 2))])
    assert len(many) == 2
    assert [j["id"] for j in client.list(status="queued")] == [job["id"]] + [m["id"] for m in many]


def test_errors_carry_status_and_detail(client):
    with pytest.raises(ApiError) as info:
        client.get(424242)
    assert info.value.status == 404 and "424242" in str(info.value.detail)


def test_scenario_options_are_sent(client):
    job = client.submit(png_bytes((3, 3, 3)), context={"criticality": "high"}, match_text=None)
    assert client.get(job["id"])["context"]["criticality"] == "high"
    many = client.submit_many([png_bytes((4, 4, 4))], context={"candidates": 12})
    assert client.get(many[0]["id"])["context"]["candidates"] == 12
    # the test API runs open_nsfw: a match_text reaches it and is refused with the reason
    with pytest.raises(ApiError, match="embeds text") as err:
        client.submit_many([png_bytes((5, 5, 5))], match_text="red shoes")
    assert err.value.status == 422


def test_submit_command_sends_context_and_refuses_bad_context(client, tmp_path):
    from tests.moderation.cli.runner import fails, ok

    path = tmp_path / "a.png"
    path.write_bytes(png_bytes((6, 6, 6)))
    url, token = str(client._http.base_url).rstrip("/"), TOKENS["alice"]
    out = ok("submit", str(path), "--url", url, "--token", token, "--context", "criticality=low")
    job_id = int(re.search(r"│\s*(\d+)\s*│\s*queued", out).group(1))
    assert client.get(job_id)["context"]["criticality"] == "low"
    fails("submit", str(path), "--url", url, "--token", token, "--context", "x=1", match="unknown")
    fails("submit", str(path), "--url", url, "--token", token, "--match-text", "shoes",
          match="embeds text")  # fmt: skip
