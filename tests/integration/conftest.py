"""A whole stack per test: API (in-process), real Celery worker processes, Postgres, Redis."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from moderation.api.app import create_app
from moderation.config import Settings
from moderation.db.models import Decision, Job, Score
from moderation.db.session import make_engine, make_sessionmaker, session_scope
from moderation.domain import JobStatus

from .servers import CallbackReceiver, WorkerProcess, wait_for

pytestmark = pytest.mark.integration
TOKEN = "integration-submitter-token-0000000001"


@dataclass
class Stack:
    settings: Settings
    env: dict[str, str]
    client: TestClient
    tmp: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    def start_worker(self, *args: str) -> WorkerProcess:
        worker = WorkerProcess(self.env, self.tmp / f"worker{len(self.workers)}.log", *args)
        worker.start()
        self.workers.append(worker)
        return worker

    def submit(self, images: list[bytes], batch: bool = False) -> list[int]:
        if batch:
            body = {"jobs": [{"image_base64": base64.b64encode(i).decode()} for i in images]}
            r = self.client.post("/v1/jobs/batch", json=body, headers=self.headers)
            assert r.status_code == 202, r.text
            return [j["id"] for j in r.json()]
        ids = []
        for n, image in enumerate(images):
            if n % 2:
                r = self.client.post("/v1/jobs", files={"file": ("i", image)}, headers=self.headers)
            else:
                body = {"image_base64": base64.b64encode(image).decode()}
                r = self.client.post("/v1/jobs", json=body, headers=self.headers)
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        return ids

    def counts(self) -> dict[str, int]:
        engine = make_engine(self.settings.database_url)
        try:
            with session_scope(make_sessionmaker(engine)) as s:
                by_status = dict(
                    s.execute(select(Job.status, func.count()).group_by(Job.status)).all()
                )
                out = {str(k): int(v) for k, v in by_status.items()}
                out["score_rows"] = int(s.scalar(select(func.count()).select_from(Score)) or 0)
                out["decision_rows"] = int(
                    s.scalar(select(func.count()).select_from(Decision)) or 0
                )
                out["jobs"] = sum(int(v) for v in by_status.values())
                return out
        finally:
            engine.dispose()

    def jobs(self) -> dict[int, Job]:
        engine = make_engine(self.settings.database_url)
        try:
            with session_scope(make_sessionmaker(engine)) as s:
                return {j.id: j for j in s.scalars(select(Job))}
        finally:
            engine.dispose()

    def wait_all_terminal(self, timeout: float, tick: Callable[[], None] | None = None) -> None:
        def done() -> bool:
            if tick is not None:
                tick()
            c = self.counts()
            open_ = c.get(JobStatus.QUEUED.value, 0) + c.get(JobStatus.PROCESSING.value, 0)
            return c["jobs"] > 0 and open_ == 0

        try:
            wait_for(done, timeout, "every job to finish", poll=0.5)
        except TimeoutError:
            for worker in self.workers:
                print(worker.log.read_text()[-4000:])
            print(self.counts())
            raise


@pytest.fixture
def stack_factory(
    tmp_path: Path, redis_url: str, redis_prefix: str, settings_factory: Callable[..., Settings]
) -> Iterator[Callable[..., Stack]]:
    stacks: list[Stack] = []

    def make(
        database_url: str,
        broker_url: str | None = None,
        *,
        defaults: bool = False,
        **overrides: object,
    ) -> Stack:
        """``defaults``: keep every recovery setting (stale claim, time limits, visibility
        timeout, broker check interval) at its default — what the recovery tests promise."""
        timings: dict[str, object] = (
            {}
            if defaults
            else {"stale_claim_s": 10, "batch_soft_time_limit_s": 6, "batch_time_limit_s": 8}
        )
        values: dict[str, object] = {
            "database_url": database_url,
            "broker_url": broker_url or redis_url,
            "broker_key_prefix": redis_prefix,
            "queue_name": f"it-{uuid.uuid4().hex[:6]}.score",
            "ops_queue_name": f"it-{uuid.uuid4().hex[:6]}.ops",
            "backend": "fake",
            "batch_size": 8,
            "max_wait_ms": 20,
            **timings,
            "api_tokens": [f"pipeline:submitter:{TOKEN}"],
            **overrides,
        }
        settings = settings_factory(**values)
        env = {
            f"MODERATION_{k.upper()}": ",".join(v) if isinstance(v, list) else str(v)
            for k, v in settings.model_dump(mode="json").items()
            if v is not None and k != "api_tokens" and not isinstance(v, dict)
        }
        env["MODERATION_API_TOKENS"] = f"pipeline:submitter:{TOKEN}"
        stack = Stack(settings, env, TestClient(create_app(settings)), tmp_path)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        for worker in stack.workers:
            worker.kill_all()  # nothing left to drain: the test is over
        stack.client.close()


@pytest.fixture
def categories() -> int:
    from moderation.scoring.scorers import build_scorer

    return len(build_scorer(Settings(_env_file=None, backend="fake")).categories)  # type: ignore[call-arg]


@pytest.fixture
def callback_receiver() -> Iterator[CallbackReceiver]:
    """A callback receiver that is up (``.url``, ``.received``), shut down after the test."""
    receiver = CallbackReceiver().up()
    yield receiver
    receiver.down()
