"""``moderation dashboard``: refuses an old schema in one line, serves pages as a real process."""

from __future__ import annotations

import os
import re
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


NO_TOKENS = {"MODERATION_API_TOKENS": ""}  # the compose default


def test_refuses_to_start_without_a_reviewer_or_admin_token(sqlite_url):
    """Finding: with no tokens (or only submitter ones) the dashboard let anyone in."""
    for tokens in ("", "up:submitter:" + "s" * 32):
        result = run_cli("dashboard", "--url", sqlite_url, env={"MODERATION_API_TOKENS": tokens})
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "no reviewer or admin token" in lines[0]
        assert "--no-auth" in lines[0]


def test_no_auth_binds_loopback_only(sqlite_url):
    for host in ("0.0.0.0", "192.0.2.10", "::"):
        result = run_cli(
            "dashboard", "--no-auth", "--host", host, "--url", sqlite_url, env=NO_TOKENS
        )
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "--no-auth" in lines[0] and host in lines[0]


def test_tokens_add_refuses_a_static_name(sqlite_url):
    """Finding: `tokens add` accepted a name a static token already used."""
    env = {"MODERATION_DATABASE_URL": sqlite_url, "MODERATION_API_TOKENS": "ops:admin:" + "o" * 32}
    taken = run_cli("tokens", "add", "ops", "reviewer", env=env)
    assert taken.returncode == 2 and "MODERATION_API_TOKENS" in taken.stderr
    made = run_cli("tokens", "add", "rita", "reviewer", env=env)
    assert made.returncode == 0 and len(made.stdout.strip()) >= 32


def _serve(url: str, port: int, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "moderation", "dashboard", "--port", str(port), "--url", url,
         *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **env},
    )  # fmt: skip


def test_a_db_token_logs_in_to_the_served_dashboard(sqlite_url):
    env = {"MODERATION_DATABASE_URL": sqlite_url, **NO_TOKENS}
    made = run_cli("tokens", "add", "dora", "reviewer", env=env)
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    port = _free_port()
    process = _serve(sqlite_url, port, env=NO_TOKENS)
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base) as client:
            deadline, first = time.monotonic() + 60, None
            while time.monotonic() < deadline and first is None:
                try:
                    first = client.get("/overview")
                except httpx.TransportError:
                    assert process.poll() is None, process.stdout.read() if process.stdout else ""
                    time.sleep(0.2)
            assert first is not None and first.status_code == 303
            assert first.headers["location"] == "/login?next=%2Foverview"
            form = client.get("/login").text
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
            assert csrf
            logged = client.post("/login", data={"token": secret, "csrf_token": csrf.group(1)})
            assert logged.status_code == 303
            assert '<span class="viewer">dora</span>' in client.get("/overview").text
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert "MODERATION_SESSION_SECRET is unset" in output


def test_serves_the_pages(sqlite_url):
    engine = make_engine(sqlite_url)
    with make_sessionmaker(engine).begin() as session:
        seed_dashboard(session)
    engine.dispose()
    port = _free_port()
    process = _serve(sqlite_url, port, "--no-auth", env=NO_TOKENS)
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
