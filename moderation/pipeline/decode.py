"""Image preparation on CPU threads, with look-ahead so the next batch decodes while the
model runs on the current one. Each decoded image is PDQ-hashed here too, so hashing (a resize
and a DCT, ~10–70 ms) overlaps the model's forward instead of sitting in front of it."""

from __future__ import annotations

import concurrent.futures as cf
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from PIL.Image import Image as PILImage

from moderation.db.repositories.images import Payload
from moderation.hashbank.hashing import PdqHash, compute_pdq
from moderation.images import (
    DEFAULT_MAX_FRAMES,
    DEFAULT_WORKING_PIXELS,
    DecodedImage,
    ImageRejected,
    decode_image,
)
from moderation.storage.blobs import read_blob

if TYPE_CHECKING:
    from moderation.config import Settings

__all__ = ["Decoder", "Prepared", "hash_image", "read_payload_bytes", "with_variants"]

log = logging.getLogger(__name__)

PayloadLoader = Callable[[Sequence[int]], dict[int, Payload]]


@dataclass(frozen=True)
class Prepared:
    """One job's image, decoded — or the reason it cannot be — and its PDQ hash (None when
    hashing failed: the job goes on without it)."""

    job_id: int
    image_id: int
    sha256: str
    image: DecodedImage | None
    rejected: ImageRejected | None
    pdq: PdqHash | None = None
    # animated images: (frame number, PDQ hash) of every sampled frame after the first
    frame_pdqs: tuple[tuple[int, PdqHash], ...] = ()
    attempts: int = 0  # the job's deliveries when its payload was read (0: never delivered)

    def all_pdqs(self) -> list[tuple[int, PdqHash]]:
        """(frame number, hash) of every hashed frame, frame 0 first."""
        first = [(0, self.pdq)] if self.pdq is not None else []
        return [*first, *self.frame_pdqs]


def hash_image(image: DecodedImage, *, dihedral: bool) -> PdqHash | None:
    """The PDQ hash of a decoded image, or None if hashing fails: a hash is a by-product of
    intake, and a job must not fail for want of one (the image row keeps a null hash)."""
    return _hash_pixels(image.image, image.sha256, dihedral=dihedral)


def with_variants(prepared: Prepared) -> Prepared:
    """``prepared`` with the rotated/mirrored variants of its hashes (frames included), hashed
    from its pixels where the decoder left them out (``Decoder``'s ``dihedral``); the hashes
    themselves come out the same (PDQ's dihedral pass starts from the same DCT)."""
    image = prepared.image
    if image is None or prepared.pdq is None or prepared.pdq.variants:
        return prepared
    pdq = _hash_pixels(image.image, image.sha256, dihedral=True) or prepared.pdq
    frames = dict(zip(image.frame_numbers, image.frames, strict=True))
    frame_pdqs = tuple(
        (number, _hash_pixels(frames[number], image.sha256, dihedral=True) or frame_pdq)
        for number, frame_pdq in prepared.frame_pdqs
    )
    return replace(prepared, pdq=pdq, frame_pdqs=frame_pdqs)


def _hash_pixels(pixels: PILImage, sha256: str, *, dihedral: bool) -> PdqHash | None:
    try:
        return compute_pdq(pixels, dihedral=dihedral)
    except Exception:
        log.exception("PDQ hashing failed for image %s; recording no hash", sha256)
        return None


def read_payload_bytes(payload: Payload, max_bytes: int, settings: Settings | None = None) -> bytes:
    """The image bytes: from ``image_blobs``, the blob store (``blob_uri``) or the location
    the job was submitted with (``file://`` from ``moderation scan``, an ``image_uri``).

    ``settings`` give the S3 endpoint and credentials (needed for ``s3://`` locations only).
    Raises ``ImageRejected``: ``purged`` (retention deleted the bytes), ``not_found``,
    ``fetch_failed`` (the store kept failing), ``too_large`` or ``missing``."""
    if payload.data is not None:
        return payload.data
    if payload.purged:
        raise ImageRejected("purged", "retention deleted the stored bytes (hashes are kept)")
    location = payload.blob_uri or payload.storage_uri
    if not location:
        raise ImageRejected("missing", "no stored bytes and no location")
    if location.startswith("s3://") and settings is None:
        raise ImageRejected("fetch_failed", f"no S3 settings to read {location}")
    return read_blob(location, settings, max_bytes)  # type: ignore[arg-type]


class _Deferred:
    """What a look-ahead future holds for a redelivered job: decoded only when taken."""


DEFERRED = _Deferred()
_Outcome = Prepared | None | _Deferred


