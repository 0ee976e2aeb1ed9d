"""Throwaway servers and worker processes for fault tests (started and stopped by the test)."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import redis

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class S3Server:
    """A real S3-protocol server on 127.0.0.1: moto's standalone server (``moto[server]``,
    ``ThreadedMotoServer``) on a free port. boto3 talks HTTP to it exactly as to any
    S3-compatible store; nothing is mocked in the client."""

    ACCESS_KEY = "test-access-key"
    SECRET_KEY = "test-secret-key"

    def __init__(self) -> None:
        import boto3
        from moto.server import ThreadedMotoServer

        port = free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._server.start()
        self.client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.ACCESS_KEY,
            aws_secret_access_key=self.SECRET_KEY,
        )

    def stop(self) -> None:
        self._server.stop()

    def bucket(self) -> str:
        """A fresh bucket (moto keeps state for the server's life)."""
        name = f"b-{os.urandom(8).hex()}"
        self.client.create_bucket(Bucket=name)
        return name

    def settings(self) -> dict[str, object]:
        return {
            "s3_endpoint_url": self.endpoint,
            "s3_access_key_id": self.ACCESS_KEY,
            "s3_secret_access_key": self.SECRET_KEY,
            "s3_region": "us-east-1",
        }

    def keys(self, bucket: str) -> list[str]:
        found = self.client.list_objects_v2(Bucket=bucket).get("Contents", [])
        return sorted(o["Key"] for o in found)


class CallbackReceiver:
    """A decision-callback receiver on 127.0.0.1: records the JSON body of every POST (204);
    with ``secret``, only correctly signed ones (others get 401). Its port is fixed when it is
    made, so it can be down (nothing listening: connections refused) and come up again."""

    def __init__(self, secret: str | None = None) -> None:
        self.port = free_port()
        self.secret = secret
        self.received: list[dict] = []
        self.server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/moderation"

    def up(self) -> CallbackReceiver:
        from moderation.callbacks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature

        received, secret = self.received, self.secret

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                body = self.rfile.read(int(self.headers["content-length"]))
                ok = secret is None or verify_signature(
                    secret, body, self.headers[TIMESTAMP_HEADER], self.headers[SIGNATURE_HEADER]
                )
                if ok:
                    received.append(json.loads(body))
                self.send_response(204 if ok else 401)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, poll: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)


class PrivateRedis:
    """A redis-server on a spare port, without persistence (a restart loses everything)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._ping, 10, "private redis")

    def _ping(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class PrivatePostgres:
    """A temporary Postgres cluster (initdb/pg_ctl) on a spare port, run as user postgres."""

    def __init__(self) -> None:
        if PG_BIN is None or shutil.which("runuser") is None:
            raise RuntimeError("initdb/pg_ctl or runuser not available")
        self.port = free_port()
        # not under pytest's tmp dir: user postgres must be able to reach it
        self.root = Path(tempfile.mkdtemp(prefix="moderation-pg-"))
        self.data = self.root / "data"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/moderation"

    def _as_postgres(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *argv], check=True, capture_output=True)

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # initdb refuses to run as root
            shutil.chown(self.root, "postgres")
        self._as_postgres(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        )
        self.start()
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute("CREATE DATABASE moderation")

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            opts,
            "-l",
            str(self.root / "log"),
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


class WorkerProcess:
    """``moderation worker`` in its own process group, so teardown can kill every process."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.env = {**os.environ, **env}
        self.log = log
        self.args = args or ("--cpu", "1", "--no-ops")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moderation", "worker", *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def descendants(self) -> list[int]:
        """pids below the launcher (celery main processes and their pool children)."""
        assert self.proc is not None
        parents: dict[int, int] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(stat.parent.name)] = int(fields[1])
        found, frontier = [], [self.proc.pid]
        while frontier:
            pid = frontier.pop()
            kids = [p for p, ppid in parents.items() if ppid == pid]
            found += kids
            frontier += kids
        return found

    def pool_children(self) -> list[int]:
        """Celery's prefork pool processes (grandchildren of the launcher)."""
        assert self.proc is not None
        mains = set(self._children_of(self.proc.pid))
        return [p for m in mains for p in self._children_of(m)]

    def _children_of(self, pid: int) -> list[int]:
        out = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(stat.parent.name))
        return out

    def celery_main(self, node: str) -> int:
        """pid of the Celery main process named ``node`` (``cpu0``, ``ops``) below the
        launcher."""
        assert self.proc is not None
        for pid in self._children_of(self.proc.pid):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(arg.decode(errors="replace").startswith(f"{node}@") for arg in argv):
                return pid
        raise LookupError(f"no celery main process {node!r} below the launcher")

    def kill_all(self) -> None:
        """SIGKILL the launcher and every process below it (Celery parents, pool children)."""
        if self.proc is None:
            return
        for pid in [self.proc.pid, *self.descendants()]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        self.proc = None

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM to the launcher (what ``docker stop`` does), then SIGKILL what is left."""
        if self.proc is None:
            return
        try:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        self.kill_all()
