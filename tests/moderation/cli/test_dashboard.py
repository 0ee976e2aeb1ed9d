"""``moderation dashboard``: refuses an old schema in one line, serves pages as a real process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx

from moderation.db import make_engine, make_sessionmaker
from tests.dashboard_seed import seed_dashboard
from tests.moderation.cli.test_db import run_cli


def test_help_names_the_options():
    result = run_cli("dashboard", "--help")
    assert result.returncode == 0
    assert "--port" in result.stdout and "--host" in result.stdout


def test_refuses_a_database_without_the_current_schema(tmp_path):
    result = run_cli("dashboard", "--url", f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "moderation db upgrade" in lines[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serves_the_pages(sqlite_url):
    engine = make_engine(sqlite_url)
    with make_sessionmaker(engine).begin() as session:
        seed_dashboard(session)
    engine.dispose()
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moderation", "dashboard", "--port", str(port), "--url", sqlite_url],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "MODERATION_API_TOKENS": ""},
    )  # fmt: skip
    try:
        deadline, pages = time.monotonic() + 60, {}
        while time.monotonic() < deadline and not pages:
            try:
                pages = {
                    p: httpx.get(f"http://127.0.0.1:{port}/{p}") for p in ("overview", "thresholds")
                }
            except httpx.TransportError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                time.sleep(0.2)
        assert pages, "the dashboard did not answer within 60 s"
        assert all(r.status_code == 200 for r in pages.values())
        assert "weapons" in pages["thresholds"].text  # data from the seeded file
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert f"dashboard on http://127.0.0.1:{port}/" in output
