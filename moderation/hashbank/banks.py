"""Hash banks at match time: an in-memory PDQ index kept in step with ``bank_entries``, the
pre-scoring check, and banking an image a reviewer confirmed as a violation.

A worker builds one ``BankMatcher`` per process, calls ``refresh_if_due`` before each batch
(it pulls only rows with ``id`` above the last one seen, plus the current set of disabled ids —
never a rebuild per job), and ``match_before_scoring`` per image before the model runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sqlalchemy.orm import Session

from moderation.config import Settings
from moderation.db.repositories import banks as repo
from moderation.domain import BankKind, RiskTier
from moderation.hashbank.hashing import (
    CROP_KEEP,
    HASH_BITS,
    PDQ_MIN_QUALITY,
    PdqHash,
    compute_crop_hashes,
    compute_pdq,
    hashes_to_words,
    split_hashes,
)
from moderation.hashbank.index import HashIndex
from moderation.images import ImageRejected, decode_image

__all__ = [
    "BankAddResult",
    "BankHit",
    "BankMatch",
    "BankMatcher",
    "RefreshResult",
    "add_confirmed_violation",
    "bank_hash",
    "match_batch_before_scoring",
    "match_before_scoring",
]

_PAGE = 10_000
_Kind = tuple[BankKind, str | None]  # (bank, category) of an entry


@dataclass(frozen=True)
class BankHit:
    """One bank entry near a query hash; ``variant`` names which rotation/mirror of the query
    matched (``original`` unless flips are matched)."""

    entry_id: int
    bank: BankKind
    category: str | None
    distance: int
    variant: str


@dataclass(frozen=True)
class BankMatch:
    """What a bank hit means for a job, and why: the entry and distance go into the decision
    (``decisions.matched_bank_entry_id`` / ``match_distance``).

    ``tier`` is the tier the hit imposes — the final tier when ``skip_model``, else a floor
    under the model's tier — or None when the hit is only recorded (benign ``record`` mode)."""

    bank: BankKind
    category: str | None
    entry_id: int
    distance: int
    variant: str
    tier: RiskTier | None
    skip_model: bool
    frame: int | None = None  # the animation frame that matched (None: a still image)

    @property
    def similarity(self) -> float:
        """1 − distance/256, in [0, 1]: the value stored as a ``hash_match`` score."""
        return 1.0 - self.distance / HASH_BITS


@dataclass(frozen=True)
class RefreshResult:
    added: int
    enable_changes: int
    full_reload: bool
    size: int


