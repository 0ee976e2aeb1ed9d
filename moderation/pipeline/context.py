"""Everything one pipeline process holds for its life: scorer, sessions, decoder, hooks."""

from __future__ import annotations

import ctypes
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker
from threadpoolctl import threadpool_limits

from moderation.config import Settings
from moderation.db.repositories.images import load_payloads
from moderation.db.retry import in_transaction
from moderation.db.types import utcnow
from moderation.domain import RiskTier
from moderation.scoring.base import Scorer
from moderation.scoring.scorers import scorer_embedder
from moderation.scoring.texts import TagVocabulary, TextUnsupported
from moderation.thresholds.presets import DEFAULT_TAG_LABELS
from moderation.thresholds.scales import check_scales

from .decode import Decoder
from .forward import ForwardAhead, runs_off_cpu
from .hooks import PipelineHooks, build_hooks

__all__ = [
    "PipelineContext",
    "build_context",
    "limit_blas_threads",
    "return_freed_images_to_the_os",
]


@dataclass
class PipelineContext:
    scorer: Scorer
    sessions: sessionmaker[Session]
    decoder: Decoder
    worker: str  # recorded on each claimed job
    max_attempts: int = 3
    reuse_scores: bool = True
    policy: str = "content_safety"
    tag_labels: tuple[str, ...] = DEFAULT_TAG_LABELS  # album-tagging vocabulary
    thresholds_file: Path | None = None  # YAML overrides, below DB versions (resolve_thresholds)
    action_rules_file: Path | None = None  # action rules below a DB version (actions.resolver)
    callback_min_tier: RiskTier = RiskTier.HIGH
    hooks: PipelineHooks = field(default_factory=PipelineHooks)
    # called after each commit with the ids whose callbacks are due (the worker publishes them)
    on_callbacks_due: Callable[[Sequence[int]], None] | None = None
    clock: Callable[[], dt.datetime] = utcnow
    db_give_up_after_s: float = 60.0

    # the next batch's forward runs while this one commits (where the model is off the CPU)
    forward_ahead: bool = False

    _tags: TagVocabulary | None = field(default=None, init=False, repr=False)
    _forward: ForwardAhead | None = field(default=None, init=False, repr=False)

    def close(self) -> None:
        self.decoder.close()
        if self._forward is not None:
            self._forward.close()
            self._forward = None

    def forward(self) -> ForwardAhead:
        """The model's forwards, with the look-ahead when ``forward_ahead`` (built once)."""
        if self._forward is None:
            self._forward = ForwardAhead(self.scorer, enabled=self.forward_ahead)
        return self._forward

    def tag_vocabulary(self) -> TagVocabulary:
        """The tag labels embedded once, on first use (``TextUnsupported`` without an
        embedding backend)."""
        if self._tags is None:
            embedder = scorer_embedder(self.scorer)
            if embedder is None:
                raise TextUnsupported("the scorer has no embedding backend to embed tag labels")
            self._tags = TagVocabulary(embedder, self.tag_labels)
        return self._tags


def limit_blas_threads() -> None:
    """One thread for numpy's BLAS (OpenBLAS) in a pipeline process.

    The pipeline's own BLAS work is small (one [images × dim] · [dim × phrasings] product per
    batch) while decode threads and the model's own pool (torch's OpenMP, ONNX Runtime — not
    touched here) keep the cores busy; OpenBLAS's extra threads then only spin-wait. Measured
    with the fake scorer on 640×480 JPEGs: 14.6 → 9.4 ms of CPU per job, same wall time.
    """
    threadpool_limits(limits=1, user_api="blas")


# glibc's M_MMAP_THRESHOLD (mallopt's parameter number)
_M_MMAP_THRESHOLD = -3


def return_freed_images_to_the_os(threshold: int = 1 << 20) -> bool:
    """Make glibc give large freed blocks back to the OS at once (True where it could).

    Pillow allocates image pixels in blocks of up to 16 MiB. glibc serves blocks that size from
    ``mmap`` only until the first is freed: its threshold then adapts upwards (to 32 MiB), later
    blocks come from per-thread heaps, and freed memory stays in each decode thread's heap.
    Five 49 MP RGBA PNGs on 4 decode threads left 1.5 GB resident that way; with a fixed
    threshold (which turns the adaptation off) the same burst peaks at one image's worth
    (``benchmarks/bench_decode_memory.py --burst``).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to set
        return False


def build_context(
    settings: Settings,
    scorer: Scorer,
    sessions: sessionmaker[Session],
    *,
    worker: str,
    decode_threads: int = 2,
    on_callbacks_due: Callable[[Sequence[int]], None] | None = None,
) -> PipelineContext:
    """The context the worker and ``moderation scan`` both run the pipeline with (building it
    also limits this process's BLAS threads, ``limit_blas_threads``, and sets the allocator to
    return decoded images' memory, ``return_freed_images_to_the_os``)."""
    try:
        min_tier = RiskTier(settings.callback_min_tier)
    except ValueError:
        raise ValueError(
            f"MODERATION_CALLBACK_MIN_TIER={settings.callback_min_tier!r} is not one of "
            f"{[t.value for t in RiskTier]}"
        ) from None

    def load(job_ids: Sequence[int]) -> dict:  # type: ignore[type-arg]
        return in_transaction(sessions, lambda s: load_payloads(s, job_ids))

    check_scales(scorer.scales)  # an unregistered scale fails at start-up, never per decision
    limit_blas_threads()
    return_freed_images_to_the_os()
    hooks = build_hooks(settings, sessions)
    # an image's rotated/mirrored hashes serve bank matching only: hashed when a bank hook
    # can match them (it says when), never without one
    wants_variants = getattr(hooks.pre_score, "wants_variants", None)
    decoder = Decoder(
        load,
        max_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_image_pixels,
        working_pixels=settings.decode_pixels,
        threads=decode_threads,
        dihedral=(
            wants_variants if settings.bank_match_flips and wants_variants is not None else False
        ),
        max_frames=settings.max_frames,
        settings=settings,
    )
    return PipelineContext(
        scorer=scorer,
        sessions=sessions,
        decoder=decoder,
        worker=worker,
        max_attempts=settings.max_attempts,
        reuse_scores=settings.reuse_scores,
        policy=settings.policy,
        tag_labels=tuple(settings.tag_labels),
        thresholds_file=settings.thresholds_file,
        action_rules_file=settings.action_rules_file,
        callback_min_tier=min_tier,
        hooks=hooks,
        on_callbacks_due=on_callbacks_due,
        forward_ahead=(
            runs_off_cpu(scorer)
            if settings.forward_ahead == "auto"
            else settings.forward_ahead == "on"
        ),
    )
