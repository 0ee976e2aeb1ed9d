"""Scoring speed: the seed's per-phrasing loop vs batched images + cached pattern vectors (a);
images/s and MFU of the full-size GME architecture, stock transformers vs the official path (b).

(a) CPU, tiny random GME built in code (or ``--model-path`` real weights):
    .venv/bin/python benchmarks/bench_scoring.py
(b) GPU, full GME-2B architecture with random weights, 448² images (256 visual tokens):
    .venv/bin/python benchmarks/bench_scoring.py --device cuda --full-size-random
    .venv/bin/python benchmarks/bench_scoring.py --full-size-random --tiny   # same code on CPU
(c) GME image preprocessing, CPU per image, transformers' processor vs the fast one, and the
    host CPU of the device path (both resizes on the device; ``--device cuda`` on a GPU host):
    .venv/bin/python benchmarks/bench_scoring.py --preprocess [--device cuda]

Both sides of every ratio run in the same process on the same backend; times are the best of
``--repeats`` runs (the two sides of (a) alternate, so both see the same machine load). The
batched side of (a) is the production scorer layer, ``moderation.scoring.scorers.EmbeddingScorer``:
pattern vectors embedded once when it is built, then one image forward per batch and one matrix
product.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moderation.embedders.gme import GmeEmbedder, GmeInputs  # noqa: E402
from moderation.scoring.catalog import Catalog, catalog_from_mapping  # noqa: E402
from moderation.scoring.scorers import EmbeddingScorer  # noqa: E402
from tests.moderation.embedders.gme_fixture import (  # noqa: E402
    QWEN_SPECIAL_TOKENS,
    build_tiny_gme,
    build_tokenizer,
    tiny_qwen2vl_config,
)

# 8 categories × 4 phrasings, in the seed's variant templates.
CATEGORIES = {
    "sexual": "explicit nudity",
    "violence": "graphic violence and gore",
    "weapons": "a gun or a knife",
    "hate": "hate symbols",
    "self_harm": "self-harm injuries",
    "drugs": "illegal drugs",
    "extremism": "extremist propaganda",
    "shocking": "disturbing shocking content",
}
TEMPLATES = [
    "a photo of {subject}",
    "a detailed image showing {subject}",
    "{subject} in the image",
    "a picture containing {subject}",
]

# Dense bf16 tensor-core peaks (TFLOP/s) for MFU; override with --peak-tflops.
PEAK_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.0}


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """Best wall time of ``repeats`` runs (seconds), synchronising CUDA around each."""
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """(wall seconds, result) of one call."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def sample_images(n: int, width: int, height: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)) for _ in range(n)
    ]


# --- (a) seed loop vs batched + cached ------------------------------------------------------
def bench_catalog() -> Catalog:
    """8 categories × 4 phrasings, through the production catalog schema."""
    categories = {name: {"severity": 2, "subjects": [s]} for name, s in CATEGORIES.items()}
    return catalog_from_mapping({"name": "bench", "templates": TEMPLATES, "categories": categories})


def seed_loop(embedder: GmeEmbedder, images: list[Image.Image], catalog: Catalog) -> np.ndarray:
    """The seed: each image embedded alone, then every phrasing embedded one at a time."""
    names = list(catalog.category_names)
    scores = np.full((len(images), len(names)), -np.inf, dtype=np.float32)
    for i, image in enumerate(images):
        vector = embedder.embed_images([image])[0]
        for category, phrasing in catalog.pairs():
            c = names.index(category)
            score = float(vector @ embedder.embed_texts([phrasing])[0])
            scores[i, c] = max(scores[i, c], score)
    return scores


def seed_pairwise_loop(
    embedder: GmeEmbedder, images: list[Image.Image], catalog: Catalog
) -> np.ndarray:
    """The seed's ``ContentSafetyChecker.check_violation``: ``compute_single_similarity(image,
    pattern)`` per pattern, i.e. the image AND the phrasing embedded again for every pair."""
    names = list(catalog.category_names)
    scores = np.full((len(images), len(names)), -np.inf, dtype=np.float32)
    for i, image in enumerate(images):
        for category, phrasing in catalog.pairs():
            vector = embedder.embed_images([image])[0]
            score = float(vector @ embedder.embed_texts([phrasing])[0])
            c = names.index(category)
            scores[i, c] = max(scores[i, c], score)
    return scores


