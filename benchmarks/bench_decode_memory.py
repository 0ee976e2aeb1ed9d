"""Worker memory for decoding one large image: full-size decode vs the reduced (working-size)
decode, side by side.

Each measurement runs in a fresh subprocess so the peaks do not mix: the child reads the file,
notes its peak RSS (``VmHWM``), runs ``decode_image`` plus the PDQ hash the decode threads
compute, and reports how far the peak rose and how long it took. "held" is what the decoded
image keeps occupying while it waits for the model (look-ahead batches hold 2 × batch_size).
JPEGs gain at the peak too (decoded at 1/2–1/8 scale); other formats only in what is held.

    .venv/bin/python benchmarks/bench_decode_memory.py                  # 8000×6000 JPEG
    .venv/bin/python benchmarks/bench_decode_memory.py --size 8000x8000 --format PNG
    .venv/bin/python benchmarks/bench_decode_memory.py --size 7000x7000 --format PNG \
        --mode RGBA --burst 5          # five at once on 4 threads: without vs with the gate

``--burst N`` decodes N copies at once on 4 threads (the worker's decode pool) in one child,
as before (no gate, glibc's adaptive allocator) and as a pipeline process does now:
``images.FULL_DECODES`` (the pixel gate that lets only ``max_pixels`` of full-size loads run
at once) and ``return_freed_images_to_the_os`` (a fixed mmap threshold), at the default cap.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _peak_mib() -> float:
    """This process's peak RSS. ``VmHWM`` (Linux) belongs to this program alone; ``ru_maxrss``
    would carry the parent's peak across fork + exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def burst_child(path: str, copies: int, gated: bool) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from moderation.hashbank.hashing import compute_pdq
    from moderation.images import FULL_DECODES, decode_image
    from moderation.pipeline.context import return_freed_images_to_the_os

    if gated:
        return_freed_images_to_the_os()

    data = Path(path).read_bytes()
    before = _peak_mib()
    started = time.perf_counter()

    def one(_: int) -> None:
        decoded = decode_image(data, max_bytes=len(data), gate=FULL_DECODES if gated else None)
        compute_pdq(decoded.image, dihedral=True)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(copies)))
    print(
        json.dumps(
            {
                "rise_mib": _peak_mib() - before,
                "peak_mib": _peak_mib(),
                "seconds": time.perf_counter() - started,
            }
        )
    )


def child(path: str, working_pixels: int | None) -> None:
    from moderation.hashbank.hashing import compute_pdq
    from moderation.images import decode_image

    data = Path(path).read_bytes()
    before = _peak_mib()
    started = time.perf_counter()
    decoded = decode_image(
        data, max_bytes=len(data), max_pixels=10**9, working_pixels=working_pixels
    )
    compute_pdq(decoded.image, dihedral=True)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "rise_mib": _peak_mib() - before,
                "peak_mib": _peak_mib(),
                "seconds": seconds,
                "decoded": list(decoded.image.size),
                "recorded": [decoded.width, decoded.height],
            }
        )
    )


def make_image(size: tuple[int, int], fmt: str, mode: str = "RGB") -> bytes:
    """A photo-like image (gradient + noise: compresses like a photo, not like a flat fill)."""
    from PIL import Image

    base = Image.linear_gradient("L").resize(size).convert("RGB")
    noise = Image.effect_noise(size, 24).convert("RGB")
    image = Image.blend(base, noise, 0.25)
    if mode == "RGBA":
        image.putalpha(Image.linear_gradient("L").resize(size))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def measure(path: Path, working_pixels: int | None, repeats: int) -> dict[str, object]:
    arg = "none" if working_pixels is None else str(working_pixels)
    return _best(["--child", str(path), arg], repeats)


def _best(child_args: list[str], repeats: int) -> dict[str, object]:
    runs = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, __file__, *child_args],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["rise_mib"])
    best["seconds"] = min(r["seconds"] for r in runs)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="8000x6000", help="WxH of the generated image")
    parser.add_argument("--format", default="JPEG", choices=["JPEG", "PNG", "WEBP"])
    parser.add_argument("--mode", default="RGB", choices=["RGB", "RGBA"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--burst", type=int, default=0, help="N copies at once, gate vs none")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--burst-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        path, arg = args.child
        child(path, None if arg == "none" else int(arg))
        return
    if args.burst_child:
        path, copies, gated = args.burst_child
        burst_child(path, int(copies), gated == "gated")
        return

    from moderation.images import DEFAULT_WORKING_PIXELS

    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"large.{args.format.lower()}"
        path.write_bytes(make_image((width, height), args.format, args.mode))
        size_mib = path.stat().st_size / 2**20
        print(
            f"{args.format} {args.mode} {width}×{height} ({width * height / 1e6:.0f} MP, "
            f"{size_mib:.1f} MiB)"
        )
        if args.burst:
            runs = {
                how: _best(["--burst-child", str(path), str(args.burst), how], args.repeats)
                for how in ("ungated", "gated")
            }
            print(f"{args.burst} at once on 4 decode threads{'':4}{'before':>12}{'now':>12}")
            for key, label in (("rise_mib", "peak RSS rise (MiB)"), ("seconds", "wall (s)")):
                print(f"{label:40}{runs['ungated'][key]:>12.1f}{runs['gated'][key]:>12.1f}")
            ratio = runs["ungated"]["rise_mib"] / max(runs["gated"]["rise_mib"], 1)  # type: ignore[operator]
            print(f"memory ratio before / now: {ratio:.1f}×")
            return
        full = measure(path, None, args.repeats)
        reduced = measure(path, DEFAULT_WORKING_PIXELS, args.repeats)
    print(f"{'':28}{'full decode':>16}{'reduced decode':>18}")
    print(f"{'peak RSS rise (MiB)':28}{full['rise_mib']:>16.0f}{reduced['rise_mib']:>18.0f}")
    print(f"{'process peak RSS (MiB)':28}{full['peak_mib']:>16.0f}{reduced['peak_mib']:>18.0f}")
    held = [3 * r["decoded"][0] * r["decoded"][1] / 2**20 for r in (full, reduced)]  # type: ignore[index]
    print(f"{'held RGB pixels (MiB)':28}{held[0]:>16.1f}{held[1]:>18.1f}")
    print(f"{'decode + PDQ (s)':28}{full['seconds']:>16.2f}{reduced['seconds']:>18.2f}")
    print(f"{'decoded size':28}{'×'.join(map(str, full['decoded'])):>16}"
          f"{'×'.join(map(str, reduced['decoded'])):>18}")  # fmt: skip
    print(f"{'recorded size':28}{'×'.join(map(str, full['recorded'])):>16}"
          f"{'×'.join(map(str, reduced['recorded'])):>18}")  # fmt: skip
    print(f"memory ratio full / reduced: {full['rise_mib'] / max(reduced['rise_mib'], 1):.1f}×")


if __name__ == "__main__":
    main()
