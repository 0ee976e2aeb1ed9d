"""References: ``image_uri`` submissions (``s3://bucket/key`` or ``file:///path``).

Never an arbitrary URL: only an S3-compatible bucket named in ``MODERATION_IMAGE_URI_BUCKETS``
(read with the store's endpoint and credentials) or a file under ``MODERATION_IMAGE_FILE_ROOT``
(``..`` segments refused; the path is resolved, so a symlink leading out of the root is refused
too). The check runs at intake — a refused URI is a 422 and no job — and the worker reads the
bytes when it scores the job (``moderation.storage.blobs.read_blob``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from moderation.config import Settings

__all__ = ["MAX_URI", "ReferenceRefused", "check_image_uri", "reference_key"]

MAX_URI = 2000


class ReferenceRefused(ValueError):
    """An ``image_uri`` this deployment will not read; the message says why."""


def reference_key(uri: str) -> str:
    """The images row key of a reference: the sha256 of ``ref:<uri>`` (the worker reads the
    content later, so the same URI is one image row, as the same bytes are for uploads)."""
    return hashlib.sha256(b"ref:" + uri.encode()).hexdigest()


def check_image_uri(uri: str, settings: Settings) -> str:
    """The URI, normalised (a ``file://`` one to its resolved path), or ``ReferenceRefused``."""
    if len(uri) > MAX_URI or any(ord(c) < 32 or c in "\x7f\\" for c in uri):
        raise ReferenceRefused("image_uri: too long or has control characters/backslashes")
    try:
        parts = urlsplit(uri)
    except ValueError:
        raise ReferenceRefused("image_uri: not a URI") from None
    if parts.query or parts.fragment:
        raise ReferenceRefused("image_uri: no query or fragment")
    if parts.scheme == "s3":
        return _check_s3(parts.netloc, parts.path, settings)
    if parts.scheme == "file":
        return _check_file(parts.netloc, parts.path, settings)
    raise ReferenceRefused("image_uri: only s3://bucket/key and file:///path are accepted")


def _segments_ok(path: str) -> bool:
    return all(seg not in (".", "..") for seg in path.split("/"))


def _check_s3(bucket: str, path: str, settings: Settings) -> str:
    key = path.lstrip("/")
    if not bucket or bucket not in settings.image_uri_buckets:
        raise ReferenceRefused(
            f"image_uri: bucket {bucket!r} is not allowed (MODERATION_IMAGE_URI_BUCKETS)"
        )
    if not key or not _segments_ok(unquote(key)):
        raise ReferenceRefused("image_uri: s3://bucket/key needs a key without . or .. parts")
    return f"s3://{bucket}/{key}"


def _check_file(host: str, path: str, settings: Settings) -> str:
    root = settings.image_file_root
    if root is None:
        raise ReferenceRefused("image_uri: file:// references are off (MODERATION_IMAGE_FILE_ROOT)")
    if host not in ("", "localhost"):
        raise ReferenceRefused("image_uri: file:// must name a local path (file:///path)")
    raw = unquote(path)
    if "\x00" in raw or not raw.startswith("/") or not _segments_ok(raw):
        raise ReferenceRefused("image_uri: file:// needs an absolute path without . or ..")
    base = root.expanduser().resolve()
    try:
        resolved = Path(raw).resolve(strict=False)  # follows symlinks
    except (OSError, RuntimeError):
        raise ReferenceRefused("image_uri: the path cannot be resolved") from None
    if not PurePosixPath(resolved).is_relative_to(base) or resolved == base:
        raise ReferenceRefused("image_uri: the path is outside MODERATION_IMAGE_FILE_ROOT")
    return resolved.as_uri()