class Decoder:
    """Decodes the images of a batch on a thread pool (PIL releases the GIL while decoding).

    ``prefetch(ids)`` starts loading and decoding the *next* batch in the background; a later
    ``take`` of those ids finds them ready. Prefetching only reads (image bytes are
    content-addressed and never change), so it cannot affect delivery or claiming.

    A job delivered before (``attempts`` > 0 when its payload is read) may be what killed the
    previous worker: the look-ahead does not decode it (its future holds ``DEFERRED``) and so
    nothing forwards it speculatively either (``forward.ForwardAhead``). ``take`` decodes it
    then, after its claim, while no other batch is being committed — a hard crash in a
    decoder or the model takes down only the suspect's own delivery.
    """

    def __init__(
        self,
        load: PayloadLoader,
        *,
        max_bytes: int,
        max_pixels: int,
        working_pixels: int | None = DEFAULT_WORKING_PIXELS,
        threads: int = 2,
        dihedral: bool | Callable[[], bool] = True,
        max_frames: int = DEFAULT_MAX_FRAMES,
        settings: Settings | None = None,
    ) -> None:
        self._load = load
        self._settings = settings  # blob store / image_uri reads (S3 endpoint, credentials)
        self._max_bytes = max_bytes
        self._max_pixels = max_pixels
        self._working_pixels = working_pixels
        self._max_frames = max_frames
        # also hash the 7 rotations/mirrors (flip-robust bank matching) — ~2.5× the CPU of the
        # hash alone; a callable is asked per image (the bank hook: only while a bank has
        # enabled entries to match them against; it hashes the variants it finds missing)
        self._dihedral = dihedral if callable(dihedral) else (lambda: dihedral)
        self._pool = cf.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="decode")
        self._ahead: dict[int, cf.Future[_Outcome]] = {}

    def take(self, job_ids: Sequence[int]) -> dict[int, Prepared]:
        """Prepared images of ``job_ids`` (unknown ids absent), decoding what is not ready."""
        futures = {j: self._ahead.pop(j) for j in job_ids if j in self._ahead}
        missing = [j for j in job_ids if j not in futures]
        futures.update(self._submit(missing, speculative=False))
        out = {}
        deferred = []
        for job_id, future in futures.items():
            prepared = future.result()
            if isinstance(prepared, Prepared):
                out[job_id] = prepared
            elif prepared is DEFERRED:
                deferred.append(job_id)
        for job_id, future in self._submit(deferred, speculative=False).items():
            prepared = future.result()
            if isinstance(prepared, Prepared):
                out[job_id] = prepared
        return out

    def prefetch(self, job_ids: Iterable[int]) -> None:
        """Start preparing ``job_ids`` in the background; older look-ahead not taken is dropped."""
        wanted = [j for j in job_ids if j not in self._ahead]
        for stale in set(self._ahead) - set(job_ids):
            self._ahead.pop(stale).cancel()
        self._ahead.update(self._submit(wanted))

    def pending(self, job_ids: Iterable[int]) -> list[cf.Future[_Outcome]]:
        """The look-ahead futures of ``job_ids`` (those ``prefetch`` started), left in place
        for ``take``: the model's look-ahead (``forward.ForwardAhead``) reads them too."""
        return [self._ahead[j] for j in job_ids if j in self._ahead]

    def close(self) -> None:
        for future in self._ahead.values():
            future.cancel()
        self._ahead.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _submit(
        self, job_ids: Sequence[int], *, speculative: bool = True
    ) -> dict[int, cf.Future[_Outcome]]:
        if not job_ids:
            return {}
        # One DB read for the whole group, then one decode task per image.
        payloads = self._pool.submit(self._load, list(job_ids))
        return {j: self._pool.submit(self._prepare, payloads, j, speculative) for j in job_ids}

    def _prepare(
        self, payloads: cf.Future[dict[int, Payload]], job_id: int, speculative: bool = False
    ) -> _Outcome:
        payload = payloads.result().get(job_id)
        if payload is None:
            return None
        if speculative and payload.attempts > 0:  # a suspect: decoded once it is claimed
            return DEFERRED
        try:
            data = read_payload_bytes(payload, self._max_bytes, self._settings)
            image = decode_image(
                data,
                max_bytes=self._max_bytes,
                max_pixels=self._max_pixels,
                working_pixels=self._working_pixels,
                max_frames=self._max_frames,
            )
        except ImageRejected as exc:
            return Prepared(
                job_id, payload.image_id, payload.sha256, None, exc, attempts=payload.attempts
            )
        except Exception as exc:  # a decoder bug tripped by hostile bytes is still bad input
            rejected = ImageRejected("corrupt", f"decoder error: {type(exc).__name__}: {exc}")
            return Prepared(
                job_id, payload.image_id, payload.sha256, None, rejected, attempts=payload.attempts
            )
        dihedral = self._dihedral()
        pdq = hash_image(image, dihedral=dihedral)
        frame_pdqs = []
        for number, frame in zip(image.frame_numbers, image.frames, strict=True):
            frame_pdq = _hash_pixels(frame, image.sha256, dihedral=dihedral)
            if frame_pdq is not None:
                frame_pdqs.append((number, frame_pdq))
        return Prepared(
            job_id,
            payload.image_id,
            payload.sha256,
            image,
            None,
            pdq,
            tuple(frame_pdqs),
            attempts=payload.attempts,
        )
