"""Fixtures for the dashboard: a seeded database, the app on it, a real server, a browser."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moderation.config import DEFAULT_ALLOWED_HOSTS
from moderation.db import make_engine, make_sessionmaker
from moderation.web.app import create_dashboard_app
from moderation.web.security import CSP
from tests.dashboard_seed import NOW, seed_dashboard

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = Path(os.environ.get("MODERATION_TEST_ARTIFACTS", ROOT / "artifacts"))
# Flags for a root, network-less machine: no sandbox, no GPU, nothing phoning home.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
]  # fmt: skip


@pytest.fixture
def seeded_url(db_url: str) -> str:
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            seed_dashboard(session)
    finally:
        engine.dispose()
    return db_url


@pytest.fixture
def dashboard_factory(settings_factory) -> Iterator[Callable[..., FastAPI]]:
    """Build dashboard apps pinned to the seed's NOW (or ``clock``); their engines are
    disposed afterwards. Without ``api_tokens`` the app runs as ``--no-auth`` does (unless
    ``no_auth`` says otherwise); with them, log in with ``tests.dashboard_auth.log_in``.
    TestClient's ``testserver`` is an allowed host unless ``allowed_hosts`` is given."""
    engines = []

    def make(
        database_url: str,
        *,
        no_auth: bool | None = None,
        clock: Callable[[], object] | None = None,
        **overrides: object,
    ) -> FastAPI:
        engine = make_engine(database_url)
        engines.append(engine)
        overrides.setdefault("allowed_hosts", ["testserver", *DEFAULT_ALLOWED_HOSTS])
        settings = settings_factory(database_url=database_url, **overrides)
        return create_dashboard_app(
            settings,
            engine=engine,
            clock=clock or (lambda: NOW),  # type: ignore[arg-type,return-value]
            no_auth="api_tokens" not in overrides if no_auth is None else no_auth,
        )

    yield make
    for engine in engines:
        engine.dispose()


class _RecordStatuses:
    """ASGI middleware remembering (path, status) of every response the server sent."""

    def __init__(self, app: ASGIApp, log: list[tuple[str, int]]) -> None:
        self.app, self.log = app, log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.log.append((scope["path"], message["status"]))
            await send(message)

        await self.app(scope, receive, record if scope["type"] == "http" else send)


@dataclass
class LiveServer:
    base_url: str
    responses: list[tuple[str, int]] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_server(request: pytest.FixtureRequest) -> Iterator[Callable[[FastAPI], LiveServer]]:
    """Serve an app with uvicorn on a spare loopback port, in a thread, for the test."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: FastAPI) -> LiveServer:
        live = LiveServer(base_url="")
        port = _free_port()
        config = uvicorn.Config(
            _RecordStatuses(app, live.responses), host="127.0.0.1", port=port, log_level="warning"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the dashboard server did not start")
            time.sleep(0.05)
        servers.append((server, thread))
        live.base_url = f"http://127.0.0.1:{port}"
        return live

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


# A test-only driver page runs its own inline script: the dashboard's policy (script-src
# 'self') would block it, so a driver route states a policy of its own (kept by the middleware).
DRIVER_CSP = CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'")


def driver_response(html: str) -> HTMLResponse:
    return HTMLResponse(html, headers={"Content-Security-Policy": DRIVER_CSP})


@dataclass(frozen=True)
class PageCapture:
    dom: str
    console: list[str]  # messages the page logged (errors, failed loads)
    screenshot: Path


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = "Debian `chromium` is not installed (apt-get install -y chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"browser tests need a browser in CI: {message}")
    pytest.skip(message)


@pytest.fixture
def browser(tmp_path: Path) -> Callable[..., PageCapture]:
    """Load a URL in headless Chromium: its DOM after load, console messages, a screenshot
    kept under artifacts/screenshots/ (git-ignored). Extra Chromium flags may follow the name."""
    binary = _chromium()
    ARTIFACTS.joinpath("screenshots").mkdir(parents=True, exist_ok=True)

    def run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
        profile = tmp_path / f"profile-{time.monotonic_ns()}"
        return subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip

    def capture(url: str, name: str, *flags: str, screenshot_url: str | None = None) -> PageCapture:
        """``screenshot_url``: photograph that page instead (for a ``url`` that acts, so that
        only the DOM load does: a screenshot load may exit before a page script finishes)."""
        shot = ARTIFACTS / "screenshots" / f"{name}.png"
        run(screenshot_url or url, *flags, "--window-size=1280,2600", f"--screenshot={shot}")
        dumped = run(url, *flags, "--dump-dom")
        console = [line for line in dumped.stderr.splitlines() if ":CONSOLE" in line]
        print(f"screenshot: {shot}")
        return PageCapture(dumped.stdout, console, shot)

    return capture
