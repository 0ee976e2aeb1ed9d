"""GME image preprocessing on the model's device: Pillow's exact bicubic resize in torch.

On a GPU host the CPUs should only decode, hash and write; at 1920×1080 the GME recipe's
preprocessing (two bicubic resizes, ``gme.official_resize`` then the Qwen2-VL processor's, the
rescale and the patch layout) still costs ~16 ms of CPU per image on the fast CPU path (~77 ms
with Pillow and transformers). Here the decoded uint8 pixels go to the device and everything
after the decode runs there:

* ``pil_resize`` replays Pillow's ``ImagingResample`` for 8-bit images (as ``pil_resample``
  does on the CPU, from the same coefficients): the same filter weights (computed in float64
  exactly as ``precompute_coeffs`` does), the same 22-bit fixed-point coefficients
  (``normalize_coeffs_8bpc``), integer accumulation from ``1 << 21``, two passes in the
  installed Pillow's order, each rounded to uint8 and skipped where that side keeps its size. All
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

from functools import lru_cache
from typing import Any

import numpy as np
import torch

from .pil_resample import PRECISION_BITS, pil_bicubic_coefficients, vertical_first
from .qwen2vl_image import FastQwen2VLImageProcessor

__all__ = ["DeviceQwen2VLImageProcessor", "pil_resize"]


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
    acc = torch.full(out_shape, 1 << (PRECISION_BITS - 1), dtype=torch.int32, device=pixels.device)
    wide = pixels.to(torch.int32)
    for k in range(index.shape[0]):  # two kernels a tap: the launches are the host's cost
        acc.addcmul_(wide.index_select(dim, index[k]), fixed[k].view(shape))
    return (acc >> PRECISION_BITS).clamp_(0, 255).to(torch.uint8)


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
    if vertical_first((in_width, in_height), (width, height)):
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
