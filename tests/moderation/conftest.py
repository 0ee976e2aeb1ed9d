"""An API on a fresh Postgres DB publishing to the real Redis under a private key prefix."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis
from fastapi.testclient import TestClient

from moderation.api.app import create_app
from moderation.config import Settings

TOKENS = {
    "alice": "alice-submitter-secret-0000000000000001",
    "bob": "bob-submitter-secret-000000000000000002",
    "rita": "rita-reviewer-secret-000000000000000003",
    "adam": "adam-admin-secret-000000000000000000004",
}
ROLES = {"alice": "submitter", "bob": "submitter", "rita": "reviewer", "adam": "admin"}


@dataclass
class Api:
    client: TestClient
    settings: Settings
    redis: redis.Redis

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKENS[who]}"}

    def queued_messages(self) -> int:
        prefix = self.settings.broker_key_prefix
        return sum(
            int(self.redis.llen(k))
            for k in self.redis.scan_iter(f"{prefix}{self.settings.queue_name}*")
        )


@pytest.fixture
def api_factory(
    pg_url: str, redis_url: str, redis_prefix: str, settings_factory: Callable[..., Settings]
) -> Iterator[Callable[..., Api]]:
    clients: list[TestClient] = []
    conn = redis.Redis.from_url(redis_url)

    def make(**overrides: object) -> Api:
        values: dict[str, object] = {
            "database_url": pg_url,
            "broker_url": redis_url,
            "broker_key_prefix": redis_prefix,
            "queue_name": "api-test.score",
            "api_tokens": [f"{n}:{ROLES[n]}:{t}" for n, t in TOKENS.items()],
        }
        settings = settings_factory(**{**values, **overrides})
        client = TestClient(create_app(settings))
        clients.append(client)
        return Api(client, settings, conn)

    yield make
    for client in clients:
        client.close()
    conn.close()


@pytest.fixture
def api(api_factory: Callable[..., Api]) -> Api:
    return api_factory()
