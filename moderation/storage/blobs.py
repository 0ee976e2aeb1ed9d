"""The blob store: one interface, three implementations (``db``, ``dir``, ``s3``).

``MODERATION_BLOB_STORE`` picks where directly uploaded bytes go: ``db`` keeps them in
``image_blobs`` (the embedded default), ``dir:/path`` in a local directory, ``s3://bucket/prefix``
in an S3-compatible bucket. Bytes are content-addressed (the key is their sha256), so the same
upload is stored once. A stored blob is named by a location URI kept on its image row
(``images.blob_uri``: ``file:///…`` or ``s3://…``); reading and deleting go by that URI, so
blobs written under an earlier setting stay readable after the setting changes.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol
from urllib.parse import unquote, urlparse

from moderation.images import ImageRejected

if TYPE_CHECKING:
    from moderation.config import Settings

__all__ = [
    "BlobStore",
    "BlobStoreSpec",
    "DbBlobStore",
    "DirBlobStore",
    "S3BlobStore",
    "Stored",
    "delete_blob",
    "open_blob_store",
    "parse_blob_store",
    "read_blob",
]


@dataclass(frozen=True)
class BlobStoreSpec:
    kind: Literal["db", "dir", "s3"]
    path: Path | None = None
    bucket: str | None = None
    prefix: str = ""


def parse_blob_store(value: str) -> BlobStoreSpec:
    """``db`` | ``dir:/absolute/path`` | ``s3://bucket[/prefix]``; anything else raises."""
    text = value.strip()
    if text == "db":
        return BlobStoreSpec("db")
    if text.startswith("dir:"):
        path = Path(text[4:]).expanduser()
        if not text[4:] or not path.is_absolute():
            raise ValueError(f"blob store {value!r}: dir: needs an absolute path (dir:/srv/blobs)")
        return BlobStoreSpec("dir", path=path)
    if text.startswith("s3://"):
        bucket, _, prefix = text[5:].partition("/")
        if not bucket:
            raise ValueError(f"blob store {value!r}: s3:// needs a bucket (s3://bucket/prefix)")
        return BlobStoreSpec("s3", bucket=bucket, prefix=prefix.strip("/"))
    raise ValueError(f"blob store {value!r}: use db, dir:/path or s3://bucket/prefix")


@dataclass(frozen=True)
class Stored:
    """Where one upload's bytes went: ``data`` for ``image_blobs`` or a ``blob_uri``."""

    data: bytes | None
    blob_uri: str | None


class BlobStore(Protocol):
    kind: str

    def put(self, sha256: str, data: bytes) -> Stored:
        """Keep ``data`` (content-addressed by ``sha256``); idempotent."""
        ...


def _key(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256}"


class DbBlobStore:
    """The bytes go in ``image_blobs`` with the image row, in the intake transaction."""

    kind = "db"

    def put(self, sha256: str, data: bytes) -> Stored:
        return Stored(data=data, blob_uri=None)


class DirBlobStore:
    """Files ``<root>/<sha[:2]>/<sha>``, written atomically (temporary file, then rename)."""

    kind = "dir"

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, sha256: str, data: bytes) -> Stored:
        path = self.root / _key(sha256)
        # always (re)written: a retention run may be deleting an older copy of the same bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Stored(data=None, blob_uri=path.resolve().as_uri())


class S3BlobStore:
    """Objects ``<prefix>/<sha[:2]>/<sha>`` in one bucket of an S3-compatible store."""

    kind = "s3"

    def __init__(self, settings: Settings, bucket: str, prefix: str) -> None:
        self._settings = settings
        self.bucket = bucket
        self.prefix = prefix

    def put(self, sha256: str, data: bytes) -> Stored:
        from .s3 import s3_client

        key = f"{self.prefix}/{_key(sha256)}" if self.prefix else _key(sha256)
        s3_client(self._settings).put_object(Bucket=self.bucket, Key=key, Body=data)
        return Stored(data=None, blob_uri=f"s3://{self.bucket}/{key}")


def open_blob_store(settings: Settings) -> BlobStore:
    spec = parse_blob_store(settings.blob_store)
    if spec.kind == "dir":
        assert spec.path is not None
        return DirBlobStore(spec.path)
    if spec.kind == "s3":
        assert spec.bucket is not None
        return S3BlobStore(settings, spec.bucket, spec.prefix)
    return DbBlobStore()


def read_blob(uri: str, settings: Settings, max_bytes: int) -> bytes:
    """The bytes at a location this deployment wrote or accepted (``file://`` or ``s3://``).

    Raises ``ImageRejected``: ``not_found`` (no such object/file), ``too_large``, or
    ``fetch_failed`` (the store kept failing after its retries, or refused access)."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        from .s3 import read_object

        return read_object(settings, parsed.netloc, parsed.path.lstrip("/"), max_bytes)
    if parsed.scheme == "file":
        return read_file(Path(unquote(parsed.path)), max_bytes)
    raise ImageRejected("missing", f"no readable location ({uri!r})")


def read_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of a file whose path was resolved when it was accepted or written.

    A symlink planted on that path since then is refused, not followed: every stored path is
    already free of links (``refs.check_image_uri`` and ``DirBlobStore`` store ``resolve()``d
    paths), so a path that resolves elsewhere now was changed under us."""
    try:
        if os.path.realpath(path) != str(path):
            raise ImageRejected("fetch_failed", f"{path} changed into a symbolic link; refused")
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                raise ImageRejected("too_large", f"{size} bytes exceeds the {max_bytes}-byte limit")
            return f.read(max_bytes + 1)
    except FileNotFoundError:
        raise ImageRejected("not_found", f"{path} does not exist") from None
    except OSError as exc:
        raise ImageRejected("fetch_failed", f"cannot read {path}: {exc.strerror or exc}") from None


def delete_blob(uri: str, settings: Settings) -> None:
    """Delete a blob the store wrote (a missing one is already deleted)."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        from .s3 import s3_client

        s3_client(settings).delete_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))
    elif parsed.scheme == "file":
        Path(unquote(parsed.path)).unlink(missing_ok=True)
    else:
        raise ValueError(f"not a blob location: {uri!r}")