def batched_cached(scorer: EmbeddingScorer, images: list[Image.Image]) -> np.ndarray:
    """The scorer layer: batched image forwards × the cached pattern matrix, max per category."""
    score_sets = scorer.score_images(images)
    return np.array([[s[c].score for c in scorer.categories] for s in score_sets], np.float32)


def load_embedder(args: argparse.Namespace) -> GmeEmbedder:
    """Real weights from ``--model-path``, else a tiny random GME written to a temp dir."""
    with tempfile.TemporaryDirectory() as tmp:
        path = args.model_path or Path(tmp)
        if args.model_path is None:
            build_tiny_gme(path)
        return GmeEmbedder(
            path,
            device=args.device,
            batch_size=args.batch_size,
            min_image_tokens=args.min_image_tokens,
            max_image_tokens=args.max_image_tokens,
        )


def run_loop_comparison(args: argparse.Namespace) -> None:
    embedder = load_embedder(args)
    images = sample_images(args.images, *args.image_size)
    catalog = bench_catalog()
    texts = [phrasing for _, phrasing in catalog.pairs()]
    embedder.embed_images(images[:2])  # warm-up
    embedder.embed_texts(texts[:2])
    # Building the scorer embeds the pattern vectors: once per catalog version and model.
    t_patterns, scorer = timed(lambda: EmbeddingScorer(embedder, catalog))
    # Alternate the two sides so both see the same machine load; keep each side's best.
    seed_times, fast_times = [], []
    for _ in range(args.repeats):
        seconds, seed_scores = timed(lambda: seed_loop(embedder, images, catalog))
        seed_times.append(seconds)
        seconds, fast_scores = timed(lambda: batched_cached(scorer, images))
        fast_times.append(seconds)
    t_seed, t_fast = min(seed_times), min(fast_times)
    diff = float(np.abs(seed_scores - fast_scores).max())
    # The pairwise variant costs 32 image forwards per image: time it on a few images only.
    few = images[: min(len(images), args.pairwise_images)]
    t_pair, pair_scores = timed(lambda: seed_pairwise_loop(embedder, few, catalog))
    diff = max(diff, float(np.abs(pair_scores - fast_scores[: len(few)]).max()))
    t_text = best_of(args.repeats, lambda: embedder.embed_texts(texts[:1]))
    t_image = best_of(args.repeats, lambda: embedder.embed_images(images[:1]))
    n, w, h = len(images), *args.image_size
    info, threads = embedder.info, torch.get_num_threads()
    print(f"(a) {info.model_id} on {info.device} ({info.dtype}), {threads} torch threads")
    print(
        f"    {n} images {w}×{h} → {embedder.min_image_tokens}..{embedder.max_image_tokens}"
        f" visual tokens; {len(scorer.categories)} categories, {len(texts)} phrasings"
    )
    print(f"    pattern vectors, once per catalog+model: {t_patterns * 1e3:8.1f} ms")
    print(
        f"    seed loop (1 image + {len(texts)} texts per image): {t_seed:8.3f} s"
        f"  = {n / t_seed:7.2f} img/s"
    )
    print(
        f"    EmbeddingScorer (batched, cached):       {t_fast:8.3f} s  = {n / t_fast:7.2f} img/s"
    )
    print(
        f"    seed check_violation (image+text per pattern, {len(few)} images): {t_pair:8.3f} s"
        f"  = {len(few) / t_pair:7.2f} img/s"
    )
    pair_ratio = (t_pair / len(few)) / (t_fast / n)
    print(
        f"    speedup vs seed loop: {t_seed / t_fast:.1f}×   vs check_violation: {pair_ratio:.1f}×"
        f"   (max |score difference| {diff:.2e})"
    )
    # The seed pays (one image + 32 texts) per image, the batched path one batched image, so
    # the ratio is about (image + 32·text) / batched image: large when text forwards cost.
    print(f"    per forward: one text {t_text * 1e3:.1f} ms, one image {t_image * 1e3:.1f} ms, "
          f"batched image {t_fast / n * 1e3:.1f} ms")  # fmt: skip


# --- (b) full-size random GME: stock transformers vs the official path ----------------------
def full_size_config(token_ids: dict[str, int]):  # -> Qwen2VLConfig
    """GME-Qwen2-VL-2B's published architecture (config.json of the model card)."""
    from transformers import Qwen2VLConfig

    text = {
        "vocab_size": 151936,
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1_000_000.0,
        "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
        "tie_word_embeddings": True,
        "bos_token_id": token_ids["<|endoftext|>"],
        "eos_token_id": token_ids["<|im_end|>"],
    }
    vision = {
        "depth": 32,
        "embed_dim": 1280,
        "hidden_size": 1536,
        "hidden_act": "quick_gelu",
        "mlp_ratio": 4,
        "num_heads": 16,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    return Qwen2VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=token_ids["<|image_pad|>"],
        video_token_id=token_ids["<|video_pad|>"],
        vision_start_token_id=token_ids["<|vision_start|>"],
        vision_end_token_id=token_ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )


def flops_per_image(config, patches: int, seq_len: int) -> float:  # config: Qwen2VLConfig
    """Model FLOPs (2 per multiply-add) of one image forward; causal attention counted half."""
    v, t = config.vision_config, config.text_config
    d, mlp = v.embed_dim, v.embed_dim * v.mlp_ratio
    in_dim = 3 * v.temporal_patch_size * v.patch_size**2
    merged, wide = patches // v.spatial_merge_size**2, d * v.spatial_merge_size**2
    vision = patches * in_dim * d + v.depth * (patches * (4 * d * d + 2 * d * mlp))
    vision += v.depth * 2 * patches * patches * d + merged * (wide * wide + wide * v.hidden_size)
    h, kv = t.hidden_size, t.num_key_value_heads * (t.hidden_size // t.num_attention_heads)
    per_token = 2 * h * h + 2 * h * kv + 3 * h * t.intermediate_size
    text = t.num_hidden_layers * (seq_len * per_token + seq_len * seq_len * h)
    return 2.0 * (vision + text)


def stock_forward(embedder: GmeEmbedder, batch: GmeInputs) -> np.ndarray:
    """Plain transformers 5.x: the multimodal forward with 3-D M-RoPE, then GME pooling."""
    model, device = embedder._model, embedder.device
    ids = batch.input_ids.to(device)
    mask = batch.attention_mask.to(device)
    with torch.inference_mode():
        hidden = model.model(
            input_ids=ids,
            attention_mask=mask,
            pixel_values=batch.pixel_values.to(device),
            image_grid_thw=batch.image_grid_thw.to(device),
            mm_token_type_ids=(ids == embedder.image_token_id).int(),
        ).last_hidden_state
        last = (mask * torch.arange(mask.shape[1], device=device)).argmax(1)
        pooled = hidden[torch.arange(hidden.shape[0], device=device), last].float()
        return torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()


def peak_flops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, tflops in PEAK_TFLOPS.items():  # "H100 PCIe" is listed before "H100"
        if all(part in name for part in key.split()):
            return tflops * 1e12
    return None


def random_embedder(args: argparse.Namespace) -> GmeEmbedder:
    from transformers import Qwen2VLForConditionalGeneration

    tokenizer = build_tokenizer()
    token_ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    if args.tiny:
        config = tiny_qwen2vl_config(token_ids, vocab_size=len(tokenizer))
    else:
        config = full_size_config(token_ids)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):  # initialise straight on the GPU: 2.2 B parameters
        model = Qwen2VLForConditionalGeneration._from_config(
            config, dtype=dtype, attn_implementation=args.attn
        )
    return GmeEmbedder.from_components(
        model, tokenizer, weights_id="random-seed-0", device=str(device), dtype=dtype
    )


def run_throughput(args: argparse.Namespace) -> None:
    embedder = random_embedder(args)
    config, device = embedder._model.config, embedder.device
    peak = peak_flops(device, args.peak_tflops)
    params = sum(p.numel() for p in embedder._model.parameters())
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"(b) random GME, {params / 1e6:,.1f} M parameters, {embedder.info.dtype}, "
          f"attention {embedder.attn_implementation}, preprocessor {embedder.preprocessor}, "
          f"on {name}")  # fmt: skip
    for side in args.sizes:
        images = sample_images(max(args.batches), side, side)
        prep = best_of(args.repeats, lambda im=images: embedder.prepare_images(im))
        print(f"    {side}²: preprocessing on {embedder._workers} threads "
              f"{len(images) / prep:8.1f} img/s")  # fmt: skip
        print("    batch  path            img/s   ms/batch    MFU")
        for size in args.batches:
            batch = embedder.prepare_images(images[:size])
            (tokens,) = set(batch.image_token_counts)
            flops = flops_per_image(config, tokens * 4, batch.input_ids.shape[1])
            results = {}
            for label, fn in (
                ("stock M-RoPE", lambda b=batch: stock_forward(embedder, b)),
                ("official 1-D", lambda b=batch: embedder.embed_inputs(b)),
                # what a worker calls: preprocessing (threads, one batch ahead) + forward
                ("embed_images", lambda n=size, im=images: embedder.embed_images(im[:n])),
            ):
                try:
                    fn()  # warm-up (kernels, allocator)
                    seconds = best_of(args.repeats, fn)
                except torch.OutOfMemoryError:
                    print(f"    {size:5d}  {label:13s}  out of device memory")
                    torch.cuda.empty_cache()
                    continue
                results[label] = size / seconds
                mfu = f"{100 * flops * size / seconds / peak:5.1f} %" if peak else "  n/a"
                rate, ms = size / seconds, seconds * 1e3
                print(f"    {size:5d}  {label:13s} {rate:8.1f} {ms:10.1f}   {mfu}")
            if "official 1-D" in results and "stock M-RoPE" in results:
                ratio = results["official 1-D"] / results["stock M-RoPE"]
                print(f"           official/stock: {ratio:.2f}×")
    run_text_throughput(embedder, args)
    if device.type == "cuda":
        print(f"    peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")


