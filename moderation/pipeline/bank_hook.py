"""The hash-bank check before scoring: one ``BankMatcher`` per process, refreshed incrementally,
turning bank verdicts into ``PreScore``s the pipeline applies."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from sqlalchemy.orm import Session, sessionmaker

from moderation.config import Settings
from moderation.db.repositories.banks import bank_version
from moderation.domain import BankKind, ScoreSource
from moderation.hashbank.banks import (
    BankMatch,
    BankMatcher,
    RefreshResult,
    match_batch_before_scoring,
)
from moderation.hashbank.hashing import PdqHash
from moderation.scoring.base import CategoryScore

from .decode import Prepared, with_variants
from .hooks import PreScore

__all__ = ["BankPreScore", "pre_score_for"]

log = logging.getLogger(__name__)


def pre_score_for(match: BankMatch) -> PreScore:
    """What a bank verdict does to a job.

    A hit that skips the model and names a category (a confirmed violation in ``set_tier``
    mode) leaves one ``hash_match`` score — the similarity 1 − d/256 — so the job still has a
    score row saying where its tier came from; a hit the model still runs for adds no score
    (the model's row of that category is the score) but keeps its tier floor. Every hit records
    its entry and distance on the decision.
    """
    scores = {}
    if match.skip_model and match.category is not None:
        scores[match.category] = CategoryScore(
            match.category,
            match.similarity,
            ScoreSource.HASH_MATCH,
            details={
                "bank": match.bank.value,
                "entry_id": match.entry_id,
                "distance": match.distance,
                "variant": match.variant,
                **({"frame": match.frame} if match.frame is not None else {}),
            },
        )
    return PreScore(
        scores=scores,
        skip_model=match.skip_model,
        tier_floor=match.tier,
        category=match.category,
        bank_entry_id=match.entry_id,
        distance=match.distance,
        frame=match.frame,
    )


def _stronger(a: BankMatch, b: BankMatch | None) -> bool:
    """Of two frames' verdicts: a violation beats a benign hit, then the nearer one."""
    if b is None:
        return True
    rank_a = a.bank is BankKind.CONFIRMED_VIOLATION
    rank_b = b.bank is BankKind.CONFIRMED_VIOLATION
    if rank_a != rank_b:
        return rank_a
    return a.distance < b.distance


class BankPreScore:
    """The ``PreScoreHook`` of the hash banks. Before each micro-batch it refreshes the matcher
    when ``bank_refresh_s`` has passed (new rows by id, the current disabled set), then looks
    every image's PDQ hash — computed on the decode threads — up in one index pass."""

    def __init__(
        self,
        matcher: BankMatcher,
        settings: Settings,
        sessions: Callable[[], Session],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.matcher = matcher
        self.settings = settings
        self._sessions = sessions
        self.clock = clock  # monotonic seconds; tests step it
        self.last_refresh: RefreshResult | None = None
        self._loaded = False
        self._version: tuple[object, object] | None = None  # bank_version at the last refresh
        # whether matching would use the rotated/mirrored hashes now: flips on and an enabled
        # entry loaded (the decoder asks before hashing each image, ``wants_variants``)
        self._variants = False

    @classmethod
    def from_settings(cls, settings: Settings, sessions: sessionmaker[Session]) -> BankPreScore:
        return cls(BankMatcher.from_settings(settings), settings, sessions)

    def wants_variants(self) -> bool:
        """Whether the decoder should hash images' rotations/mirrors too: only while a bank
        holds an enabled entry to match them against (hashing them costs ~2.5× the hash)."""
        return self._variants

    def __call__(self, prepared: Sequence[Prepared]) -> list[PreScore | None]:
        self._refresh()
        if self._variants:  # images hashed while the banks were empty: their variants now
            prepared = [with_variants(p) for p in prepared]
        # every hashed frame of an animated image is looked up (one index pass for the batch)
        owners: list[tuple[int, int | None]] = []
        pdqs: list[PdqHash | None] = []
        for i, p in enumerate(prepared):
            frames = p.all_pdqs() if p.frame_pdqs else [(None, p.pdq)]
            for number, pdq in frames:
                owners.append((i, number))
                pdqs.append(pdq)
        verdicts = match_batch_before_scoring(pdqs, self.matcher, self.settings)
        best: list[BankMatch | None] = [None] * len(prepared)
        for (i, number), verdict in zip(owners, verdicts, strict=True):
            if verdict is None:
                continue
            verdict = replace(verdict, frame=number)
            if best[i] is None or _stronger(verdict, best[i]):
                best[i] = verdict
        return [None if v is None else pre_score_for(v) for v in best]

    def _refresh(self) -> None:
        try:
            interval = self.settings.bank_refresh_s
            if self.settings.bank_watch:
                # instant propagation: one indexed max(id), max(changed_at) per batch — any
                # add, disable or re-enable committed before this batch is loaded for it
                with self._sessions() as session:
                    version = bank_version(session)
                if version != self._version:
                    interval = 0.0
            else:
                version = None
            result = self.matcher.refresh_if_due(self._sessions, interval, now=self.clock())
            if result is not None:
                self._version = version
        except Exception:
            # Never loaded: the batch fails and is delivered again — scoring without the bank
            # would let a known violation through on the model's word alone. Loaded once: a
            # database blip leaves the index one refresh behind, which the next refresh fixes.
            if not self._loaded:
                raise
            log.exception("hash-bank refresh failed; matching against the last loaded index")
            return
        if result is not None:
            self._loaded = True
            self.last_refresh = result
            self._variants = self.settings.bank_match_flips and self.matcher.enabled_count > 0
            if result.added or result.enable_changes or result.full_reload:
                log.info(
                    "hash banks refreshed: +%d entries, %d enable changes, full reload %s, "
                    "%d entries",
                    result.added,
                    result.enable_changes,
                    result.full_reload,
                    result.size,
                )
