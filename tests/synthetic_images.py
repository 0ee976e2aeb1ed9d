"""Seeded synthetic photos and the near-copy transforms a hash bank must see through.

No photo data set ships in a package reachable here, so test images are generated: 1/f^α
("pink") noise per channel — the power spectrum of natural images — mixed across channels,
with a few flat shapes and strokes on top for edges and regions. Same seed, same pixels.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["TRANSFORMS", "flat_image", "synthetic_photo"]


def _pink_noise(rng: np.random.Generator, height: int, width: int, alpha: float) -> np.ndarray:
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    freq = np.hypot(fx, fy)
    freq[0, 0] = 1.0
    shape = (height, fx.shape[1])
    spectrum = (rng.normal(size=shape) + 1j * rng.normal(size=shape)) / freq**alpha
    spectrum[0, 0] = 0.0
    field = np.fft.irfft2(spectrum, s=(height, width))
    return (field - field.mean()) / (field.std() + 1e-9)


def synthetic_photo(seed: int, size: tuple[int, int] = (384, 288)) -> Image.Image:
    """An RGB image (width, height) = ``size`` with photo-like statistics, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    width, height = size
    # the texture is drawn at half resolution and upscaled: 4× cheaper, and PDQ only looks at
    # a 64×64 reduction anyway
    low_h, low_w = max(height // 2, 8), max(width // 2, 8)
    channels = np.stack([_pink_noise(rng, low_h, low_w, rng.uniform(0.9, 1.6)) for _ in "rgb"])
    mixing = rng.normal(size=(3, 3)) * 0.4 + np.eye(3)
    pixels = np.tensordot(mixing, channels, axes=1).transpose(1, 2, 0)
    pixels = pixels * rng.uniform(30, 60) + rng.uniform(80, 170, size=3)
    texture = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    image = texture.resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 12))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1 = x0 + int(rng.integers(10, width // 2))
        y1 = y0 + int(rng.integers(10, height // 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            draw.ellipse([x0, y0, x1, y1], fill=colour)
        elif kind == 1:
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        else:
            draw.line([x0, y0, x1, y1], fill=colour, width=int(rng.integers(2, 12)))
    return image


def flat_image(size: tuple[int, int] = (256, 256), colour: int = 128) -> Image.Image:
    """A featureless image: PDQ quality 0, must never be banked or matched."""
    return Image.new("RGB", size, (colour, colour, colour))


def _resize_half(image: Image.Image, _rng: np.random.Generator) -> Image.Image:
    return image.resize((image.width // 2, image.height // 2), Image.Resampling.BILINEAR)


def _jpeg_q40(image: Image.Image, _rng: np.random.Generator) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=40)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _crop_5pct(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Keep a 95 % × 95 % window at a random offset (5 % of each side cut in total)."""
    cut_x, cut_y = round(image.width * 0.05), round(image.height * 0.05)
    left, top = int(rng.integers(0, cut_x + 1)), int(rng.integers(0, cut_y + 1))
    return image.crop((left, top, left + image.width - cut_x, top + image.height - cut_y))


def _flip_h(image: Image.Image, _rng: np.random.Generator) -> Image.Image:
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def _all_but_flip(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return _jpeg_q40(_resize_half(_crop_5pct(image, rng), rng), rng)


Transform = Callable[[Image.Image, np.random.Generator], Image.Image]
TRANSFORMS: dict[str, Transform] = {
    "resize_50": _resize_half,
    "jpeg_q40": _jpeg_q40,
    "crop_5pct": _crop_5pct,
    "flip_h": _flip_h,
    "crop+resize+jpeg": _all_but_flip,
}