def run_text_throughput(embedder: GmeEmbedder, args: argparse.Namespace) -> None:
    texts = [f"a detailed image showing category number {i}" for i in range(args.text_batch)]
    embedder.embed_texts(texts[:1])
    single = best_of(args.repeats, lambda: [embedder.embed_texts([t]) for t in texts[:16]])
    embedder.batch_size = args.text_batch
    batched = best_of(args.repeats, lambda: embedder.embed_texts(texts))
    print(f"    texts/s: one at a time {16 / single:8.1f}, "
          f"batch {args.text_batch} {len(texts) / batched:8.1f}")  # fmt: skip


PREPROCESS_SIZES = ((448, 448), (640, 480), (1920, 1080))


def run_preprocess(args: argparse.Namespace) -> None:
    """(c) CPU per image of the GME image preprocessing, one thread: the recipe's first resize
    (``official_resize``) with Pillow and with ``pil_resample`` (the same pixels), then
    transformers' ``Qwen2VLImageProcessorPil`` vs ``FastQwen2VLImageProcessor`` (the same
    pixel_values); the whole host path before (Pillow + reference) and after (both fast); then
    the device path (``preprocess_on_device``, both resizes included) on ``--device``: the
    host CPU it costs per image against the whole reference path."""
    from transformers import Qwen2VLImageProcessorPil

    from moderation.embedders.gme import (
        TOKEN_PX,
        official_resize_pixels,
        official_size,
        pad_extreme_aspect,
        preprocess_on_device,
    )
    from moderation.embedders.qwen2vl_device import DeviceQwen2VLImageProcessor
    from moderation.embedders.qwen2vl_image import FastQwen2VLImageProcessor

    reference = Qwen2VLImageProcessorPil(
        min_pixels=args.min_image_tokens * TOKEN_PX * TOKEN_PX,
        max_pixels=args.max_image_tokens * TOKEN_PX * TOKEN_PX,
    )
    fast = FastQwen2VLImageProcessor.like(reference)

    def cpu_ms(fn: Callable[[], object], n: int) -> float:
        fn()
        best = float("inf")
        for _ in range(args.repeats):
            start = time.process_time()
            for _ in range(n):
                fn()
            best = min(best, (time.process_time() - start) / n)
        return best * 1e3

    def official_resize_pillow(image: Image.Image) -> Image.Image:
        """``official_resize`` as the GME recipe writes it: Pillow's own BICUBIC call."""
        image = pad_extreme_aspect(image.convert("RGB"))
        size = official_size(*image.size)
        return image if size == image.size else image.resize(size, Image.Resampling.BICUBIC)

    print("(c) GME image preprocessing, CPU ms per image (best of --repeats, one thread)")
    print("    official_resize: Pillow vs pil_resample; processor: reference vs fast (on the same")
    print("    resized image); whole host path: Pillow + reference (before) vs both fast (after)")
    print("    size        resize:Pillow   fast  processor:ref   fast  fast/ref  before   after"
          "  after/before  equal")  # fmt: skip
    host_ms: dict[tuple[int, int], float] = {}
    for width, height in PREPROCESS_SIZES:
        image = sample_images(1, width, height)[0]
        resized = official_resize_pillow(image)
        n = max(2, int(2e7 // (width * height)))
        pil_resize_ms = cpu_ms(lambda im=image: official_resize_pillow(im), n)
        resize_ms = cpu_ms(lambda im=image: official_resize_pixels(im), n)
        ref_ms = cpu_ms(lambda im=resized: reference(images=[im], return_tensors="np"), n)
        pixels = np.asarray(resized)
        fast_ms = cpu_ms(lambda px=pixels: fast(px), n)  # the pixels, as the embedder passes them
        expected = reference(images=[resized], return_tensors="np")["pixel_values"]
        fast_resized = official_resize_pixels(image)
        equal = np.array_equal(fast_resized, pixels) and np.array_equal(
            expected, fast(fast_resized)[0]
        )
        before, after = pil_resize_ms + ref_ms, resize_ms + fast_ms
        host_ms[width, height] = before
        print(f"    {width}x{height:<5d} {pil_resize_ms:13.2f} {resize_ms:6.2f} {ref_ms:14.2f}"
              f" {fast_ms:6.2f} {fast_ms / ref_ms:9.1%} {before:7.2f} {after:7.2f}"
              f" {after / before:13.1%}  {equal}")  # fmt: skip

    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    processor = DeviceQwen2VLImageProcessor.like(reference, device)

    def device_ms(image: Image.Image, n: int) -> tuple[float, float]:
        """(host CPU ms, wall ms) per image, best of --repeats; the wait for the device polls
        (a spinning synchronize would bill the host for device time)."""
        preprocess_on_device(image, processor)
        best_cpu = best_wall = float("inf")
        for _ in range(args.repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(n):
                preprocess_on_device(image, processor)
            if on_gpu:
                done = torch.cuda.Event()
                done.record()
                while not done.query():
                    time.sleep(2e-4)
            best_cpu = min(best_cpu, (time.process_time() - cpu) / n)
            best_wall = min(best_wall, (time.perf_counter() - wall) / n)
        return best_cpu * 1e3, best_wall * 1e3

    where = (
        f"on {torch.cuda.get_device_name(device)}"
        if on_gpu
        else "torch on the CPU (a dry run: the host does the device's work)"
    )
    print(f"(c) the device path (MODERATION_GME_PREPROCESSOR=device), {where}:")
    print("    host CPU ms per image from the decoded image, both resizes included, against")
    print("    the whole reference path on the CPU (Pillow's official_resize + reference)")
    print("    size        Pillow + reference  device host CPU  wall/image  host/ref  equal")
    for width, height in PREPROCESS_SIZES:
        image = sample_images(1, width, height)[0]
        n = max(2, int(2e7 // (width * height))) if on_gpu else 1
        host, wall = device_ms(image, n)
        expected = reference(images=[official_resize_pillow(image)], return_tensors="np")
        pixels, _ = preprocess_on_device(image, processor)
        equal = np.array_equal(expected["pixel_values"], pixels.cpu().numpy())
        print(f"    {width}x{height:<5d} {host_ms[width, height]:18.2f} {host:16.2f} {wall:11.2f}"
              f" {host / host_ms[width, height]:9.1%}  {equal}")  # fmt: skip
    print(f"    load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (default cpu)")
    parser.add_argument("--model-path", type=Path, help="real GME weights for (a)")
    parser.add_argument("--images", type=int, default=16, help="(a) images scored")
    parser.add_argument("--image-size", type=int, nargs=2, default=(448, 448), metavar=("W", "H"))
    parser.add_argument("--batch-size", type=int, default=16, help="(a) images per forward")
    parser.add_argument("--min-image-tokens", type=int, default=256)
    parser.add_argument("--max-image-tokens", type=int, default=1280)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--pairwise-images", type=int, default=2, help="(a) images for the pairwise seed loop"
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--full-size-random", action="store_true", help="run (b)")
    parser.add_argument("--tiny", action="store_true", help="(b) with the tiny test config")
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[448], help="(b) square image sides, e.g. 448 896"
    )
    parser.add_argument("--preprocess", action="store_true", help="run (c)")
    parser.add_argument("--text-batch", type=int, default=256)
    parser.add_argument("--attn", default="sdpa", help="(b) attention implementation")
    parser.add_argument("--peak-tflops", type=float, help="device peak for MFU")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.preprocess:
        run_preprocess(args)
    elif args.full_size_random:
        if not args.tiny and not args.device.startswith("cuda"):
            parser.error("the full-size model needs --device cuda (or --tiny for a CPU dry run)")
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA device visible")
        run_throughput(args)
    else:
        run_loop_comparison(args)


if __name__ == "__main__":
    main()
