"""Seconds for one labels upload to ``POST /v1/admin/thresholds/calibrate`` (dry run): a CSV of
``--rows`` given scores (``category,is_violation,score``), one category, on a fresh SQLite DB,
in-process (TestClient). The upload limit is 200,000 rows / 16 MiB.

    .venv/bin/python benchmarks/bench_calibrate_upload.py --rows 200000
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from fastapi.testclient import TestClient

from moderation.api.app import create_app
from moderation.config import Settings
from moderation.db.migrate import upgrade

TOKEN = "bench-admin-secret-0000000000000000000001"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.sqlite3"
        upgrade(url)
        settings = Settings(_env_file=None, database_url=url, api_tokens=[f"bench:admin:{TOKEN}"])  # type: ignore[call-arg]
        rng = np.random.default_rng(0)
        y = rng.uniform(size=args.rows) < 0.3
        s = np.where(y, rng.normal(0.3, 0.05, args.rows), rng.normal(0.1, 0.05, args.rows))
        rows = "".join(f"weapons,{int(a)},{b:.6f}\n" for a, b in zip(y, s, strict=True))
        body = "category,is_violation,score\n" + rows
        with TestClient(create_app(settings)) as client:
            start = time.perf_counter()
            r = client.post(
                "/v1/admin/thresholds/calibrate?scale=gme_cosine",
                content=body,
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            took = time.perf_counter() - start
    r.raise_for_status()
    (weapons,) = r.json()["categories"]
    print(
        f"{args.rows} rows, {len(body) / 1e6:.1f} MB: {took:.2f} s "
        f"(recall_target threshold {weapons['threshold']:.4f})"
    )


if __name__ == "__main__":
    main()
