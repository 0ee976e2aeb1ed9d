"""A fast, exact Qwen2-VL image preprocessor (what GME feeds its vision tower).

transformers' ``Qwen2VLImageProcessorPil`` resizes with PIL, then rescales in float64,
normalises in float32 and patchifies float32 arrays: about 4.5 ms of CPU per image at 448²,
11 ms at 640×480 and 66 ms at 1920×1080 on this project's reference machine, on the CPUs that
must keep a GPU fed.

``FastQwen2VLImageProcessor`` gives the same ``pixel_values`` and ``image_grid_thw``:

* the same resize — transformers' ``smart_resize`` bounds and Pillow's BICUBIC on the uint8
  RGB image, replayed exactly by ``pil_resample.resize`` (vectorised: a third of Pillow's CPU),
  so the resized pixels are identical;
* rescale and normalise as a lookup table: a channel's float32 value depends only on its uint8
  byte, so the table holds, per channel and byte, exactly what
  ``((float32(float64(v) × scale)) − mean) / std`` computes in float32 — bit-identical;
* patchify on the uint8 array (one quarter of the bytes), then one table gather per channel
  straight into the output, the temporal copy written twice instead of broadcast.

No per-pixel Python. ``tests/moderation/embedders/test_qwen2vl_image.py`` holds it equal to the
reference on a corpus of sizes and aspect ratios; ``benchmarks/bench_scoring.py --preprocess``
prints the CPU per image of both.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image

from . import pil_resample

__all__ = ["FastQwen2VLImageProcessor", "qwen2vl_smart_resize"]


def qwen2vl_smart_resize(
    height: int, width: int, factor: int, min_pixels: int, max_pixels: int
) -> tuple[int, int]:
    """transformers' ``qwen2_vl`` ``smart_resize``: sides multiples of ``factor``, area within
    the bounds; aspect ratios above 200 raise ``ValueError`` as there."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(
            f"absolute aspect ratio must be smaller than 200, got "
            f"{max(height, width) / min(height, width)}"
        )
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


class FastQwen2VLImageProcessor:
    """One image → (``pixel_values`` float32 [t·h·w, C·T·P·P], ``grid`` int64 [3])."""

    def __init__(
        self,
        *,
        min_pixels: int,
        max_pixels: int,
        image_mean: tuple[float, ...],
        image_std: tuple[float, ...],
        rescale_factor: float = 1 / 255,
        patch_size: int = 14,
        merge_size: int = 2,
        temporal_patch_size: int = 2,
        resample: int = Image.Resampling.BICUBIC,
    ) -> None:
        if len(image_mean) != 3 or len(image_std) != 3:
            raise ValueError("image_mean and image_std need one value per RGB channel")
        self.min_pixels, self.max_pixels = int(min_pixels), int(max_pixels)
        self.patch_size, self.merge_size = int(patch_size), int(merge_size)
        self.temporal_patch_size = int(temporal_patch_size)
        self.resample = int(resample)
        # The reference's arithmetic, replayed once per byte value: float64 rescale, cast to
        # float32, then (x - mean) / std in float32 with float32 mean and std.
        rescaled = (np.arange(256, dtype=np.float64) * rescale_factor).astype(np.float32)
        mean = np.asarray(image_mean, dtype=np.float32)
        std = np.asarray(image_std, dtype=np.float32)
        self._table = ((rescaled[None, :] - mean[:, None]) / std[:, None]).astype(np.float32)

    @classmethod
    def like(cls, reference: Any) -> FastQwen2VLImageProcessor:
        """The fast twin of a transformers ``Qwen2VLImageProcessor(Pil)`` (its bounds, mean,
        std, rescale factor and patch layout); ``ValueError`` where it would not be exact."""
        if not (reference.do_resize and reference.do_rescale and reference.do_normalize):
            raise ValueError("only the resize + rescale + normalise configuration is supported")
        return cls(
            min_pixels=reference.size.shortest_edge,
            max_pixels=reference.size.longest_edge,
            image_mean=tuple(reference.image_mean),
            image_std=tuple(reference.image_std),
            rescale_factor=reference.rescale_factor,
            patch_size=reference.patch_size,
            merge_size=reference.merge_size,
            temporal_patch_size=reference.temporal_patch_size,
            resample=int(reference.resample),
        )

    def _resized_size(self, width: int, height: int) -> tuple[int, int]:
        grid_h, grid_w = self.grid(width, height)
        return grid_w * self.patch_size, grid_h * self.patch_size

    def _resize(self, pixels: np.ndarray) -> np.ndarray:
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError("pixels must be uint8 [H, W, 3] (RGB)")
        size = self._resized_size(pixels.shape[1], pixels.shape[0])
        if (pixels.shape[1], pixels.shape[0]) == size:
            return pixels
        if self.resample == Image.Resampling.BICUBIC:
            return pil_resample.resize_pixels(pixels, size)  # Pillow's BICUBIC, pixel for pixel
        return np.asarray(Image.fromarray(pixels).resize(size, self.resample))

    def grid(self, width: int, height: int) -> tuple[int, int]:
        """(grid height, grid width) in patches for an image of this size."""
        h, w = qwen2vl_smart_resize(
            height, width, self.patch_size * self.merge_size, self.min_pixels, self.max_pixels
        )
        return h // self.patch_size, w // self.patch_size

    def __call__(self, image: Image.Image | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``image``: a PIL image (any mode) or its RGB pixels, uint8 [H, W, 3]."""
        if isinstance(image, Image.Image):
            image = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        pixels = self._resize(image)  # [H, W, 3] uint8
        grid_h, grid_w = pixels.shape[0] // self.patch_size, pixels.shape[1] // self.patch_size
        p, m, t = self.patch_size, self.merge_size, self.temporal_patch_size
        # (H/m/p, m, p, W/m/p, m, p, C) → (H/m/p, W/m/p, m, m, C, p, p): the reference order
        blocks = pixels.reshape(grid_h // m, m, p, grid_w // m, m, p, 3)
        patches = blocks.transpose(0, 3, 1, 4, 6, 2, 5).reshape(grid_h * grid_w, 3, p * p)
        out = np.empty((grid_h * grid_w, 3, t, p * p), dtype=np.float32)
        for channel in range(3):
            values = self._table[channel].take(patches[:, channel])
            for frame in range(t):
                out[:, channel, frame] = values
        grid = np.array([1, grid_h, grid_w], dtype=np.int64)
        return out.reshape(grid_h * grid_w, 3 * t * p * p), grid
