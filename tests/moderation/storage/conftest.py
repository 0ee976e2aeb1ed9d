"""A real S3-protocol server for the storage tests (``tests.integration.servers.S3Server``:
moto's standalone server on a free local port — nothing is mocked in the client)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto.server")

from tests.integration.servers import S3Server  # noqa: E402


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    server = S3Server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def storage_settings(s3: S3Server, tmp_path) -> Callable[..., dict[str, object]]:  # type: ignore[no-untyped-def]
    def make(**overrides: object) -> dict[str, object]:
        return {**s3.settings(), **overrides}

    return make
