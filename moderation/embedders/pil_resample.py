"""Pillow's bicubic resize of 8-bit images, pixel for pixel, in about a third of its CPU time.

GME's recipe resizes every image twice with PIL BICUBIC (``gme.official_resize`` to 28-px
multiples, then the Qwen2-VL processor's ``smart_resize``): at 1920×1080 those two calls are
~45 ms of the ~65 ms a CPU spends preparing one image. Pillow's ``ImagingResample`` is scalar C;
this module replays its arithmetic exactly and lets LLVM vectorise it (numba):

* the filter weights are Pillow's (``precompute_coeffs``: the same float64 operations in the
  same order), turned into the same 22-bit fixed-point integers (``normalize_coeffs_8bpc``);
* each pass sums ``pixel × weight`` in int32 from ``1 << 21``, shifts by 22 and clips to
  0..255 — integer arithmetic, so the order of the additions cannot change a result;
* the passes run in the installed Pillow's order (horizontal first, unless the height shrinks
  by more than twice as many pixels as the width and Pillow ≥ 13 does those vertically first;
  asked of Pillow once), each rounded to uint8, and a side that keeps its size is not
  resampled.

So the output equals ``Image.fromarray(pixels).resize(size, BICUBIC)`` bit for bit
(``tests/moderation/embedders/test_pil_resample.py``). The vertical pass is a weighted sum of
whole rows (contiguous, vectorised as is); the horizontal pass gathers blocks of 32 rows
column-major into a small buffer first, so that it too sums contiguous vectors.

Without numba (it ships with the ``gme`` extra), ``resize`` calls Pillow itself: the same
pixels, at Pillow's speed. ``qwen2vl_device`` runs the same arithmetic in torch on a GPU.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image

try:  # the gme extra ships numba; without it Pillow does the work (same pixels, slower)
    from numba import njit
except ImportError:  # pragma: no cover - exercised only where numba is absent
    njit = None

__all__ = [
    "HAVE_FAST_RESIZE",
    "compile_now",
    "pil_bicubic_coefficients",
    "pillow_reduces_height_first",
    "resize",
    "resize_pixels",
]

PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed point for 8-bit images
_BICUBIC_SUPPORT = 2.0
_ROWS = 32  # rows per block of the horizontal pass (its buffer: width × 32 × channels bytes)
HAVE_FAST_RESIZE = njit is not None


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
    scaled = weights * (1 << PRECISION_BITS)
    fixed = np.trunc(np.where(weights < 0, scaled - 0.5, scaled + 0.5)).astype(np.int32)
    index = np.minimum(xmin[:, None] + taps[None, :], in_size - 1)
    return index, fixed


def _numpy_pass(pixels: np.ndarray, axis: int, out_size: int) -> np.ndarray:
    """One pass in plain numpy (whole-array temporaries: for small probes only)."""
    index, fixed = pil_bicubic_coefficients(pixels.shape[axis], out_size)
    taken = np.take(pixels.astype(np.int64), index, axis=axis)  # axis → (out, k)
    shape = [1] * taken.ndim
    shape[axis], shape[axis + 1] = fixed.shape
    summed = (taken * fixed.reshape(shape)).sum(axis=axis + 1) + (1 << (PRECISION_BITS - 1))
    return np.clip(summed >> PRECISION_BITS, 0, 255).astype(np.uint8)


@lru_cache(maxsize=1)
def pillow_reduces_height_first() -> bool:
    """Whether the installed Pillow resamples vertically first when the height shrinks by more
    than twice as many pixels as the width (Pillow ≥ 13; earlier ones always go horizontal
    first). Asked of Pillow itself once, on a 100×100 → 98×95 probe, where the orders differ."""
    pixels = np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(pixels).resize((98, 95), Image.Resampling.BICUBIC))
    horizontal_first = _numpy_pass(_numpy_pass(pixels, 1, 98), 0, 95)
    return not np.array_equal(horizontal_first, expected)


def vertical_first(in_size: tuple[int, int], size: tuple[int, int]) -> bool:
    """Whether Pillow resamples ``in_size`` → ``size`` (width, height) vertically first."""
    (in_width, in_height), (width, height) = in_size, size
    return (
        width != in_width
        and height < in_height
        and in_height - height > 2 * (in_width - width)
        and pillow_reduces_height_first()
    )


if njit is not None:

    @njit(nogil=True, boundscheck=False, cache=False)
    def _rows_pass(src, index, fixed, out):  # type: ignore[no-untyped-def]
        """out[o, :] = Pillow's weighted sum of src rows index[o, :] (uint8 [rows, n])."""
        n = src.shape[1]
        acc = np.empty(n, np.int32)
        half = np.int32(1 << (PRECISION_BITS - 1))
        for o in range(out.shape[0]):
            for j in range(n):
                acc[j] = half
            for k in range(index.shape[1]):
                w = fixed[o, k]
                row = src[index[o, k]]
                for j in range(n):
                    acc[j] += np.int32(row[j]) * w
            for j in range(n):
                v = acc[j] >> PRECISION_BITS
                out[o, j] = 0 if v < 0 else (255 if v > 255 else v)

    @njit(nogil=True, boundscheck=False, cache=False)
    def _columns_pass(src, index, fixed, out, rows):  # type: ignore[no-untyped-def]
        """The horizontal pass of uint8 [H, W, C] → [H, W', C], ``rows`` rows at a time: each
        block is transposed into a column-major buffer [W, rows·C], whose rows ``_rows_pass``
        then sums like the vertical pass's (contiguous bytes), and written back row by row. A
        last, shorter block leaves the buffer's tail as it was: summed, never written back."""
        height, width, channels = src.shape
        buf = np.zeros((width, rows * channels), np.uint8)
        res = np.empty((out.shape[1], rows * channels), np.uint8)
        for top in range(0, height, rows):
            count = min(rows, height - top)
            for r in range(count):
                if channels == 3:  # spelt out: a loop of a run-time length is not unrolled
                    for x in range(width):
                        buf[x, r * 3] = src[top + r, x, 0]
                        buf[x, r * 3 + 1] = src[top + r, x, 1]
                        buf[x, r * 3 + 2] = src[top + r, x, 2]
                else:
                    for x in range(width):
                        for c in range(channels):
                            buf[x, r * channels + c] = src[top + r, x, c]
            _rows_pass(buf, index, fixed, res)
            for r in range(count):
                if channels == 3:
                    for o in range(out.shape[1]):
                        out[top + r, o, 0] = res[o, r * 3]
                        out[top + r, o, 1] = res[o, r * 3 + 1]
                        out[top + r, o, 2] = res[o, r * 3 + 2]
                else:
                    for o in range(out.shape[1]):
                        for c in range(channels):
                            out[top + r, o, c] = res[o, r * channels + c]


