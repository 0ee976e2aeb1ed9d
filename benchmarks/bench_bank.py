"""Hash-bank benchmark: match speed against a large bank (multi-index vs brute-force numpy scan,
side by side), incremental refresh cost, recall / false matches of transformed copies, and
crop-window banking (MODERATION_BANK_CROP_GRID) off vs on, side by side in the same run.

    .venv/bin/python benchmarks/bench_bank.py [--bank-size 100000] [--images 200] [--seed 0]
    .venv/bin/python benchmarks/bench_bank.py --crops-only [--crop-grids 0,3,4] [--crop-keep 0.96]
    .venv/bin/python benchmarks/bench_bank.py --lifecycle [bench_bank_lifecycle.py options]

``--lifecycle`` runs ``bench_bank_lifecycle.py`` instead: propagation latency of a bank change,
retro-matching seconds at 1 M stored hashes and the import rate of a 100 k-entry hash list,
beside what the code did before (issue 17).

The bank is ``--images`` seeded synthetic photos (tests/synthetic_images.py) plus random
256-bit filler up to ``--bank-size`` entries, stored in a throwaway SQLite file and loaded through
the real ``BankMatcher.refresh``. Speed rounds alternate index and brute force on the same
queries so machine noise hits both; the ratio reported is the median of per-round ratios.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moderation.config import Settings  # noqa: E402
from moderation.db import make_engine, make_sessionmaker  # noqa: E402
from moderation.db.migrate import upgrade  # noqa: E402
from moderation.db.models import BankEntry  # noqa: E402
from moderation.domain import BankKind  # noqa: E402
from moderation.hashbank.banks import (  # noqa: E402
    BankMatcher,
    match_batch_before_scoring,
    match_before_scoring,
)
from moderation.hashbank.hashing import (  # noqa: E402
    compute_crop_hashes,
    compute_pdq,
    hamming,
    hamming_many,
    hashes_to_words,
    join_hashes,
)
from moderation.hashbank.index import HashIndex, brute_force_search  # noqa: E402
from tests.synthetic_images import TRANSFORMS, synthetic_photo  # noqa: E402


def _sizes(rng: np.random.Generator, n: int) -> list[tuple[int, int]]:
    widths = rng.integers(320, 1025, n)
    aspects = rng.choice([4 / 3, 3 / 2, 1.0, 3 / 4], n)
    return [(int(w), int(w / a)) for w, a in zip(widths, aspects, strict=True)]


def _centre_crop(fraction: float):  # type: ignore[no-untyped-def]
    def crop(image, _rng):  # type: ignore[no-untyped-def]
        cut_x, cut_y = round(image.width * fraction), round(image.height * fraction)
        left, top = cut_x // 2, cut_y // 2
        return image.crop((left, top, left + image.width - cut_x, top + image.height - cut_y))

    return crop


def _bank_rows(base_hashes: list[str], size: int, rng: np.random.Generator) -> list[dict]:
    """Base hashes at random positions among random filler (ids are assigned in order)."""
    filler = rng.integers(0, 256, (size - len(base_hashes), 32), dtype=np.uint8)
    hexes = [row.tobytes().hex() for row in filler]
    slots = np.sort(rng.choice(size, len(base_hashes), replace=False))
    for slot, hex_hash in zip(slots.tolist(), base_hashes, strict=True):
        hexes.insert(slot, hex_hash)
    return [
        {"bank": BankKind.CONFIRMED_VIOLATION, "category": "sexual", "pdq_hash": h,
         "pdq_quality": 100, "added_by": "bench"}
        for h in hexes
    ]  # fmt: skip


def _load_bank(url: str, rows: list[dict]) -> tuple[BankMatcher, dict[str, int], float]:
    engine = make_engine(url)
    session_factory = make_sessionmaker(engine)
    with session_factory.begin() as session:
        session.execute(insert(BankEntry), rows)
    matcher = BankMatcher(31)
    with session_factory() as session:
        started = time.perf_counter()
        matcher.refresh(session)
        load_s = time.perf_counter() - started
        ids = {r.pdq_hash: r.id for r in session.query(BankEntry.pdq_hash, BankEntry.id)}
    engine.dispose()
    return matcher, ids, load_s


def _incremental_refresh(url: str, matcher: BankMatcher, rng: np.random.Generator) -> list[str]:
    engine = make_engine(url)
    session_factory = make_sessionmaker(engine)
    extra = _bank_rows([], 1000, rng)
    with session_factory.begin() as session:
        session.execute(insert(BankEntry), extra)
    timings = []
    for label in ("+1000 entries", "nothing new"):
        with session_factory() as session:
            started = time.perf_counter()
            result = matcher.refresh(session)
            timings.append(
                f"{label}: {1e3 * (time.perf_counter() - started):.1f} ms "
                f"(added {result.added}, full reload {result.full_reload})"
            )
    engine.dispose()
    return timings


def _speed(matcher: BankMatcher, query_hexes: list[str], rounds: int) -> dict[str, float]:
    index: HashIndex = matcher._index  # the matcher's own index, as loaded from the DB
    keys, columns, enabled = index.snapshot()
    keys, columns = keys[enabled], np.ascontiguousarray(columns[:, enabled])
    queries = hashes_to_words(query_hexes)
    # a worker's micro-batch: 16 images × 8 dihedral variants = 128 hashes per index pass
    blocks = [queries[i : i + 128] for i in range(0, len(queries) - 127, 128)]
    for q in queries[:200]:  # exactness on the benchmark's own queries
        got, want = index.search(q), brute_force_search(keys, columns, q, index.radius)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    mih, brute, ratios, mih_batch, brute_batch, batch_ratios = [], [], [], [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for q in queries:
            index.search(q)
        t1 = time.perf_counter()
        for q in queries:
            brute_force_search(keys, columns, q, index.radius)
        t2 = time.perf_counter()
        for block in blocks:
            index.search_many(block)
        t3 = time.perf_counter()
        for block in blocks:
            for q in block:
                brute_force_search(keys, columns, q, index.radius)
        t4 = time.perf_counter()
        mih.append(len(queries) / (t1 - t0))
        brute.append(len(queries) / (t2 - t1))
        ratios.append((t2 - t1) / (t1 - t0))
        images = 16 * len(blocks)
        mih_batch.append(images / (t3 - t2))
        brute_batch.append(images / (t4 - t3))
        batch_ratios.append((t4 - t3) / (t3 - t2))
    return {
        "mih": statistics.median(mih),
        "brute": statistics.median(brute),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "mih_batch": statistics.median(mih_batch),
        "brute_batch": statistics.median(brute_batch),
        "batch_ratio": statistics.median(batch_ratios),
    }


def _recall(
    matcher: BankMatcher,
    images: list,
    entry_ids: list[int],
    unrelated: list,
    seed: int,
) -> tuple[list[tuple[str, float, float, float]], list[str]]:
    """Per transform: (name, recall flips off, recall flips on, median distance to the original)."""
    transforms = dict(TRANSFORMS)
    for fraction in (0.01, 0.02, 0.03):
        transforms[f"centre_crop_{fraction:.0%}"] = _centre_crop(fraction)
    base = Settings(_env_file=None)  # type: ignore[call-arg]
    originals = {e: compute_pdq(im).hex for e, im in zip(entry_ids, images, strict=True)}
    rows = []
    for name, transform in transforms.items():
        rng = np.random.default_rng(seed)
        hits = {False: 0, True: 0}
        distances = []
        for entry_id, image in zip(entry_ids, images, strict=True):
            query = compute_pdq(transform(image, rng), dihedral=True)
            distances.append(hamming(query.hex, originals[entry_id]))
            for flips in (False, True):
                settings = base.model_copy(update={"bank_match_flips": flips})
                match = match_before_scoring(query, matcher, settings)
                hits[flips] += match is not None and match.entry_id == entry_id
        n = len(images)
        rows.append((name, hits[False] / n, hits[True] / n, float(np.median(distances))))
    return rows, _false_matches(matcher, images, unrelated, base)


def _false_matches(matcher: BankMatcher, images: list, unrelated: list, base: Settings) -> list:
    lines = []
    unrelated_hashes = [compute_pdq(im, dihedral=True) for im in unrelated]
    for flips in (False, True):
        settings = base.model_copy(update={"bank_match_flips": flips})
        false = sum(match_before_scoring(h, matcher, settings) is not None
                    for h in unrelated_hashes)  # fmt: skip
        lines.append(
            f"unrelated images matching anything in the {len(matcher)}-entry bank, flips "
            f"{'on ' if flips else 'off'}: {false}/{len(unrelated)} = {false / len(unrelated):.2%}"
        )
    banked = [compute_pdq(im) for im in images]
    pairs = [
        min(hamming(variant, b.hex) for _, variant in u.queries())
        for u, b in itertools.product(unrelated_hashes, banked)
    ]
    close = sum(d <= 31 for d in pairs)
    lines.append(
        f"unrelated × banked photo pairs (dihedral): {len(pairs)}, within 31: {close} "
        f"({close / len(pairs):.4%}); closest pair {min(pairs)} bits, median {np.median(pairs):.0f}"
    )
    return lines


def main() -> None:
    if "--lifecycle" in sys.argv:
        sys.argv.remove("--lifecycle")
        from benchmarks import bench_bank_lifecycle

        bench_bank_lifecycle.main()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bank-size", type=int, default=100_000)
    parser.add_argument("--images", type=int, default=200, help="banked (and unrelated) photos")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed-only", action="store_true", help="skip the recall sections")
    parser.add_argument("--crops-only", action="store_true", help="only the crop-window section")
    parser.add_argument("--crop-grids", default="0,3,4", help="grids compared side by side")
    parser.add_argument("--crop-keep", type=float, default=0.96, help="window side fraction")
    parser.add_argument("--crop-bank-size", type=int, default=10_000, help="entries, crop section")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    started = time.perf_counter()
    sizes = _sizes(rng, 2 * args.images)
    images = [
        synthetic_photo(args.seed * 100_000 + i, s) for i, s in enumerate(sizes[: args.images])
    ]
    unrelated = [synthetic_photo(args.seed * 100_000 + 50_000 + i, s)
                 for i, s in enumerate(sizes[args.images :])]  # fmt: skip
    base_hashes = [compute_pdq(im).hex for im in images]
    print(f"generated and hashed {2 * args.images} photos in {time.perf_counter() - started:.0f} s")
    if args.crops_only:
        _report_crops(images, unrelated, args)
        return

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.sqlite3"
        upgrade(url)
        matcher, ids, load_s = _load_bank(url, _bank_rows(base_hashes, args.bank_size, rng))
        print(f"bank: {len(matcher)} entries; initial load from SQLite {load_s:.2f} s")
        for line in _incremental_refresh(url, matcher, rng):
            print(f"incremental refresh, {line}")

    _report_speed(matcher, images, unrelated, base_hashes, args)

    if args.speed_only:
        return
    _report_recall(matcher, images, [ids[h] for h in base_hashes], unrelated, args.seed)
    _report_crops(images, unrelated, args)


def _report_speed(matcher, images, unrelated, base_hashes, args) -> None:  # type: ignore[no-untyped-def]
    """Queries: transformed copies (true hits), unrelated photos and random hashes (misses)."""
    query_rng = np.random.default_rng(args.seed + 1)
    pool = [compute_pdq(TRANSFORMS["crop+resize+jpeg"](im, query_rng)).hex for im in images[:50]]
    pool += [compute_pdq(im).hex for im in unrelated[:50]] + base_hashes[:50]
    pool += [query_rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex() for _ in range(50)]
    queries = [pool[i % len(pool)] for i in range(args.queries)]
    speed = _speed(matcher, queries, args.rounds)
    print(f"\nmatch speed, {len(matcher)}-entry bank, threshold 31, {args.rounds} rounds × "
          f"{len(queries)} queries (median):")  # fmt: skip
    print(f"  multi-index  {speed['mih']:>10,.0f} matches/s")
    print(f"  brute force  {speed['brute']:>10,.0f} matches/s")
    print(f"  speedup      {speed['ratio']:>10.1f}×  (per-round range "
          f"{speed['ratio_min']:.1f}–{speed['ratio_max']:.1f}×)")  # fmt: skip
    print("  micro-batches of 16 images × 8 dihedral variants (128 hashes per index pass):")
    print(f"    multi-index {speed['mih_batch']:>8,.0f} images/s = "
          f"{8 * speed['mih_batch']:,.0f} hashes/s")  # fmt: skip
    print(f"    brute force {speed['brute_batch']:>8,.0f} images/s = "
          f"{8 * speed['brute_batch']:,.0f} hashes/s")  # fmt: skip
    print(f"    speedup     {speed['batch_ratio']:>8.1f}×")


def _report_recall(matcher, images, entry_ids, unrelated, seed) -> None:  # type: ignore[no-untyped-def]
    rows, false_lines = _recall(matcher, images, entry_ids, unrelated, seed)
    featureless = sum(compute_pdq(im).quality < 50 for im in images)
    print(
        f"\nrecall of transformed copies ({len(images)} photos, threshold 31; {featureless} of "
        "them have PDQ quality < 50, are never matched by policy and count as misses):"
    )
    print(f"  {'transform':<20} {'flips off':>9} {'flips on':>9} {'median d':>9}")
    for name, off, on, median in rows:
        print(f"  {name:<20} {off:>9.1%} {on:>9.1%} {median:>9.0f}")
    print()
    for line in false_lines:
        print(line)


def _random_crop(fraction: float):  # type: ignore[no-untyped-def]
    """Cut ``fraction`` of each side in total, split at a random offset (like crop_5pct)."""

    def crop(image, rng):  # type: ignore[no-untyped-def]
        cut_x, cut_y = round(image.width * fraction), round(image.height * fraction)
        left, top = int(rng.integers(0, cut_x + 1)), int(rng.integers(0, cut_y + 1))
        return image.crop((left, top, left + image.width - cut_x, top + image.height - cut_y))

    return crop


def _crop_bank(url: str, own: list[str], crops: list[tuple[str, ...]], filler: int, rng) -> list:  # type: ignore[no-untyped-def]
    """The photos (with their crop hashes) among ``filler`` random entries that carry as many
    random crop hashes each, so the bank's hash count is what that grid really costs."""
    per_entry = max((len(c) for c in crops), default=0)
    rows = _bank_rows(own, filler + len(own), rng)
    by_hash = dict(zip(own, crops, strict=True))
    for row in rows:
        extra = by_hash.get(row["pdq_hash"])
        if extra is None:
            words = rng.integers(0, 256, (per_entry, 32), dtype=np.uint8)
            extra = tuple(w.tobytes().hex() for w in words)
        row["crop_hashes"] = join_hashes(extra)
    engine = make_engine(url)
    with make_sessionmaker(engine).begin() as session:
        session.execute(insert(BankEntry), rows)
        ids = dict(session.query(BankEntry.pdq_hash, BankEntry.id))
    engine.dispose()
    return [ids[h] for h in own]


