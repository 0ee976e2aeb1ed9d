"""Hash-bank lifecycle benchmark (issue 17): propagation latency of a bank change to a running
matcher, retro-matching of one new entry against N stored image hashes (default 1 M), and the
import rate of a hash list (default 100 k entries), each beside what the code did before.

    .venv/bin/python benchmarks/bench_bank_lifecycle.py [--stored 1000000] [--import-size 100000]
        [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/DB]  # also on Postgres

Stored hashes are random 256-bit hashes plus ``--copies`` near copies (a few bits flipped) of
the entry, each with a scored job and decision, in a throwaway SQLite file (and the Postgres
database given, which must be empty: the benchmark migrates it and leaves its rows). "Before"
numbers: propagation waited for the periodic refresh (``bank_refresh_s``, 30 s by default);
retro-matching and import did not exist.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import insert, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moderation.config import Settings  # noqa: E402
from moderation.db import make_engine, make_sessionmaker  # noqa: E402
from moderation.db.migrate import upgrade  # noqa: E402
from moderation.db.models import Decision, Image, Job  # noqa: E402
from moderation.db.repositories.banks import bank_version  # noqa: E402
from moderation.domain import BankKind, JobStatus, RiskTier  # noqa: E402
from moderation.hashbank.banks import BankMatcher, bank_hash  # noqa: E402
from moderation.hashbank.hashing import PdqHash, hashes_to_words  # noqa: E402
from moderation.hashbank.retro import EntryHashes, match_stored  # noqa: E402
from moderation.services import banks as bank_service  # noqa: E402
from moderation.services import retro  # noqa: E402


def _hexes(rng: np.random.Generator, n: int) -> list[str]:
    raw = rng.integers(0, 256, (n, 32), dtype=np.uint8).tobytes().hex()
    return [raw[i * 64 : (i + 1) * 64] for i in range(n)]


def _near(hex_hash: str, bits: int, rng: np.random.Generator) -> str:
    value = int(hex_hash, 16)
    for bit in rng.choice(256, bits, replace=False).tolist():
        value ^= 1 << bit
    return f"{value:064x}"


def _fill(url: str, stored: list[str], copies: set[int]) -> None:
    engine = make_engine(url)
    now = dt.datetime.now(dt.UTC)
    sessions = make_sessionmaker(engine)
    page = 50_000
    with sessions.begin() as s:
        for start in range(0, len(stored), page):
            s.execute(
                insert(Image),
                [{"sha256": f"{i:064x}", "byte_size": 1, "pdq_hash": h, "pdq_quality": 100,
                  "created_at": now}
                 for i, h in enumerate(stored[start : start + page], start=start)],
            )  # fmt: skip
        ids = dict(s.execute(text("SELECT sha256, id FROM images")).all())
        for i in sorted(copies):
            image_id = ids[f"{i:064x}"]
            job = Job(image_id=image_id, status=JobStatus.SCORED, source="bench")
            s.add(job)
            s.flush()
            s.add(Decision(job_id=job.id, tier=RiskTier.CLEAR, action="allow", policy="bench",
                           threshold_versions={}))  # fmt: skip
    engine.dispose()


def bench_retro(url: str, args: argparse.Namespace, rng: np.random.Generator) -> None:
    entry = _hexes(rng, 1)[0]
    stored = _hexes(rng, args.stored)
    copies = set(rng.choice(args.stored, args.copies, replace=False).tolist())
    for i in copies:
        stored[i] = _near(entry, int(rng.integers(0, 20)), rng)
    # the core: one entry (8 hashes, as an entry with dihedral variants) vs all stored words
    words = hashes_to_words(stored)
    query = EntryHashes(1, hashes_to_words([entry, *_hexes(rng, 7)]))
    times = []
    for _ in range(3):
        started = time.perf_counter()
        hits = match_stored([query], words, 31)
        times.append(time.perf_counter() - started)
    assert {h.row for h in hits} >= copies
    print(f"  matching core, {args.stored:,} stored × 8 entry hashes (numpy popcount): "
          f"{statistics.median(times):.3f} s median of 3")  # fmt: skip
    started = time.perf_counter()
    _fill(url, stored, copies)
    print(f"  (filling {args.stored:,} images took {time.perf_counter() - started:.1f} s)")
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
    with sessions.begin() as s:
        added = bank_hash(s, bank=BankKind.CONFIRMED_VIOLATION, pdq=PdqHash(entry, 100),
                          added_by="bench", category="violence")  # fmt: skip
    assert added.entry is not None
    started = time.perf_counter()
    run = retro.retro_match_now(sessions, settings, [added.entry.id], trigger="bench")
    took = time.perf_counter() - started
    print(f"  end to end (DB scan + match + re-decide): {took:.2f} s for {run.scanned:,} stored "
          f"hashes, {run.redecided} jobs re-decided (planted {len(copies)}); before: no "
          "retro-matching")  # fmt: skip
    started = time.perf_counter()
    again = retro.retro_match_now(sessions, settings, [added.entry.id], trigger="bench again")
    took = time.perf_counter() - started
    print(f"  the same run again (warm process; idempotent): {took:.2f} s, "
          f"{again.redecided} re-decided")  # fmt: skip
    # a 100 k-entry import retro-matched in one run (the multi-index path)
    many = _hexes(rng, args.import_size)
    entries = [EntryHashes(i, hashes_to_words([h])) for i, h in enumerate(many)]
    started = time.perf_counter()
    match_stored(entries, words[:200_000], 31)
    print(f"  matching core, {args.import_size:,} entries × 200,000 stored (multi-index): "
          f"{time.perf_counter() - started:.2f} s")  # fmt: skip
    engine.dispose()


def bench_import(url: str, args: argparse.Namespace, rng: np.random.Generator) -> None:
    lines = ["hash,quality,bank,category,tags,source,added_at"]
    lines += [f"{h},90,confirmed_violation,sexual,tx;list,bench-list,2026-11-01T00:00:00+00:00"
              for h in _hexes(rng, args.import_size)]  # fmt: skip
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    for label in ("import", "re-import (all duplicates)"):
        started = time.perf_counter()
        with sessions.begin() as s:
            report = bank_service.import_hash_list(s, lines, fmt="csv", imported_by="bench")
        took = time.perf_counter() - started
        print(f"  {label}: {args.import_size:,} lines in {took:.2f} s "
              f"({args.import_size / took:,.0f} lines/s), {len(report.added):,} added")  # fmt: skip
    started = time.perf_counter()
    with sessions() as s:
        out = sum(1 for _ in bank_service.export_hash_list(s, fmt="csv"))
    print(f"  export: {out - 1:,} entries in {time.perf_counter() - started:.2f} s")
    engine.dispose()


def bench_propagation(url: str, rng: np.random.Generator) -> None:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    matcher = BankMatcher(31)
    with sessions() as s:
        matcher.refresh(s)
    checks = []
    for _ in range(200):
        started = time.perf_counter()
        with sessions() as s:
            bank_version(s)
        checks.append(time.perf_counter() - started)
    latencies = []
    for h in _hexes(rng, 20):
        with sessions.begin() as s:
            bank_hash(s, bank=BankKind.CONFIRMED_VIOLATION, pdq=PdqHash(h, 100),
                      added_by="bench", category="sexual")  # fmt: skip
        committed = time.perf_counter()
        with sessions() as s:  # what the worker's next batch does: check, then refresh
            bank_version(s)
            matcher.refresh(s)
        assert matcher.search(PdqHash(h, 100), flips=False)
        latencies.append(time.perf_counter() - committed)
    print(f"  per-batch watch query: {statistics.median(checks) * 1e3:.2f} ms median")
    print(f"  commit → next batch matches it: {statistics.median(latencies) * 1e3:.1f} ms median, "
          f"{max(latencies) * 1e3:.1f} ms max (+ the wait for the next batch); before: up to "
          "bank_refresh_s = 30 s")  # fmt: skip
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, default=1_000_000)
    parser.add_argument("--copies", type=int, default=50)
    parser.add_argument("--import-size", type=int, default=100_000)
    parser.add_argument("--pg-url", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"sqlite": f"sqlite:///{tmp}/bench.sqlite3"}
        if args.pg_url:
            urls["postgresql"] = args.pg_url
        for name, url in urls.items():
            upgrade(url)
            rng = np.random.default_rng(args.seed)
            print(f"[{name}] propagation")
            bench_propagation(url, rng)
            print(f"[{name}] import / export")
            bench_import(url, args, rng)
            print(f"[{name}] retro-matching")
            bench_retro(url, args, rng)


if __name__ == "__main__":
    main()