class BankMatcher:
    """Every bank entry's hash in one exact multi-index (``HashIndex``), with each entry's bank
    and category; enabled state follows the database on refresh.

    With ``crops`` the hashes of an entry's trimmed windows (``bank_entries.crop_hashes``) are
    indexed too, as extra rows of the same entry: index key = entry id × ``SLOTS`` + slot (slot
    0 the entry's own hash, 1… its crops), so one sorted key space still serves incremental
    loads and disabling, and a hit on any slot is a hit on the entry."""

    SLOTS = 32  # hashes per entry the key space has room for: 1 + up to 31 crop windows

    def __init__(self, threshold: int = 31, *, crops: bool = False) -> None:
        self.threshold = threshold
        self.crops = crops
        self._index = HashIndex(threshold)
        self._meta: dict[int, _Kind] = {}
        self._kinds: dict[_Kind, _Kind] = {}
        self._lock = threading.Lock()  # one refresh at a time; searches never block
        self._refreshed_at: float | None = None
        self._disabled: set[int] = set()  # entry ids, as of the last refresh

    @classmethod
    def from_settings(cls, settings: Settings) -> BankMatcher:
        return cls(settings.bank_match_threshold, crops=settings.bank_crop_grid > 0)

    def __len__(self) -> int:
        """Entries loaded (enabled or not)."""
        return len(self._meta)

    @property
    def hash_count(self) -> int:
        """Hashes indexed: one per entry, plus its crop windows when ``crops``."""
        return len(self._index)

    @property
    def enabled_count(self) -> int:
        """Enabled hashes (equal to enabled entries unless crop windows are indexed)."""
        return self._index.enabled_count

    def refresh(self, session: Session) -> RefreshResult:
        """Pull entries added since the last refresh and the current disabled set. If rows
        appeared below the last id seen (a concurrent insert that committed late) or vanished
        (deleted by hand), reload everything instead — rare, and still exact."""
        with self._lock:
            last_key = self._index.last_key
            last = None if last_key is None else last_key // self.SLOTS
            full = last is not None and repo.count_up_to(session, last) != len(self._meta)
            if full:
                # build aside and swap, so searches meanwhile use the old, complete index
                index, meta, loaded_disabled = HashIndex(self.threshold), {}, set()
                added = self._load_after(session, 0, index, meta, loaded_disabled)
                self._index, self._meta, self._disabled = index, meta, loaded_disabled
            else:
                added = self._load_after(
                    session, last or 0, self._index, self._meta, self._disabled
                )
            disabled = np.asarray(repo.disabled_ids(session), np.int64)
            slots = np.arange(self.SLOTS if self.crops else 1)
            # a disabled entry masks every hash it owns (keys past the loaded ones are inert)
            self._index.set_disabled((disabled[:, None] * self.SLOTS + slots).ravel())
            now_disabled = {d for d in disabled.tolist() if d in self._meta}
            changes = len(now_disabled ^ self._disabled)  # entries, however many hashes each
            self._disabled = now_disabled
            return RefreshResult(added, changes, full, len(self._meta))

    def _load_after(
        self,
        session: Session,
        after_id: int,
        index: HashIndex,
        meta: dict[int, _Kind],
        disabled: set[int],
    ) -> int:
        """Read every entry past ``after_id`` page by page, then add them to ``index`` in one
        call (one table build, not one per page); ids loaded disabled go into ``disabled``."""
        keys: list[int] = []
        hexes: list[str] = []
        enabled: list[bool] = []
        count = 0
        while True:
            rows = repo.load_since(session, after_id, limit=_PAGE, crops=self.crops)
            for r in rows:
                # the few distinct (bank, category) tuples are shared, not one per entry
                meta[r.id] = self._kinds.setdefault((r.bank, r.category), (r.bank, r.category))
                if not r.enabled:
                    disabled.add(r.id)
                entry_hashes = [r.pdq_hash, *split_hashes(r.crop_hashes)][: self.SLOTS]
                for slot, hex_hash in enumerate(entry_hashes):
                    keys.append(r.id * self.SLOTS + slot)
                    hexes.append(hex_hash)
                    enabled.append(r.enabled)
            count += len(rows)
            if len(rows) < _PAGE:
                break
            after_id = rows[-1].id
        # metadata went in first: a concurrent search may find the new keys as soon as they exist
        index.add(np.asarray(keys, np.int64), hashes_to_words(hexes), np.asarray(enabled, np.bool_))
        return count

    def refresh_if_due(
        self, session_factory: Callable[[], Session], interval_s: float, now: float | None = None
    ) -> RefreshResult | None:
        """``refresh`` when ``interval_s`` (monotonic seconds) has passed since the last one."""
        now = time.monotonic() if now is None else now
        if self._refreshed_at is not None and now - self._refreshed_at < interval_s:
            return None
        with session_factory() as session:
            result = self.refresh(session)
        self._refreshed_at = now
        return result

    def search(self, pdq: PdqHash, *, flips: bool = True) -> list[BankHit]:
        """Enabled entries within the threshold of the hash (and of its rotations/mirrors when
        ``flips`` and the hash carries them), nearest first; one hit per entry."""
        return self.search_batch([pdq], flips=flips)[0]

    def search_batch(self, pdqs: Sequence[PdqHash], *, flips: bool = True) -> list[list[BankHit]]:
        """``search`` for many images in one vectorised index pass (a worker's micro-batch)."""
        per_image = [pdq.queries(with_variants=flips) for pdq in pdqs]
        flat = [pair for queries in per_image for pair in queries]
        if not flat:
            return []
        words = hashes_to_words([hex_ for _, hex_ in flat])
        if len(flat) == 1:
            results = [self._index.search(words[0])]
        else:
            results = self._index.search_many(words)
        out, start = [], 0
        for queries in per_image:
            out.append(self._hits(queries, results[start : start + len(queries)]))
            start += len(queries)
        return out

    def nearest(self, pdq: PdqHash, k: int = 5, *, flips: bool = True) -> list[BankHit]:
        """The ``k`` enabled entries nearest at any distance (a linear scan: explains matches
        and near misses; not for the hot path)."""
        queries = pdq.queries(with_variants=flips)
        words = hashes_to_words([hex_ for _, hex_ in queries])
        # an entry may own several of the nearest hashes (its crop windows): ask for enough
        per_entry = self.SLOTS if self.crops else 1
        return self._hits(queries, [self._index.nearest(w, k * per_entry) for w in words])[:k]

    def _hits(
        self, queries: list[tuple[str, str]], results: list[tuple[np.ndarray, np.ndarray]]
    ) -> list[BankHit]:
        best: dict[int, BankHit] = {}
        for (variant, _), (keys, distances) in zip(queries, results, strict=True):
            for key, distance in zip(keys.tolist(), distances.tolist(), strict=True):
                entry, slot = divmod(key, self.SLOTS)
                if entry not in best or distance < best[entry].distance:
                    bank, category = self._meta[entry]
                    best[entry] = BankHit(entry, bank, category, distance, _name(variant, slot))
        return sorted(best.values(), key=lambda h: (h.distance, h.entry_id))