def _report_crops(images: list, unrelated: list, args: argparse.Namespace) -> None:
    """Recall and false matches with crop windows banked (grid n) vs not (grid 0), same photos,
    same queries, same filler."""
    grids = [int(g) for g in args.crop_grids.split(",")]
    transforms = {f"crop {p} %": _random_crop(p / 100) for p in (2, 3, 5, 8)}
    transforms.update({k: TRANSFORMS[k] for k in ("crop+resize+jpeg", "resize_50", "jpeg_q40")})
    transforms["flip_h"] = TRANSFORMS["flip_h"]
    queries = {}
    for name, transform in transforms.items():
        rng = np.random.default_rng(args.seed + 7)
        queries[name] = [compute_pdq(transform(im, rng), dihedral=True) for im in images]
    strangers = [compute_pdq(im, dihedral=True) for im in unrelated]
    stranger_words = hashes_to_words([h for s in strangers for _, h in s.queries()])
    own = [compute_pdq(im).hex for im in images]
    base = Settings(_env_file=None)  # type: ignore[call-arg]
    results = []
    for grid in grids:
        started = time.perf_counter()
        crops = [compute_crop_hashes(im, grid, keep=args.crop_keep) for im in images]
        bank_ms = 1e3 * (time.perf_counter() - started) / len(images)
        settings = base.model_copy(
            update={"bank_crop_grid": grid, "bank_crop_keep": args.crop_keep}
        )
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/crops.sqlite3"
            upgrade(url)
            ids = _crop_bank(url, own, crops, args.crop_bank_size, np.random.default_rng(args.seed))
            matcher = BankMatcher.from_settings(settings)
            engine = make_engine(url)
            with make_sessionmaker(engine)() as session:
                matcher.refresh(session)
            engine.dispose()
        recall = {}
        for name, batch in queries.items():
            verdicts = match_batch_before_scoring(batch, matcher, settings)
            hits = sum(
                v is not None and v.entry_id == e for v, e in zip(verdicts, ids, strict=True)
            )
            recall[name] = hits / len(images)
        started = time.perf_counter()
        for i in range(0, len(strangers), 16):
            found = match_batch_before_scoring(strangers[i : i + 16], matcher, settings)
        speed = len(strangers) / (time.perf_counter() - started)
        false = sum(v is not None for v in match_batch_before_scoring(strangers, matcher, settings))
        banked = hashes_to_words(own + [h for c in crops for h in c])
        nearest = np.array([hamming_many(banked, q).min() for q in stranger_words])
        # per stranger: best of its 8 dihedral variants against every banked photo hash
        closest = nearest.reshape(len(strangers), -1).min(axis=1)
        results.append((grid, matcher.hash_count, bank_ms, recall, false, closest, speed))
        del found
    print(f"\ncrop windows: {len(images)} banked photos + {args.crop_bank_size} filler entries, "
          f"windows of {args.crop_keep:.0%} of each side, threshold 31, flips on; "
          f"grid 0 = off (same run, same queries):")  # fmt: skip
    head = "".join(f"{'grid ' + str(g):>12}" for g, *_ in results)
    print(f"  {'':<28}{head}")
    print(f"  {'hashes in the bank':<28}" + "".join(f"{r[1]:>12,}" for r in results))
    print(f"  {'banking cost (ms/image)':<28}" + "".join(f"{r[2]:>12.0f}" for r in results))
    for name in transforms:
        cells = "".join(f"{r[3][name]:>12.1%}" for r in results)
        print(f"  {'recall ' + name:<28}{cells}")
    n = len(unrelated)
    print(f"  {'unrelated photos matched':<28}" + "".join(f"{f'{r[4]}/{n}':>12}" for r in results))
    for limit in (31, 40, 50):
        cells = "".join(f"{int((r[5] <= limit).sum()):>12}" for r in results)
        print(f"  {'  … nearest banked ≤ ' + str(limit):<28}{cells}")
    print(
        f"  {'  closest unrelated (bits)':<28}" + "".join(f"{int(r[5].min()):>12}" for r in results)
    )
    print(
        f"  {'  median nearest (bits)':<28}" + "".join(f"{np.median(r[5]):>12.0f}" for r in results)
    )
    print(f"  {'match speed (images/s)':<28}" + "".join(f"{r[6]:>12,.0f}" for r in results))


if __name__ == "__main__":
    main()
