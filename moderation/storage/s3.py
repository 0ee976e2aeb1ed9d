"""The S3-compatible client (boto3, imported lazily: the ``s3`` extra) and object reads."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from moderation.images import ImageRejected

if TYPE_CHECKING:
    from moderation.config import Settings

__all__ = ["read_object", "s3_client"]

_MISSING = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}


def s3_client(settings: Settings) -> Any:
    secret = settings.s3_secret_access_key
    return _client(
        settings.s3_endpoint_url,
        settings.s3_region,
        settings.s3_access_key_id,
        secret.get_secret_value() if secret is not None else None,
        settings.s3_max_attempts,
    )


@functools.lru_cache(maxsize=8)
def _client(
    endpoint: str | None, region: str, key: str | None, secret: str | None, attempts: int
) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:  # pragma: no cover - depends on the install
        raise RuntimeError("S3 storage needs boto3: pip install 'moderation[s3]'") from None
    # boto3 clients are thread-safe; "standard" retries back off on throttling, 5xx and
    # connection errors (transient), up to `attempts` tries in all
    config = Config(
        retries={"max_attempts": attempts, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
        s3={"addressing_style": "path"},
    )
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=config,
    )


def read_object(settings: Settings, bucket: str, key: str, max_bytes: int) -> bytes:
    from botocore.exceptions import BotoCoreError, ClientError

    where = f"s3://{bucket}/{key}"
    try:
        response = s3_client(settings).get_object(Bucket=bucket, Key=key)
        size = int(response.get("ContentLength") or 0)
        body = response["Body"]
        try:
            if size > max_bytes:
                raise ImageRejected(
                    "too_large", f"{where}: {size} bytes exceeds the {max_bytes}-byte limit"
                )
            data: bytes = body.read(max_bytes + 1)
        finally:
            body.close()
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _MISSING:
            raise ImageRejected("not_found", f"{where} does not exist") from None
        raise ImageRejected("fetch_failed", f"{where}: {code or exc}") from None
    except BotoCoreError as exc:  # connection/timeouts, after the client's retries
        raise ImageRejected("fetch_failed", f"{where}: {exc}") from None
    if len(data) > max_bytes:
        raise ImageRejected("too_large", f"{where} exceeds the {max_bytes}-byte limit")
    return data