def _name(variant: str, slot: int) -> str:
    """Which query variant matched which hash of the entry: ``flip_h``, ``crop3`` (the entry's
    third crop window), ``flip_h+crop3``."""
    if slot == 0:
        return variant
    return f"crop{slot}" if variant == "original" else f"{variant}+crop{slot}"


def match_before_scoring(
    pdq: PdqHash | None, matcher: BankMatcher, settings: Settings
) -> BankMatch | None:
    """The bank verdict for an image before the model runs, or None (no usable hash, no hit,
    or the banks are off). A violation hit beats a benign one whatever the distances —
    recall first — and the nearest violation entry is the one recorded."""
    return match_batch_before_scoring([pdq], matcher, settings)[0]


def match_batch_before_scoring(
    pdqs: Sequence[PdqHash | None], matcher: BankMatcher, settings: Settings
) -> list[BankMatch | None]:
    """``match_before_scoring`` for a micro-batch, with one index pass for all of it."""
    # hashes of featureless images (low PDQ quality) collide with each other: never matched
    usable = {
        i: p for i, p in enumerate(pdqs) if p is not None and p.quality >= settings.bank_min_quality
    }
    hits = matcher.search_batch(list(usable.values()), flips=settings.bank_match_flips)
    verdicts: list[BankMatch | None] = [None] * len(pdqs)
    for i, image_hits in zip(usable, hits, strict=True):
        verdicts[i] = _verdict(image_hits, settings)
    return verdicts


def _verdict(hits: list[BankHit], settings: Settings) -> BankMatch | None:
    violation_mode, benign_mode = settings.bank_violation_mode, settings.bank_benign_mode
    if violation_mode != "off":
        for hit in hits:
            if hit.bank is BankKind.CONFIRMED_VIOLATION:
                tier = RiskTier(settings.bank_violation_tier)
                return _match(hit, tier, skip_model=violation_mode == "set_tier")
    if benign_mode != "off":
        for hit in hits:
            if hit.bank is BankKind.BENIGN:
                skip = benign_mode == "skip_model"
                return _match(hit, RiskTier.CLEAR if skip else None, skip_model=skip)
    return None


def _match(hit: BankHit, tier: RiskTier | None, *, skip_model: bool) -> BankMatch:
    return BankMatch(
        bank=hit.bank,
        category=hit.category,
        entry_id=hit.entry_id,
        distance=hit.distance,
        variant=hit.variant,
        tier=tier,
        skip_model=skip_model,
    )