def _horizontal(pixels: np.ndarray, width: int) -> np.ndarray:
    index, fixed = pil_bicubic_coefficients(pixels.shape[1], width)
    out = np.empty((pixels.shape[0], width, pixels.shape[2]), dtype=np.uint8)
    _columns_pass(pixels, index, fixed, out, _ROWS)
    return out


def _vertical(pixels: np.ndarray, height: int) -> np.ndarray:
    index, fixed = pil_bicubic_coefficients(pixels.shape[0], height)
    rows = pixels.reshape(pixels.shape[0], -1)
    out = np.empty((height, rows.shape[1]), dtype=np.uint8)
    _rows_pass(rows, index, fixed, out)
    return out.reshape(height, *pixels.shape[1:])


def resize_pixels(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``np.asarray(Image.fromarray(pixels).resize(size, BICUBIC))`` for a uint8 [H, W, C]
    array of RGB (or one grey channel), pixel for pixel (``size`` is (width, height), as
    PIL's)."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
        # (Pillow resizes RGBA premultiplied by alpha: that is not replayed here)
        raise ValueError("resize_pixels takes a uint8 [H, W, C] array of 1 (L) or 3 (RGB) channels")
    width, height = size
    if width < 1 or height < 1:
        raise ValueError(f"size must be positive, got {size}")
    pixels = np.ascontiguousarray(pixels)
    if not HAVE_FAST_RESIZE:
        image = Image.fromarray(pixels if pixels.shape[2] == 3 else pixels[..., 0])
        resized = np.asarray(image.resize(size, Image.Resampling.BICUBIC))
        return resized.reshape(height, width, pixels.shape[2])
    in_size = (pixels.shape[1], pixels.shape[0])
    if vertical_first(in_size, size):
        return _horizontal(_vertical(pixels, height), width)
    if width != in_size[0]:
        pixels = _horizontal(pixels, width)
    if height != in_size[1]:
        pixels = _vertical(pixels, height)
    return pixels


def compile_now() -> None:
    """Compile both passes (numba compiles on first use: ~1 s) and ask Pillow its pass order,
    so that a worker pays it while loading its model rather than on its first batch."""
    if HAVE_FAST_RESIZE:
        pixels = np.zeros((8, 8, 3), dtype=np.uint8)
        resize_pixels(pixels, (5, 3))
        resize_pixels(pixels[..., :1], (3, 5))


def resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image.resize(size, BICUBIC)`` for an RGB image, pixel for pixel (other modes: Pillow)."""
    if image.mode != "RGB" or not HAVE_FAST_RESIZE:
        return image.resize(size, Image.Resampling.BICUBIC)
    if image.size == tuple(size):
        return image.copy()
    return Image.fromarray(resize_pixels(np.asarray(image), size), "RGB")
