"""GME-Qwen2-VL embedder: the official GME recipe on transformers 5.x, batched and exact.

Reference: ``gme_inference.py`` of the Alibaba-NLP/gme-Qwen2-VL-2B-Instruct model card. What it
does, and what this file reproduces:

* prompt ``<|im_start|>system\\n{instruction}<|im_end|>\\n<|im_start|>user\\n{content}<|im_end|>
  \\n<|im_start|>assistant\\n<|endoftext|>``; an image's content is
  ``<|vision_start|><|image_pad|><|vision_end|>`` (one pad per merged visual token); texts are
  queries with an instruction, images corpus items with ``You are a helpful assistant.``;
* images: RGB, resized to multiples of 28 px (``qwen_vl_utils.smart_resize`` bounds), then the
  Qwen2-VL image processor bounds them to ``min_image_tokens``..``max_image_tokens`` 28×28 tokens;
* the vision tower's features are scattered into the ``<|image_pad|>`` embeddings and the text
  decoder runs with **1-D positions** (the official code passes ``position_ids=None`` to a
  transformers-4.4x decoder, which then uses ``arange``). Stock transformers 5.x would give image
  tokens 3-D M-RoPE positions instead, which changes image vectors: we call the decoder directly;
* the last real token's hidden state (the trailing ``<|endoftext|>``), L2-normalised.

Deliberate differences. Exact (same vectors): positions are counted per row from the attention
mask, so left and right padding both equal one-at-a-time; images are sorted by size before
batching (less padding); the vision tower attends in equal-size groups with a matmul patch
embedding; the image processor is ``qwen2vl_image.FastQwen2VLImageProcessor`` (the same
``pixel_values`` as transformers' ``Qwen2VLImageProcessorPil`` at a fraction of the CPU) or, on
CUDA, ``qwen2vl_device`` (both resizes and the patch layout on the GPU, the same pixel_values
again); ``preprocessor="reference"`` / ``MODERATION_GME_PREPROCESSOR=reference`` uses
transformers'.
Only where the official code misbehaves: over-long texts are cut inside their content
(its ``truncation=True`` could cut image tokens or the pooled final token), and an image beyond
200:1 is padded (it squashes it, and transformers' processor would raise).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from . import pil_resample
from .base import DEFAULT_IMAGE_INSTRUCTION, QUERY_INSTRUCTION, EmbedderInfo, l2_normalise
from .qwen2vl_device import DeviceQwen2VLImageProcessor, pil_resize
from .qwen2vl_image import FastQwen2VLImageProcessor
from .registry import BackendUnavailable

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = [
    "GmeEmbedder",
    "GmeInputs",
    "GmeLoadError",
    "official_resize",
    "official_resize_pixels",
    "official_size",
    "pad_extreme_aspect",
    "preprocess_on_device",
    "resolve_device",
    "weights_fingerprint",
]

TOKEN_PX = 28  # one merged visual token covers 28×28 px (14-px patches, 2×2 merge)
RECIPE = "gme-official-1d-v1"  # bump when anything that changes vectors changes

_PROMPT = (
    "<|im_start|>system\n{instruction}<|im_end|>\n<|im_start|>user\n{content}<|im_end|>\n"
    "<|im_start|>assistant\n<|endoftext|>"
)
_IMAGE_CONTENT = "<|vision_start|><|image_pad|><|vision_end|>"
# qwen_vl_utils.fetch_image bounds (4..16384 tokens).
_FETCH_MIN_PIXELS = 4 * TOKEN_PX * TOKEN_PX
_FETCH_MAX_PIXELS = 16384 * TOKEN_PX * TOKEN_PX
# Qwen2-VL refuses aspect ratios above 200; pad to half that, because both resizes round the
# sides to 28 px, which can stretch the ratio by up to ~1.5×.
_PAD_RATIO = 100
# Where images are preprocessed: auto = device on CUDA, else fast; fast = PIL + numpy tables;
# reference = transformers' processor; device = torch on the model's device. All give the same
# pixel_values (fast and device bit for bit), so they share one model_id.
PREPROCESSORS = ("auto", "fast", "reference", "device")


class GmeLoadError(BackendUnavailable):
    """The GME weights directory is missing, incomplete or unreadable (or CUDA is absent)."""


@dataclass(frozen=True)
class GmeInputs:
    """One padded model batch, on the CPU until ``embed_inputs`` moves it (``pixel_values`` are
    on the model's device already when the device preprocessor made them)."""

    input_ids: torch.Tensor  # long [b, L]
    attention_mask: torch.Tensor  # long [b, L], 1 = real token
    pixel_values: torch.Tensor | None = None  # float32 [Σ t·h·w patches, 3·2·14·14]
    image_grid_thw: torch.Tensor | None = None  # long [n_images, 3], in 14-px patches

    @property
    def image_token_counts(self) -> list[int]:
        """Merged visual tokens per image (t·h·w / 4)."""
        if self.image_grid_thw is None:
            return []
        return [int(n) // 4 for n in self.image_grid_thw.prod(-1).tolist()]


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` → the first CUDA device if present, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise GmeLoadError(f"device {device!r} requested but CUDA is not available")
    return resolved


def _smart_resize(height: int, width: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """``qwen_vl_utils.smart_resize``: sides multiples of 28, area within the bounds."""
    h_bar = max(TOKEN_PX, round(height / TOKEN_PX) * TOKEN_PX)
    w_bar = max(TOKEN_PX, round(width / TOKEN_PX) * TOKEN_PX)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(TOKEN_PX, math.floor(height / beta / TOKEN_PX) * TOKEN_PX)
        w_bar = max(TOKEN_PX, math.floor(width / beta / TOKEN_PX) * TOKEN_PX)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / TOKEN_PX) * TOKEN_PX
        w_bar = math.ceil(width * beta / TOKEN_PX) * TOKEN_PX
    return h_bar, w_bar


def _padded_size(width: int, height: int, max_ratio: int = _PAD_RATIO) -> tuple[int, int]:
    """(width, height) after padding the short side up to a ``max_ratio`` aspect ratio."""
    return max(width, math.ceil(height / max_ratio)), max(height, math.ceil(width / max_ratio))


def pad_extreme_aspect(image: Image, max_ratio: int = _PAD_RATIO) -> Image:
    """Pad the short side (black, centred) so the aspect ratio is at most ``max_ratio``.

    Qwen2-VL refuses ratios above 200:1 (an 8000×8 banner would raise); padding keeps all the
    content, unlike the official code's squashing.
    """
    from PIL import Image as PILImage

    width, height = image.size
    new_w, new_h = _padded_size(width, height, max_ratio)
    if (new_w, new_h) == (width, height):
        return image
    canvas = PILImage.new(image.mode, (new_w, new_h))
    canvas.paste(image, ((new_w - width) // 2, (new_h - height) // 2))
    return canvas


def official_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) ``official_resize`` gives an already padded image of this size."""
    new_h, new_w = _smart_resize(height, width, _FETCH_MIN_PIXELS, _FETCH_MAX_PIXELS)
    return new_w, new_h


def official_resize(image: Image) -> Image:
    """``gme_inference.fetch_image``: RGB, sides rounded to 28 px within 4..16384 tokens."""
    image = pad_extreme_aspect(image.convert("RGB"))
    width, height = image.size
    new_w, new_h = official_size(width, height)
    if (new_w, new_h) == (width, height):
        return image  # PIL would return an identical copy
    return pil_resample.resize(image, (new_w, new_h))  # PIL's BICUBIC, pixel for pixel


def official_resize_pixels(image: Image) -> np.ndarray:
    """``official_resize`` as a uint8 [H, W, 3] array, without a round trip through PIL (the
    fast processor takes the pixels as they are)."""
    image = pad_extreme_aspect(image if image.mode == "RGB" else image.convert("RGB"))
    pixels = np.asarray(image)
    size = official_size(*image.size)
    return pixels if size == image.size else pil_resample.resize_pixels(pixels, size)


def preprocess_on_device(
    image: Image, processor: DeviceQwen2VLImageProcessor
) -> tuple[torch.Tensor, np.ndarray]:
    """``official_resize`` + the Qwen2-VL processor on ``processor.device``: (patches float32
    [t·h·w, 1176] there, grid [3]), equal to the CPU paths' bit for bit.

    The host converts to RGB (rarely: decoded images are RGB already), pads extreme aspects and
    copies the uint8 pixels once into page-locked memory; both resizes, the rescale and the
    patch layout run on the device.
    """
    image = pad_extreme_aspect(image if image.mode == "RGB" else image.convert("RGB"))
    array = np.asarray(image)
    pinned = processor.device.type == "cuda"
    pixels = torch.empty(array.shape, dtype=torch.uint8, pin_memory=pinned)
    pixels.numpy()[...] = array
    pixels = pixels.to(processor.device, non_blocking=pinned)
    return processor(pil_resize(pixels, official_size(*image.size)))


def weights_fingerprint(directory: Path, sample_bytes: int = 1 << 20, samples: int = 16) -> str:
    """sha256 of the config/tokenizer files and a sample of every weight file.

    Hashing all ~4.4 GB of GME weights would take seconds at every start; the safetensors
    header plus evenly spaced 1 MiB samples tell any two fine-tunes apart in practice.
    """
    digest = hashlib.sha256()
    for name in ("config.json", "tokenizer.json", "preprocessor_config.json"):
        path = directory / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes())
    for path in sorted(directory.glob("*.safetensors")):
        size = path.stat().st_size
        digest.update(f"{path.name}\0{size}\0".encode())
        with path.open("rb") as handle:
            header_len = int.from_bytes(handle.read(8), "little")
            digest.update(handle.read(min(header_len, 100 << 20)))
            for i in range(samples):
                handle.seek(max(0, (size - sample_bytes) * i // max(1, samples - 1)))
                digest.update(handle.read(sample_bytes))
    return digest.hexdigest()


def _last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last real token, right for left and right padding alike."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return (attention_mask * positions).argmax(dim=1)


class GmeEmbedder:
    """GME-Qwen2-VL images and texts in one 1536-d space (``Embedder`` protocol)."""

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        device: str = "auto",
        dtype: torch.dtype | None = None,
        min_image_tokens: int = 256,
        max_image_tokens: int = 1280,
        max_length: int = 1800,
        batch_size: int = 16,
        padding_side: Literal["left", "right"] = "right",
        attn_implementation: str | None = None,
        preprocess_workers: int | None = None,
        preprocessor: Literal["auto", "fast", "reference", "device"] = "auto",
    ) -> None:
        self._configure(
            device,
            dtype,
            (min_image_tokens, max_image_tokens),
            max_length,
            batch_size,
            padding_side,
            preprocessor,
        )
        self._workers = preprocess_workers or min(8, os.cpu_count() or 1)
        path = _weights_dir(model_path)
        self.path: Path | None = path
        self.attn_implementation = attn_implementation or _default_attention(
            self.device, self.dtype
        )
        model, tokenizer, image_processor = self._load(path)
        self._attach(model, tokenizer, image_processor, weights_fingerprint(path))

    @classmethod
    def from_components(
        cls,
        model: Any,
        tokenizer: Any,
        *,
        weights_id: str,
        device: str = "auto",
        dtype: torch.dtype | None = None,
        min_image_tokens: int = 256,
        max_image_tokens: int = 1280,
        max_length: int = 1800,
        batch_size: int = 16,
        padding_side: Literal["left", "right"] = "right",
        preprocess_workers: int | None = None,
        preprocessor: Literal["auto", "fast", "reference", "device"] = "auto",
    ) -> GmeEmbedder:
        """Wrap a model built in memory (benchmarks with random weights) instead of loading one.

        ``weights_id`` stands in for the weight fingerprint in ``info.model_id``.
        """
        from transformers import Qwen2VLImageProcessorPil

        self = cls.__new__(cls)
        self._configure(
            device,
            dtype,
            (min_image_tokens, max_image_tokens),
            max_length,
            batch_size,
            padding_side,
            preprocessor,
        )
        self._workers = preprocess_workers or min(8, os.cpu_count() or 1)
        self.path = None
        self.attn_implementation = model.config._attn_implementation
        processor = Qwen2VLImageProcessorPil(
            min_pixels=min_image_tokens * TOKEN_PX * TOKEN_PX,
            max_pixels=max_image_tokens * TOKEN_PX * TOKEN_PX,
        )
        model = model.to(device=self.device, dtype=self.dtype).eval()
        self._attach(model, tokenizer, processor, weights_id)
        return self

    def _configure(
        self,
        device: str,
        dtype: torch.dtype | None,
        image_tokens: tuple[int, int],
        max_length: int,
        batch_size: int,
        padding_side: str,
        preprocessor: str = "auto",
    ) -> None:
        min_image_tokens, max_image_tokens = image_tokens
        if preprocessor not in PREPROCESSORS:
            raise ValueError(f"preprocessor must be one of {PREPROCESSORS}, not {preprocessor!r}")
        if not 1 <= min_image_tokens <= max_image_tokens:
            raise ValueError("need 1 <= min_image_tokens <= max_image_tokens")
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
        self.device = resolve_device(device)
        # bf16 keeps fp16's speed without its overflow risk; CPUs get exact fp32.
        self.dtype = dtype or (torch.bfloat16 if self.device.type == "cuda" else torch.float32)
        # auto: the image work goes where the model runs when that is a GPU, so the host's CPUs
        # only decode; on a CPU host the PIL + numpy path is the cheaper one.
        if preprocessor == "auto":
            preprocessor = "device" if self.device.type == "cuda" else "fast"
        self.preprocessor = preprocessor
        self.min_image_tokens, self.max_image_tokens = min_image_tokens, max_image_tokens
        self.max_length = max_length
        self.batch_size = max(1, batch_size)
        self.padding_side = padding_side
        self._pool: ThreadPoolExecutor | None = None
        self._prompt_cache: dict[str, list[int]] = {}

    def _attach(self, model: Any, tokenizer: Any, image_processor: Any, weights_id: str) -> None:
        self._model, self.tokenizer, self.image_processor = model, tokenizer, image_processor
        # the same pixel_values as the reference processor at a fraction of its CPU
        self._fast_processor = (
            FastQwen2VLImageProcessor.like(image_processor) if self.preprocessor == "fast" else None
        )
        if self.preprocessor != "device":  # both CPU paths resize with it (official_resize)
            pil_resample.compile_now()
        # ... or on the model's device, from the decoded uint8 pixels (both resizes included)
        self._device_processor = (
            DeviceQwen2VLImageProcessor.like(image_processor, self.device)
            if self.preprocessor == "device"
            else None
        )
        self.pad_token_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
        self.image_token_id = int(model.config.image_token_id)
        recipe = (
            f"{RECIPE}|{self.min_image_tokens}|{self.max_image_tokens}|{self.max_length}|"
            f"{self.dtype}"
        )
        model_id = hashlib.sha256(f"{recipe}|{weights_id}".encode()).hexdigest()
        self.info = EmbedderInfo(
            name="gme",
            model_id=f"gme:{model_id[:20]}",
            dim=int(model.config.text_config.hidden_size),
            dtype=str(self.dtype).removeprefix("torch."),
            device=str(self.device),
        )

    # --- loading ------------------------------------------------------------------------
    def _load(self, path: Path) -> tuple[Any, Any, Any]:
        from transformers import (
            AutoTokenizer,
            Qwen2VLForConditionalGeneration,
            Qwen2VLImageProcessorPil,
        )

        try:
            model, loading = Qwen2VLForConditionalGeneration.from_pretrained(
                path,
                dtype=self.dtype,
                attn_implementation=self.attn_implementation,
                local_files_only=True,
                output_loading_info=True,
            )
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            # The PIL processor: no torchvision needed, and it is what the official
            # (slow, PIL) Qwen2-VL processor computed.
            image_processor = Qwen2VLImageProcessorPil.from_pretrained(
                path,
                local_files_only=True,
                min_pixels=self.min_image_tokens * TOKEN_PX * TOKEN_PX,
                max_pixels=self.max_image_tokens * TOKEN_PX * TOKEN_PX,
            )
        except (OSError, ValueError) as exc:
            raise GmeLoadError(f"cannot load GME from {path}: {exc}") from exc
        # lm_head is unused (no generation); anything else missing would embed with random
        # weights and yield plausible-looking garbage, so refuse.
        missing = [k for k in loading["missing_keys"] if not k.startswith("lm_head")]
        if missing:
            raise GmeLoadError(f"{path}: weights missing for {sorted(missing)[:5]} …")
        if image_processor.size.shortest_edge != self.min_image_tokens * TOKEN_PX * TOKEN_PX:
            raise GmeLoadError("image processor ignored min_pixels; unsupported transformers")
        model.eval().to(self.device)
        return model, tokenizer, image_processor

    def close(self) -> None:
        """Stop the preprocessing threads (the model stays usable; threads restart lazily)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # --- public API ---------------------------------------------------------------------
    def embed_images(self, images: Sequence[Image]) -> np.ndarray:
        """float32 [n, dim] unit rows; images are corpus items (default instruction)."""
        if not images:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        # Similar sizes share a batch, so rows carry little padding; output keeps input order.
        order = sorted(range(len(images)), key=lambda i: self._image_tokens(images[i]))
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        out = np.empty((len(images), self.info.dim), dtype=np.float32)
        pending = self._prefetch([images[i] for i in batches[0]])
        for k, indices in enumerate(batches):
            prepared = pending()
            if k + 1 < len(batches):  # the next batch is preprocessed while this one runs
                pending = self._prefetch([images[i] for i in batches[k + 1]])
            out[indices] = self.embed_inputs(self._collate_images(prepared))
        return out

    def embed_texts(self, texts: Sequence[str], instruction: str = QUERY_INSTRUCTION) -> np.ndarray:
        """float32 [m, dim] unit rows; ``instruction`` goes in the system turn."""
        if not texts:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        out = [
            self.embed_inputs(self.prepare_texts(texts[i : i + self.batch_size], instruction))
            for i in range(0, len(texts), self.batch_size)
        ]
        return np.concatenate(out, axis=0)

    def prepare_images(self, images: Sequence[Image]) -> GmeInputs:
        """Preprocess and tokenise one batch of images, in the given order."""
        return self._collate_images(self._prefetch(list(images))())

    def prepare_texts(
        self, texts: Sequence[str], instruction: str = QUERY_INSTRUCTION
    ) -> GmeInputs:
        """Tokenise one batch of queries; over-long texts are cut inside their content."""
        prompts = [_PROMPT.format(instruction=instruction, content=t) for t in texts]
        rows = self.tokenizer(prompts)["input_ids"]
        if any(self.image_token_id in row for row in rows):
            raise ValueError("a text contains the <|image_pad|> token; GME texts cannot")
        for i, row in enumerate(rows):
            if len(row) > self.max_length:
                head, tail = self._text_frame(instruction)
                budget = self.max_length - len(head) - len(tail)
                content = self.tokenizer(texts[i])["input_ids"][: max(0, budget)]
                rows[i] = head + content + tail
        return self._pad(rows)

    @torch.inference_mode()
    def embed_inputs(self, inputs: GmeInputs) -> np.ndarray:
        """One forward: float32 [b, dim] unit rows on the CPU."""
        return l2_normalise(self._forward(inputs).float().cpu().numpy())

    # --- preprocessing ------------------------------------------------------------------
    def _prefetch(self, images: list[Image]) -> Callable[[], list[tuple[np.ndarray, np.ndarray]]]:
        """Start preprocessing ``images`` on worker threads; the result waits for them, in order.

        PIL and numpy release the GIL, so threads scale; only one batch ahead is in flight,
        which bounds memory however many images a caller passes.
        """
        if self._workers <= 1 or len(images) <= 1:
            return lambda: [self._preprocess_image(image) for image in images]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="gme-preprocess")
        futures = [self._pool.submit(self._preprocess_image, image) for image in images]
        return lambda: [future.result() for future in futures]

    def _image_tokens(self, image: Image) -> int:
        """Visual tokens the image will get, from its size alone (for size-sorting)."""
        width, height = _padded_size(*image.size)
        h, w = _smart_resize(height, width, _FETCH_MIN_PIXELS, _FETCH_MAX_PIXELS)
        lo, hi = (n * TOKEN_PX * TOKEN_PX for n in (self.min_image_tokens, self.max_image_tokens))
        h, w = _smart_resize(h, w, lo, hi)
        return (h // TOKEN_PX) * (w // TOKEN_PX)

    def _preprocess_image(self, image: Image) -> tuple[np.ndarray | torch.Tensor, np.ndarray]:
        """(patches float32 [t·h·w, 1176], grid [3]) for one image; the patches are a tensor on
        the model's device with the device preprocessor, else a numpy array."""
        if self._device_processor is not None:
            return preprocess_on_device(image, self._device_processor)
        if self._fast_processor is not None:
            return self._fast_processor(official_resize_pixels(image))
        out = self.image_processor(images=[official_resize(image)], return_tensors="np")
        return out["pixel_values"], out["image_grid_thw"][0]

    def _collate_images(self, prepared: list[tuple[np.ndarray, np.ndarray]]) -> GmeInputs:
        template = self._cached_ids(
            _PROMPT.format(instruction=DEFAULT_IMAGE_INSTRUCTION, content=_IMAGE_CONTENT)
        )
        slot = template.index(self.image_token_id)
        rows = []
        for _, grid in prepared:
            n_tokens = int(np.prod(grid)) // 4
            rows.append(template[:slot] + [self.image_token_id] * n_tokens + template[slot + 1 :])
        batch = self._pad(rows)
        grids = torch.from_numpy(np.stack([g for _, g in prepared]).astype(np.int64))
        if isinstance(prepared[0][0], torch.Tensor):  # device preprocessing: already there
            pixels = torch.cat([p for p, _ in prepared], dim=0)
            return GmeInputs(batch.input_ids, batch.attention_mask, pixels, grids)
        # Gathered straight into page-locked memory on CUDA hosts: one host copy, then a DMA.
        total = sum(p.shape[0] for p, _ in prepared)
        pin = self.device.type == "cuda"
        pixels = torch.empty((total, prepared[0][0].shape[1]), dtype=torch.float32, pin_memory=pin)
        np.concatenate([p for p, _ in prepared], axis=0, out=pixels.numpy())
        return GmeInputs(batch.input_ids, batch.attention_mask, pixels, grids)

    def _cached_ids(self, text: str) -> list[int]:
        """Token ids of a fixed string (prompt templates and frames), tokenised once."""
        if text not in self._prompt_cache:
            self._prompt_cache[text] = list(self.tokenizer(text)["input_ids"])
        return self._prompt_cache[text]

    def _text_frame(self, instruction: str) -> tuple[list[int], list[int]]:
        """Token ids before and after a query's content, for cutting over-long texts."""
        head, _, tail = _PROMPT.format(instruction=instruction, content="\0").partition("\0")
        return self._cached_ids(head), self._cached_ids(tail)

    def _pad(self, rows: list[list[int]]) -> GmeInputs:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            span = (
                slice(width - len(row), width) if self.padding_side == "left" else slice(len(row))
            )
            ids[i, span] = torch.tensor(row, dtype=torch.long)
            mask[i, span] = 1
        return GmeInputs(ids, mask)

    # --- model --------------------------------------------------------------------------
    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.device.type == self.device.type and self.device.index in (
            None,
            tensor.device.index,
        ):
            return tensor  # already there (device preprocessing)
        if self.device.type == "cuda":
            # From page-locked memory the copy is a DMA that does not block the host thread.
            pinned = tensor if tensor.is_pinned() else tensor.pin_memory()
            return pinned.to(self.device, non_blocking=True)
        return tensor.to(self.device)

    def _forward(self, inputs: GmeInputs) -> torch.Tensor:
        """The official recipe: embed, scatter vision features, 1-D-position decoder, pool."""
        core = self._model.model
        input_ids = self._to_device(inputs.input_ids)
        mask = self._to_device(inputs.attention_mask)
        embeds = core.get_input_embeddings()(input_ids)
        slots = int((inputs.input_ids == self.image_token_id).sum())
        if slots != sum(inputs.image_token_counts):
            raise ValueError(
                f"{slots} <|image_pad|> tokens for {inputs.image_token_counts} features"
            )
        if inputs.pixel_values is not None and inputs.image_grid_thw is not None:
            features = self._vision_features(inputs.pixel_values, inputs.image_grid_thw)
            image_slots = (input_ids == self.image_token_id).unsqueeze(-1)
            embeds = embeds.masked_scatter(image_slots, features.to(embeds.dtype))
        # Positions count real tokens only: equal to the official arange for right padding,
        # and what keeps a left-padded row equal to its unpadded self.
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        full = bool(inputs.attention_mask.all())  # CPU copy: no device sync
        hidden = core.language_model(
            inputs_embeds=embeds,
            attention_mask=None if full else mask,  # None lets sdpa take its causal fast path
            position_ids=positions,
            use_cache=False,
        ).last_hidden_state
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), _last_token_index(mask)]

    def _vision_features(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> torch.Tensor:
        """Merged visual tokens [Σ t·h·w/4, hidden], equal to ``visual(...).pooler_output``."""
        visual = self._model.model.visual
        pixels = self._to_device(pixel_values).to(visual.dtype)
        if "flash" in self.attn_implementation:
            # transformers' own vision path is already varlen flash-attention here.
            return visual(pixels, grid_thw=grid_thw.to(self.device)).pooler_output
        from transformers.models.qwen2_vl.modeling_qwen2_vl import apply_rotary_pos_emb_vision
        from transformers.vision_utils import get_vision_position_ids

        seqlens = (grid_thw[:, 1] * grid_thw[:, 2]).repeat_interleave(grid_thw[:, 0]).tolist()
        positions = get_vision_position_ids(grid_thw, visual.spatial_merge_size).to(self.device)
        # A stride-equals-kernel Conv3d is a matmul over flattened patches; as one it skips
        # the slow 3-D convolution kernels (cuDNN and oneDNN alike).
        weight = visual.patch_embed.proj.weight
        hidden = F.linear(pixels.view(pixels.shape[0], -1), weight.view(weight.shape[0], -1))
        cos, sin = visual.rotary_pos_emb(hidden, positions)
        for block in visual.blocks:
            attn = block.attn
            qkv = attn.qkv(block.norm1(hidden)).reshape(hidden.shape[0], 3, attn.num_heads, -1)
            q, k, v = qkv.unbind(1)
            q, k = apply_rotary_pos_emb_vision(q, k, cos, sin)
            hidden = hidden + attn.proj(_grouped_attention(q, k, v, seqlens, attn.scaling))
            hidden = hidden + block.mlp(block.norm2(hidden))
        return visual.merger(hidden)


def _grouped_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, seqlens: list[int], scale: float
) -> torch.Tensor:
    """Bidirectional attention within each image; q/k/v [N, heads, d] packed image after image.

    transformers' sdpa path loops over images (one small kernel per image and layer); images
    of equal size (sorted together by ``embed_images``) go through one batched call instead.
    """
    outputs, start = [], 0
    for length, run in itertools.groupby(seqlens):
        count = len(list(run))
        end = start + count * length
        qs, ks, vs = (
            t[start:end].view(count, length, *t.shape[1:]).transpose(1, 2) for t in (q, k, v)
        )
        out = F.scaled_dot_product_attention(qs, ks, vs, scale=scale)
        outputs.append(out.transpose(1, 2).reshape(count * length, -1))
        start = end
    return torch.cat(outputs) if len(outputs) > 1 else outputs[0]


def _weights_dir(model_path: str | os.PathLike[str] | None) -> Path:
    if model_path is None:
        from moderation.config import get_settings

        model_path = get_settings().gme_path
    if model_path is None:
        raise GmeLoadError(
            "no GME weights directory: set MODERATION_GME_PATH "
            "(fetch one with `moderation models pull gme --to DIR`)"
        )
    path = Path(model_path).expanduser()
    if not (path / "config.json").is_file():
        raise GmeLoadError(f"{path} is not a GME weights directory (no config.json)")
    return path


def _default_attention(device: torch.device, dtype: torch.dtype) -> str:
    """flash-attention 2 where installed and usable, else PyTorch sdpa."""
    if device.type == "cuda" and dtype in (torch.float16, torch.bfloat16):
        from transformers.utils import is_flash_attn_2_available

        if is_flash_attn_2_available():
            return "flash_attention_2"
    return "sdpa"