@dataclass(frozen=True)
class BankAddResult:
    """Outcome of banking one hash: the entry (new or the existing duplicate) or why not."""

    outcome: Literal["added", "duplicate", "low_quality", "no_hash"]
    entry: repo.BankEntryRecord | None = None
    quality: int | None = None


def bank_hash(
    session: Session,
    *,
    bank: BankKind,
    pdq: PdqHash,
    added_by: str,
    category: str | None = None,
    reason: str | None = None,
    image_id: int | None = None,
    source_job_id: int | None = None,
    min_quality: int = PDQ_MIN_QUALITY,
    crop_hashes: Sequence[str] = (),
) -> BankAddResult:
    """Add ``pdq`` to a bank unless it is too featureless to match on or an enabled entry with
    the same hash is already in that bank and category (then that entry is returned).
    ``crop_hashes`` (``compute_crop_hashes``) are stored with the entry and matched as it."""
    if pdq.quality < min_quality:
        return BankAddResult("low_quality", quality=pdq.quality)
    existing = repo.find_duplicate(session, bank, category, pdq.hex)
    if existing is not None:
        return BankAddResult("duplicate", existing, pdq.quality)
    entry = repo.add_entry(
        session,
        bank=bank,
        pdq_hash=pdq.hex,
        pdq_quality=pdq.quality,
        added_by=added_by,
        category=category,
        reason=reason,
        image_id=image_id,
        source_job_id=source_job_id,
        crop_hashes=crop_hashes,
    )
    return BankAddResult("added", entry, pdq.quality)


def add_confirmed_violation(
    session: Session,
    *,
    job_id: int,
    category: str,
    reviewer: str,
    reason: str | None = None,
    min_quality: int = PDQ_MIN_QUALITY,
    crop_grid: int = 0,
    crop_keep: float = CROP_KEEP,
) -> BankAddResult:
    """Bank the image of ``job_id`` as a confirmed ``category`` violation (the review loop
    calls this when a reviewer confirms one). Uses the hash stored at intake; an image without
    one is hashed from its stored bytes, if kept (and the hash saved on the image). With
    ``crop_grid`` and ``crop_keep`` (``settings.bank_crop_grid`` / ``bank_crop_keep``) the
    crop-window hashes are computed from the stored bytes too — an image whose bytes were not
    kept is banked without them.
    Raises ``repo.UnknownJob``."""
    image = repo.job_image(session, job_id)
    pdq, crops = _image_pdq(session, image, (crop_grid, crop_keep), min_quality)
    if pdq is None:
        return BankAddResult("no_hash")
    return bank_hash(
        session,
        bank=BankKind.CONFIRMED_VIOLATION,
        pdq=pdq,
        added_by=reviewer,
        category=category,
        reason=reason or f"confirmed by {reviewer} on job {job_id}",
        image_id=image.image_id,
        source_job_id=job_id,
        min_quality=min_quality,
        crop_hashes=crops,
    )


def _image_pdq(
    session: Session, image: repo.JobImage, crop: tuple[int, float], min_quality: int
) -> tuple[PdqHash | None, tuple[str, ...]]:
    crop_grid, crop_keep = crop
    stored = None
    if image.pdq_hash is not None:
        stored = PdqHash.from_hex(image.pdq_hash, image.pdq_quality or 0)
        if crop_grid <= 0:
            return stored, ()
    data = repo.image_bytes(session, image.image_id)
    if data is None:
        return stored, ()
    try:
        decoded = decode_image(data, max_frames=1).image
    except ImageRejected:
        return stored, ()
    crops = compute_crop_hashes(decoded, crop_grid, keep=crop_keep, min_quality=min_quality)
    if stored is not None:
        return stored, crops
    pdq = compute_pdq(decoded)
    repo.set_image_hash(session, image.image_id, pdq.hex, pdq.quality)
    return pdq, crops
