"""The model's look-ahead: the next batch's forward runs while this one commits.

On a GPU host the CPU decodes, hashes, claims and writes while the device runs the model.
Decoding already runs one batch ahead (``Decoder.prefetch``); without this module the device
would still sit idle while a batch is decided and committed, its next claim made and its
images collated — about a tenth of the device's time with a fast model.

``ForwardAhead`` owns one "device" thread. Every forward goes through it, so the device runs
one forward at a time. After a batch's own forward, ``start`` queues a speculative forward of
the *next* batch's images (their decode futures, already under way); the next batch's
``score`` then finds its frames' results ready, keyed by ``(sha256, frame number)``, and
forwards only what the look-ahead did not cover. The results are the scorer's own for the same
pixels, so a batch scores the same with or without it (on a GPU, up to the batch-composition
rounding that sorting images by size already implies).

What it costs: a look-ahead image the next batch does not send to the model (its scores were
reused, a bank hit skipped the model, another worker claimed it) was forwarded for nothing — on
a device that would otherwise have idled. A failed look-ahead is logged and forgotten; the
batch's own forward then runs (and raises) as it would have.

A redelivered job (delivered before: it may be what killed the previous worker) is never
forwarded speculatively: the decoder's look-ahead leaves it undecoded (``Decoder``), and a
prepared image whose job had been delivered is skipped here too. A hard crash in the model on
a poison image then takes down only that image's own delivery (scored alone, after its claim),
never the batch being committed meanwhile.

It is used where the model runs off the CPU (``runs_off_cpu``): on a CPU model the speculative
work would compete with the pipeline's own CPU work.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from PIL.Image import Image

from moderation.scoring.base import Scorer, ScoreSet
from moderation.scoring.scorers import score_keeping_vectors, scorer_embedder

from .decode import Prepared

__all__ = ["Frame", "ForwardAhead", "runs_off_cpu"]

log = logging.getLogger(__name__)

Frame = tuple[str, int, Image]  # (image sha256, frame number, pixels)
_Key = tuple[str, int]
_Result = tuple[ScoreSet, np.ndarray | None]


def runs_off_cpu(scorer: Scorer) -> bool:
    """Whether the scorer's model runs on a device (a GPU, or the fake backend's simulated
    device time), so the CPU is free while it runs."""
    embedder = scorer_embedder(scorer)
    if embedder is None:
        return False
    if float(getattr(embedder, "device_ms_per_image", 0) or 0) > 0:
        return True
    return not str(embedder.info.device).startswith("cpu")


class ForwardAhead:
    """One device thread; forwards of this batch and a look-ahead forward of the next."""

    def __init__(self, scorer: Scorer, *, enabled: bool = True) -> None:
        self._scorer = scorer
        self.enabled = enabled
        self._device = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="device")
        self._ahead: cf.Future[dict[_Key, _Result]] | None = None

    def score(self, frames: Sequence[Frame]) -> tuple[list[ScoreSet], np.ndarray | None]:
        """``score_keeping_vectors`` of the frames' pixels, from the look-ahead where it
        covered them; one forward (on the device thread) for the rest."""
        ready = self._take_ahead()
        keys = [(sha, number) for sha, number, _ in frames]
        missing = [i for i, key in enumerate(keys) if key not in ready]
        if len(missing) == len(keys):
            return self._run(score_keeping_vectors, self._scorer, [f[2] for f in frames])
        if missing:
            sets, vectors = self._run(
                score_keeping_vectors, self._scorer, [frames[i][2] for i in missing]
            )
            ready = {**ready, **_by_key([keys[i] for i in missing], sets, vectors)}
        rows = [ready[key] for key in keys]
        has_vectors = all(vector is not None for _, vector in rows)
        stacked = np.stack([vector for _, vector in rows]) if has_vectors and rows else None
        return [score_set for score_set, _ in rows], stacked

    def start(self, upcoming: Iterable[cf.Future[Any]]) -> None:
        """Queue a forward of the images the futures will hold (the next batch's decode);
        replaces any look-ahead not taken."""
        self._ahead = None
        futures = list(upcoming)
        if self.enabled and futures:
            self._ahead = self._device.submit(self._forward_ahead, futures)

    def close(self) -> None:
        self._ahead = None
        self._device.shutdown(wait=True, cancel_futures=True)

    def _run(self, fn: Any, *args: Any) -> Any:
        if not self.enabled:  # a CPU model runs in the caller's thread, as before
            return fn(*args)
        return self._device.submit(fn, *args).result()

    def _take_ahead(self) -> dict[_Key, _Result]:
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return {}
        try:
            return ahead.result()
        except Exception:  # the batch's own forward runs instead (and raises, if it must)
            log.warning("look-ahead forward failed; forwarding the batch itself", exc_info=True)
            return {}

    def _forward_ahead(self, futures: list[cf.Future[Any]]) -> dict[_Key, _Result]:
        frames: dict[_Key, Image] = {}
        for future in futures:
            try:
                prepared = future.result()
            except (cf.CancelledError, Exception):  # a decode error is the batch's to report
                continue
            # not decoded (unknown, deferred) or bad input; a redelivered job is a suspect
            if not isinstance(prepared, Prepared) or prepared.image is None or prepared.attempts:
                continue
            for number, pixels in prepared.image.all_frames():
                frames.setdefault((prepared.sha256, number), pixels)
        if not frames:
            return {}
        keys = list(frames)
        sets, vectors = score_keeping_vectors(self._scorer, [frames[k] for k in keys])
        return _by_key(keys, sets, vectors)


def _by_key(
    keys: Sequence[_Key], sets: Sequence[ScoreSet], vectors: np.ndarray | None
) -> dict[_Key, _Result]:
    if len(sets) != len(keys):
        raise RuntimeError(f"scorer returned {len(sets)} results for {len(keys)} images")
    return {
        key: (score_set, None if vectors is None else vectors[i])
        for i, (key, score_set) in enumerate(zip(keys, sets, strict=True))
    }
