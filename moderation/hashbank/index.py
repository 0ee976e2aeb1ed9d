"""Exact radius search over 256-bit hashes by multi-index hashing, with an incremental tail.

Multi-index hashing (Norouzi, Punjani & Fleet, "Fast Search in Hamming Space with Multi-Index
Hashing", CVPR 2012): split each hash into 16 substrings of 16 bits and keep one table per
substring. By pigeonhole, two hashes within distance ``radius`` agree to within
``radius // 16`` bits on at least one substring (were every substring ≥ r + 1 bits apart, the
total would be ≥ 16·(r + 1) > radius). So probing each table at the query's substring and every
value within ``r`` bits of it finds every true neighbour — the search is *exact*, not
approximate; candidates are then verified by full distance. For PDQ's threshold 31, r = 1:
16 tables × 17 probes. Each table is a CSR layout (rows sorted by substring value plus
65 537 offsets), so a probe is two array reads.

New rows go to a tail that is scanned linearly and folded into the tables once it outgrows a
small fraction of them, so adding rows never rebuilds per query. Every mutation builds a new
immutable state and swaps it in, so a search never sees a half-updated index. Pure: numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

__all__ = ["CHUNKS", "MAX_RADIUS", "HashIndex", "brute_force_search", "scan_distances"]

CHUNKS = 16  # substrings per 256-bit hash
_VALUES = 1 << (256 // CHUNKS)  # 65 536 values of a 16-bit substring
MAX_RADIUS = 63  # beyond this the probe count (Σ C(16, ≤ r)) makes a linear scan competitive

Words = npt.NDArray[np.uint64]  # hashes: (n, 4) uint64, one 256-bit hash per row
Columns = npt.NDArray[np.uint64]  # the same hashes column-major, (4, n): fast linear scans
Keys = npt.NDArray[np.int64]
Distances = npt.NDArray[np.int32]
Hits = list[tuple[Keys, Distances]]  # per query: keys and distances, nearest first


def scan_distances(columns: Columns, query: Words) -> Distances:
    """Distance (0–256) from one hash (4 words) to every hash of a column-major (4, n) bank:
    XOR and popcount one word-column at a time (contiguous, vectorised), summed."""
    total = np.bitwise_count(columns[0] ^ query[0]).astype(np.int32)
    for word in range(1, 4):
        total += np.bitwise_count(columns[word] ^ query[word])
    return total


def _sorted(keys: Keys, distances: Distances) -> tuple[Keys, Distances]:
    order = np.lexsort((keys, distances))  # nearest first, ties by key: deterministic
    return keys[order], distances[order]


def brute_force_search(
    keys: Keys, columns: Columns, query: Words, radius: int
) -> tuple[Keys, Distances]:
    """Reference linear scan: keys within ``radius`` of ``query``, nearest first."""
    distances = scan_distances(columns, np.asarray(query, np.uint64).reshape(4))
    hit = distances <= radius
    return _sorted(keys[hit], distances[hit])


@dataclass(frozen=True)
class _State:
    keys: Keys  # ascending
    rows: Words  # row-major copy: a candidate's 4 words sit in one cache line
    columns: Columns  # column-major copy: linear scans run over contiguous word columns
    enabled: npt.NDArray[np.bool_]
    indexed: int  # rows [0, indexed) are in the tables; rows [indexed, n) are the tail
    order: npt.NDArray[np.int64]  # (CHUNKS · indexed): per table, rows sorted by substring
    starts: npt.NDArray[np.int64]  # (CHUNKS · 65 537): CSR offsets of each value in its table


def _empty_state() -> _State:
    return _State(
        keys=np.zeros(0, np.int64),
        rows=np.zeros((0, 4), np.uint64),
        columns=np.zeros((4, 0), np.uint64),
        enabled=np.zeros(0, np.bool_),
        indexed=0,
        order=np.zeros(0, np.int64),
        starts=np.zeros(CHUNKS * (_VALUES + 1), np.int64),
    )


def _substrings(rows: Words) -> npt.NDArray[np.uint16]:
    # Any fixed split works as long as rows and queries use the same one.
    return np.ascontiguousarray(rows, dtype=np.uint64).view(np.uint16).reshape(-1, CHUNKS)


def _build_tables(state: _State) -> _State:
    n = len(state.keys)
    chunks = _substrings(state.rows)
    order = np.argsort(chunks, axis=0, kind="stable").T  # radix sort for uint16
    starts = np.zeros((CHUNKS, _VALUES + 1), np.int64)
    for j in range(CHUNKS):
        np.cumsum(np.bincount(chunks[:, j], minlength=_VALUES), out=starts[j, 1:])
    starts += (np.arange(CHUNKS) * n)[:, None]  # offsets into the flattened order array
    return replace(state, indexed=n, order=order.astype(np.int32).ravel(), starts=starts.ravel())


class HashIndex:
    """Exact ``distance <= radius`` search over keyed 256-bit hashes (keys ascending ints,
    e.g. database ids); rows can be disabled and re-enabled without being removed."""

    def __init__(self, radius: int, *, min_tail: int = 256, tail_fraction: float = 1 / 64):
        if not 0 <= radius <= MAX_RADIUS:
            raise ValueError(f"radius must be 0..{MAX_RADIUS}, got {radius}")
        self.radius = radius
        self._min_tail = min_tail
        self._tail_fraction = tail_fraction
        values = np.arange(_VALUES, dtype=np.uint16)
        self._masks = values[np.bitwise_count(values) <= radius // CHUNKS]
        # flat table index of (table j, value v) is j·65 537 + v
        self._table_base = (np.arange(CHUNKS, dtype=np.int64) * (_VALUES + 1))[:, None]
        self._state = _empty_state()

    def __len__(self) -> int:
        return len(self._state.keys)

    @property
    def enabled_count(self) -> int:
        return int(self._state.enabled.sum())

    @property
    def last_key(self) -> int | None:
        keys = self._state.keys
        return int(keys[-1]) if len(keys) else None

    @property
    def tail_size(self) -> int:
        return len(self._state.keys) - self._state.indexed

    def add(self, keys: Keys, words: Words, enabled: npt.NDArray[np.bool_] | None = None) -> None:
        """Append rows; keys must ascend and exceed every key already present."""
        keys = np.asarray(keys, dtype=np.int64)
        words = np.asarray(words, dtype=np.uint64).reshape(-1, 4)
        if len(keys) != len(words):
            raise ValueError(f"{len(keys)} keys but {len(words)} hashes")
        if len(keys) == 0:
            return
        last = self.last_key
        if np.any(np.diff(keys) <= 0) or (last is not None and keys[0] <= last):
            raise ValueError("keys must be strictly ascending and newer than the index's last key")
        flags = np.ones(len(keys), np.bool_) if enabled is None else np.asarray(enabled, np.bool_)
        old = self._state
        state = replace(
            old,
            keys=np.concatenate([old.keys, keys]),
            rows=np.concatenate([old.rows, words]),
            columns=np.ascontiguousarray(np.concatenate([old.columns, words.T], axis=1)),
            enabled=np.concatenate([old.enabled, flags]),
        )
        tail = len(state.keys) - state.indexed
        if tail > max(self._min_tail, int(state.indexed * self._tail_fraction)):
            state = _build_tables(state)
        self._state = state

    def set_disabled(self, disabled_keys: Keys) -> int:
        """Make exactly ``disabled_keys`` disabled (others enabled); returns how many changed."""
        old = self._state
        enabled = ~np.isin(old.keys, np.asarray(disabled_keys, dtype=np.int64))
        changed = int(np.count_nonzero(enabled != old.enabled))
        if changed:
            self._state = replace(old, enabled=enabled)
        return changed

    def search(self, query: Words) -> tuple[Keys, Distances]:
        """Keys of enabled rows within ``radius`` of ``query`` (4 words) and their distances,
        nearest first (ties by key). Exact: equals ``brute_force_search`` on the enabled rows.
        (The one-query path of ``search_many``, with fewer array operations: most lookups are
        misses and return after one vectorised distance check.)"""
        state = self._state
        query = np.asarray(query, np.uint64).reshape(1, 4)
        _, rows = self._candidates(state, query)
        if state.indexed < len(state.keys):
            rows = np.concatenate([rows, np.arange(state.indexed, len(state.keys))])
        distances = np.bitwise_count(state.rows[rows] ^ query).sum(axis=1, dtype=np.int32)
        hit = (distances <= self.radius) & state.enabled[rows]
        if not hit.any():
            return np.zeros(0, np.int64), np.zeros(0, np.int32)
        found, first = np.unique(rows[hit], return_index=True)
        return _sorted(state.keys[found], distances[hit][first])

    def search_many(self, queries: Words) -> Hits:
        """``search`` for each row of an (m, 4) array, in one vectorised pass."""
        state = self._state
        queries = np.asarray(queries, np.uint64).reshape(-1, 4)
        if len(queries) == 0:
            return []
        qids, rows = self._candidates(state, queries)
        tail = np.arange(state.indexed, len(state.keys))
        if len(tail):
            qids = np.concatenate([qids, np.repeat(np.arange(len(queries)), len(tail))])
            rows = np.concatenate([rows, np.tile(tail, len(queries))])
        counts = np.bitwise_count(state.rows[rows] ^ queries[qids])
        distances = counts[:, 0].astype(np.int32)
        for word in range(1, 4):
            distances += counts[:, word]
        hit = np.flatnonzero((distances <= self.radius) & state.enabled[rows])
        qids, rows, distances = qids[hit], rows[hit], distances[hit]
        # One sort for every query: by query, then distance, then key (rows ascend with keys).
        # A true neighbour usually shares several substrings, so repeats of (query, row) are
        # dropped here, on the few hits, rather than de-duplicating every candidate.
        order = np.lexsort((rows, distances, qids))
        qids, rows, distances = qids[order], rows[order], distances[order]
        fresh = np.ones(len(rows), np.bool_)
        fresh[1:] = (rows[1:] != rows[:-1]) | (qids[1:] != qids[:-1])
        qids, keys, distances = qids[fresh], state.keys[rows[fresh]], distances[fresh]
        bounds = np.searchsorted(qids, np.arange(1, len(queries)))
        return list(zip(np.split(keys, bounds), np.split(distances, bounds), strict=True))

    def _candidates(
        self, state: _State, queries: Words
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(query number, row) for every row sharing a substring (within r bits) with a query;
        a row appears once per substring it shares."""
        if state.indexed == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        values = _substrings(queries)[:, :, None] ^ self._masks  # (m, CHUNKS, probes)
        flat = (values + self._table_base).ravel()  # int64: table j's values start at j·65 537
        lo = state.starts[flat]
        lengths = state.starts[flat + 1] - lo
        # Concatenate the ranges order[lo : lo + len] without a Python loop: each range's
        # start repeated over its length, plus a running position within the range (empty
        # ranges repeat zero times).
        ends = np.cumsum(lengths)
        offsets = np.repeat(lo - ends + lengths, lengths) + np.arange(int(ends[-1]))
        rows = state.order[offsets]
        if len(queries) == 1:
            return np.zeros(len(rows), np.int64), rows
        per_query = CHUNKS * len(self._masks)
        qids = np.repeat(
            np.arange(len(queries)), np.add.reduceat(lengths, np.arange(0, len(lengths), per_query))
        )
        return qids, rows

    def nearest(self, query: Words, k: int) -> tuple[Keys, Distances]:
        """The ``k`` enabled rows nearest to ``query`` at any distance (a linear scan; for
        explaining matches and near misses, not for the hot path)."""
        state = self._state
        rows = np.flatnonzero(state.enabled)
        query = np.asarray(query, np.uint64).reshape(4)
        distances = scan_distances(state.columns[:, rows], query)
        if k < len(rows):
            top = np.argpartition(distances, k)[:k]
            rows, distances = rows[top], distances[top]
        return _sorted(state.keys[rows], distances)

    def snapshot(self) -> tuple[Keys, Columns, npt.NDArray[np.bool_]]:
        """Copies of (keys, column-major hashes, enabled) — for brute-force comparisons."""
        state = self._state
        return state.keys.copy(), state.columns.copy(), state.enabled.copy()
