"""A real S3-protocol server for the storage tests: moto's standalone server (``moto[server]``,
``moto.server.ThreadedMotoServer``) on a free local port — boto3 talks HTTP to it exactly as
to any S3-compatible store; nothing is mocked in the client."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class S3Server:
    endpoint: str
    client: Any

    def bucket(self) -> str:
        """A fresh bucket (moto keeps state for the server's life)."""
        name = f"b-{uuid.uuid4().hex[:16]}"
        self.client.create_bucket(Bucket=name)
        return name

    def settings(self) -> dict[str, object]:
        return {
            "s3_endpoint_url": self.endpoint,
            "s3_access_key_id": ACCESS_KEY,
            "s3_secret_access_key": SECRET_KEY,
            "s3_region": "us-east-1",
        }

    def keys(self, bucket: str) -> list[str]:
        found = self.client.list_objects_v2(Bucket=bucket).get("Contents", [])
        return sorted(o["Key"] for o in found)


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    try:
        yield S3Server(endpoint, client)
    finally:
        server.stop()


@pytest.fixture
def storage_settings(s3: S3Server, tmp_path) -> Callable[..., dict[str, object]]:  # type: ignore[no-untyped-def]
    def make(**overrides: object) -> dict[str, object]:
        return {**s3.settings(), **overrides}

    return make
