"""GME image preprocessing on the model's device: Pillow's exact bicubic resize in torch.

On a GPU host the CPUs should only decode, hash and write; at 1920×1080 the two PIL bicubic
resizes of the GME recipe (``gme.official_resize``, then the Qwen2-VL processor's) cost ~55 ms
of CPU per image even with ``FastQwen2VLImageProcessor``. Here the decoded uint8 pixels go to
the device and everything after the decode runs there:

* ``pil_resize`` replays Pillow's ``ImagingResample`` for 8-bit images: the same filter weights
  (computed in float64 exactly as ``precompute_coeffs`` does), the same 22-bit fixed-point
  coefficients (``normalize_coeffs_8bpc``), integer accumulation from ``1 << 21``, a horizontal
  pass rounded to uint8, then a vertical pass, each skipped where that side keeps its size. All
  integer arithmetic: the resized pixels are **identical** to ``Image.resize(size, BICUBIC)``, on
  any device;
* ``DeviceQwen2VLImageProcessor`` then patchifies the uint8 image and maps each byte through
  ``FastQwen2VLImageProcessor``'s per-channel float32 table (the reference's exact rescale and
  normalise arithmetic).

So ``pixel_values`` equal transformers' ``Qwen2VLImageProcessorPil`` bit for bit, not only within
bf16 tolerance (``tests/moderation/embedders/test_qwen2vl_device.py`` checks it with torch on the
CPU; its ``gpu``-marked twin on CUDA). ``GmeEmbedder`` uses it when it runs on CUDA
(``MODERATION_GME_PREPROCESSOR=auto``), or by ``device``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from .qwen2vl_image import FastQwen2VLImageProcessor

__all__ = ["DeviceQwen2VLImageProcessor", "pil_bicubic_coefficients", "pil_resize"]

_PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed point for 8-bit images
_BICUBIC_SUPPORT = 2.0


def _bicubic(x: np.ndarray) -> np.ndarray:
    """Pillow's ``bicubic_filter`` (a = -0.5), the same float64 operations in the same order."""
    x = np.abs(x)
    a = -0.5
    near = (((a + 2.0) * x - (a + 3.0)) * x) * x + 1
    far = ((((x - 5) * x) + 8) * x - 4) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


