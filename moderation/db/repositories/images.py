"""Images: content-addressed rows (sha256 unique), their bytes, and facts learnt on decode."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from moderation.db.models import Image, ImageBlob, Job

from ._upsert import in_values, insert_ignore, update_many

__all__ = ["ImageFacts", "NewImage", "Payload", "load_payloads", "record_facts", "upsert_images"]


@dataclass(frozen=True)
class NewImage:
    sha256: str
    byte_size: int
    data: bytes | None = None  # stored in image_blobs when given
    storage_uri: str | None = None  # where the bytes live otherwise (file:///…)
    blob_uri: str | None = None  # where the blob store (dir/s3) put them


@dataclass(frozen=True)
class Payload:
    """What a worker needs to decode one job's image."""

    job_id: int
    image_id: int
    sha256: str
    data: bytes | None
    storage_uri: str | None
    blob_uri: str | None = None  # the blob store's copy (MODERATION_BLOB_STORE dir/s3)
    purged: bool = False  # retention deleted the bytes (the hashes stay)
    attempts: int = 0  # the job's deliveries so far when read (0: never delivered)


@dataclass(frozen=True)
class ImageFacts:
    image_id: int
    width: int
    height: int
    format: str
    pdq_hash: str | None = None
    pdq_quality: int | None = None


def upsert_images(session: Session, images: Sequence[NewImage]) -> dict[str, int]:
    """Make sure a row (and, when bytes are given, a blob) exists per sha256; sha256 → id."""
    if not images:
        return {}
    rows = {
        img.sha256: {
            "sha256": img.sha256,
            "byte_size": img.byte_size,
            "storage_uri": img.storage_uri,
            "blob_uri": img.blob_uri,
        }
        for img in images
    }
    insert_ignore(session, Image.__table__, list(rows.values()), ["sha256"])
    # ids and retention state in one read (the same bytes uploaded again after a purge)
    found = session.execute(
        select(Image.sha256, Image.id, Image.purged_at.is_not(None)).where(
            in_values(session, Image.sha256, list(rows))
        )
    ).all()
    ids = {sha: image_id for sha, image_id, _ in found}
    blobs = {ids[img.sha256]: img.data for img in images if img.data is not None}
    _restore_purged(session, images, ids, {image_id for _, image_id, purged in found if purged})
    insert_ignore(
        session,
        ImageBlob.__table__,
        [{"image_id": image_id, "data": data} for image_id, data in blobs.items()],
        ["image_id"],
    )
    return ids


def _restore_purged(
    session: Session, images: Sequence[NewImage], ids: Mapping[str, int], purged: set[int]
) -> None:
    """The same bytes uploaded again after retention purged them: keep them again."""
    stored = {ids[i.sha256]: i for i in images if i.data is not None or i.blob_uri is not None}
    for image_id in sorted(purged & set(stored)):
        session.execute(
            update(Image)
            .where(Image.id == image_id)
            .values(purged_at=None, blob_uri=stored[image_id].blob_uri)
        )


# PostgreSQL through psycopg: the blobs come back in binary format. In the default text format
# the server hex-encodes every bytea and psycopg decodes it (~1 ms of CPU per 166 kB, twice
# the bytes on the wire); binary sends the bytes as they are stored.
_PAYLOADS_SQL = (
    "SELECT j.id, i.id, i.sha256, b.data, i.storage_uri, i.blob_uri, i.purged_at IS NOT NULL,"
    " j.attempts"
    " FROM jobs AS j"
    " JOIN images AS i ON i.id = j.image_id"
    " LEFT OUTER JOIN image_blobs AS b ON b.image_id = i.id"
    " WHERE j.id = ANY(%s)"
)


def load_payloads(session: Session, job_ids: Sequence[int]) -> dict[int, Payload]:
    """Bytes (or their location) of the images behind ``job_ids``; unknown ids are absent."""
    if not job_ids:
        return {}
    connection = session.connection()
    if connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg":
        driver = connection.connection.driver_connection
        with driver.cursor(binary=True) as cursor:  # type: ignore[union-attr]
            cursor.execute(_PAYLOADS_SQL, ([int(j) for j in job_ids],))
            return {
                job_id: Payload(
                    job_id,
                    image_id,
                    sha,
                    None if data is None else bytes(data),
                    uri,
                    blob,
                    bool(purged),
                    int(attempts),
                )
                for job_id, image_id, sha, data, uri, blob, purged, attempts in cursor.fetchall()
            }
    query = (
        select(Job.id, Image.id, Image.sha256, ImageBlob.data, Image.storage_uri)
        .add_columns(Image.blob_uri, Image.purged_at.is_not(None))  # blob store, retention
        .add_columns(Job.attempts)
        .join(Image, Image.id == Job.image_id)
        .outerjoin(ImageBlob, ImageBlob.image_id == Image.id)
        .where(Job.id.in_(list(job_ids)))
    )
    return {
        job_id: Payload(job_id, image_id, sha, data, uri, blob_uri, bool(purged), int(attempts))
        for job_id, image_id, sha, data, uri, blob_uri, purged, attempts in session.execute(
            query
        ).all()
    }


def record_facts(session: Session, facts: Mapping[int, ImageFacts]) -> None:
    """Store dimensions/format (and a perceptual hash when known) learnt while decoding.

    Dimensions are written only where none are stored yet; a known hash is always written.
    On Postgres one statement writes both (each image row gets one new version, not two)."""
    table = Image.__table__
    if not facts:
        return
    if session.get_bind().dialect.name == "postgresql":
        update_many(
            session,
            table,
            "id",
            [
                {
                    "id": f.image_id,
                    "width": f.width,
                    "height": f.height,
                    "format": f.format,
                    "pdq_hash": f.pdq_hash,
                    "pdq_quality": f.pdq_quality,
                }
                for f in facts.values()
            ],
            sets={
                "width": "COALESCE(images.width, x.width)",
                "height": "CASE WHEN images.width IS NULL THEN x.height ELSE images.height END",
                "format": "CASE WHEN images.width IS NULL THEN x.format ELSE images.format END",
                "pdq_hash": "COALESCE(x.pdq_hash, images.pdq_hash)",
                "pdq_quality": (
                    "CASE WHEN x.pdq_hash IS NULL THEN images.pdq_quality ELSE x.pdq_quality END"
                ),
            },
            where="(images.width IS NULL OR x.pdq_hash IS NOT NULL)",
        )
        return
    update_many(
        session,
        table,
        "id",
        [
            {"id": f.image_id, "width": f.width, "height": f.height, "format": f.format}
            for f in facts.values()
        ],
        where_null="width",
    )
    update_many(
        session,
        table,
        "id",
        [
            {"id": f.image_id, "pdq_hash": f.pdq_hash, "pdq_quality": f.pdq_quality}
            for f in facts.values()
            if f.pdq_hash is not None
        ],
    )