@lru_cache(maxsize=512)
def pil_bicubic_coefficients(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(source index int64 [out, k], fixed-point weight int32 [out, k]) of Pillow's bicubic
    resample of one axis from ``in_size`` to ``out_size`` pixels (box = the whole image).

    ``precompute_coeffs`` + ``normalize_coeffs_8bpc``: unused taps carry weight 0 and a valid
    index.
    """
    if in_size < 1 or out_size < 1:
        raise ValueError("sizes must be positive")
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = _BICUBIC_SUPPORT * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    center = (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    # C's (int) truncates toward zero; negatives are clamped to 0 right after, as there.
    xmin = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)
    xmax = np.minimum(np.trunc(center + support + 0.5).astype(np.int64), in_size) - xmin
    taps = np.arange(ksize, dtype=np.int64)
    used = taps[None, :] < xmax[:, None]
    # (x + xmin - center + 0.5) * ss, with ss = 1 / filterscale, as in precompute_coeffs
    position = (taps[None, :] + xmin[:, None]).astype(np.float64) - center[:, None] + 0.5
    weights = _bicubic(position * (1.0 / filterscale))
    weights = np.where(used, weights, 0.0)
    total = np.zeros(out_size, dtype=np.float64)
    for k in range(ksize):  # sequential, as the C loop adds them
        total += weights[:, k]
    nonzero = total != 0.0
    weights = np.where(nonzero[:, None], weights / np.where(nonzero, total, 1.0)[:, None], weights)
    scaled = weights * (1 << _PRECISION_BITS)
    fixed = np.trunc(np.where(weights < 0, scaled - 0.5, scaled + 0.5)).astype(np.int32)
    index = np.minimum(xmin[:, None] + taps[None, :], in_size - 1)
    return index, fixed


@lru_cache(maxsize=512)
def _device_coefficients(
    in_size: int, out_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    index, fixed = pil_bicubic_coefficients(in_size, out_size)
    return (
        torch.from_numpy(index.T.copy()).to(device),  # [k, out]
        torch.from_numpy(fixed.T.copy()).to(device),
    )


def _resample_axis(pixels: torch.Tensor, dim: int, out_size: int) -> torch.Tensor:
    """One Pillow pass along ``dim`` of a uint8 [H, W, C] tensor: Σ pixel × fixed weight from
    ``1 << 21`` in int32 (Pillow's ``int``: |Σ| ≤ 255 · Σ|w| · 2²² stays below 2³¹ for bicubic
    weights), ``>> 22``, clipped to 0..255."""
    index, fixed = _device_coefficients(pixels.shape[dim], out_size, pixels.device)
    shape = [1, 1, 1]
    shape[dim] = out_size
    out_shape = list(pixels.shape)
    out_shape[dim] = out_size
    acc = torch.full(out_shape, 1 << (_PRECISION_BITS - 1), dtype=torch.int32, device=pixels.device)
    wide = pixels.to(torch.int32)
    for k in range(index.shape[0]):  # two kernels a tap: the launches are the host's cost
        acc.addcmul_(wide.index_select(dim, index[k]), fixed[k].view(shape))
    return (acc >> _PRECISION_BITS).clamp_(0, 255).to(torch.uint8)


@lru_cache(maxsize=1)
def _pillow_reduces_height_first() -> bool:
    """Whether the installed Pillow resamples vertically first when the height shrinks by more
    than twice as many pixels as the width (Pillow ≥ 13; earlier ones always go horizontal
    first). Asked of Pillow itself once, on a 100×100 → 98×95 probe, where the orders differ."""
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(pixels).resize((98, 95), Image.Resampling.BICUBIC))
    horizontal_first = _resample_axis(_resample_axis(torch.from_numpy(pixels), 1, 98), 0, 95)
    return not np.array_equal(horizontal_first.numpy(), expected)


def pil_resize(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``Image.fromarray(pixels).resize(size, BICUBIC)`` for a uint8 [H, W, C] tensor on any
    device, pixel for pixel: two passes, each rounded to uint8, in the installed Pillow's order
    (horizontal first, unless the height shrinks by more than twice as many pixels as the width
    and that Pillow does those vertically first); a side that keeps its size is not resampled
    (as ``ImagingResampleInner``)."""
    if pixels.dtype != torch.uint8 or pixels.dim() != 3:
        raise ValueError("pil_resize takes a uint8 [H, W, C] tensor")
    width, height = size
    in_height, in_width = int(pixels.shape[0]), int(pixels.shape[1])
    if (
        width != in_width
        and height < in_height
        and in_height - height > 2 * (in_width - width)
        and _pillow_reduces_height_first()
    ):
        return _resample_axis(_resample_axis(pixels, 0, height), 1, width)
    if width != in_width:
        pixels = _resample_axis(pixels, 1, width)
    if height != in_height:
        pixels = _resample_axis(pixels, 0, height)
    return pixels


class DeviceQwen2VLImageProcessor:
    """``FastQwen2VLImageProcessor`` on a torch device: uint8 [H, W, 3] tensor →
    (``pixel_values`` float32 [t·h·w, C·T·P·P] on that device, ``grid`` int64 [3] numpy)."""

    def __init__(self, fast: FastQwen2VLImageProcessor, device: torch.device | str) -> None:
        self.fast = fast
        self.device = torch.device(device)
        self._table = torch.from_numpy(fast._table).to(self.device)  # float32 [3, 256]
        self._channels = torch.arange(3, device=self.device).view(1, 3, 1)

    @classmethod
    def like(cls, reference: Any, device: torch.device | str) -> DeviceQwen2VLImageProcessor:
        """The device twin of a transformers ``Qwen2VLImageProcessor(Pil)``."""
        return cls(FastQwen2VLImageProcessor.like(reference), device)

    def __call__(self, pixels: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        fast = self.fast
        height, width = int(pixels.shape[0]), int(pixels.shape[1])
        grid_h, grid_w = fast.grid(width, height)
        p, m, t = fast.patch_size, fast.merge_size, fast.temporal_patch_size
        pixels = pil_resize(pixels.to(self.device), (grid_w * p, grid_h * p))
        # the reference's patch order, on the uint8 pixels (see FastQwen2VLImageProcessor)
        blocks = pixels.reshape(grid_h // m, m, p, grid_w // m, m, p, 3)
        patches = blocks.permute(0, 3, 1, 4, 6, 2, 5).reshape(grid_h * grid_w, 3, p * p)
        values = self._table[self._channels, patches.long()]  # [n, 3, p·p]
        out = values.unsqueeze(2).expand(-1, -1, t, -1).reshape(grid_h * grid_w, 3 * t * p * p)
        return out, np.array([1, grid_h, grid_w], dtype=np.int64)
