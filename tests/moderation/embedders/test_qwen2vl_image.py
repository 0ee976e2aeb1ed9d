"""The fast Qwen2-VL preprocessor equals transformers' ``Qwen2VLImageProcessorPil``."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("transformers")
from transformers import Qwen2VLImageProcessorPil  # noqa: E402

from moderation.embedders.qwen2vl_image import (  # noqa: E402
    FastQwen2VLImageProcessor,
    qwen2vl_smart_resize,
)

TOKEN = 28 * 28


def reference_processor(min_tokens: int = 256, max_tokens: int = 1280) -> Qwen2VLImageProcessorPil:
    return Qwen2VLImageProcessorPil(min_pixels=min_tokens * TOKEN, max_pixels=max_tokens * TOKEN)


def noise(width: int, height: int, seed: int, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    # smooth structure plus noise: every byte value and real-image gradients both occur
    y, x = np.mgrid[0:height, 0:width]
    base = (x * 255 // max(1, width - 1) + y * 255 // max(1, height - 1)) // 2
    pixels = (base[..., None] + rng.integers(-60, 60, (height, width, 3))).clip(0, 255)
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    return image.convert(mode) if mode != "RGB" else image


# (width, height): squares, photos, not multiples of 28, tiny, huge, 100:1 and 190:1 banners
SIZES = [
    (448, 448),
    (640, 480),
    (480, 640),
    (1920, 1080),
    (1000, 1000),
    (447, 449),
    (500, 375),
    (28, 28),
    (1, 1),
    (3, 7),
    (56, 1),
    (3000, 2000),
    (2800, 28),
    (28, 2800),
    (5000, 50),
    (50, 5000),
    (3800, 20),
    (1344, 756),
]


@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_pixel_values_and_grid_equal_the_reference(width, height):
    reference = reference_processor()
    fast = FastQwen2VLImageProcessor.like(reference)
    image = noise(width, height, seed=width * 7919 + height)
    expected = reference(images=[image], return_tensors="np")
    pixels, grid = fast(image)
    np.testing.assert_array_equal(grid, expected["image_grid_thw"][0])
    assert pixels.dtype == np.float32 and pixels.shape == expected["pixel_values"].shape
    # bit-identical in practice; the promise is float32 rounding
    np.testing.assert_allclose(pixels, expected["pixel_values"], rtol=0, atol=1e-6)
    # the same from the RGB pixels (what the GME embedder passes: no PIL round trip)
    np.testing.assert_array_equal(fast(np.asarray(image))[0], pixels)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_other_modes_are_converted_like_the_reference(mode):
    reference = reference_processor()
    image = noise(300, 200, seed=5, mode=mode)
    expected = reference(images=[image], return_tensors="np")["pixel_values"]
    pixels, _ = FastQwen2VLImageProcessor.like(reference)(image)
    np.testing.assert_allclose(pixels, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("min_tokens", "max_tokens"), [(4, 16384), (64, 64), (256, 1280)])
def test_other_token_bounds(min_tokens, max_tokens):
    reference = reference_processor(min_tokens, max_tokens)
    fast = FastQwen2VLImageProcessor.like(reference)
    for size in [(640, 480), (33, 900), (2000, 30)]:
        image = noise(*size, seed=size[0])
        expected = reference(images=[image], return_tensors="np")
        pixels, grid = fast(image)
        np.testing.assert_array_equal(grid, expected["image_grid_thw"][0])
        np.testing.assert_allclose(pixels, expected["pixel_values"], rtol=0, atol=1e-6)


def test_through_the_gme_resize_including_padded_extreme_aspects():
    """What the GME embedder feeds it (``official_resize_pixels``: the recipe's first resize,
    extremes padded to 100:1) against the recipe done with Pillow's own resize + the
    reference processor."""
    gme = pytest.importorskip("moderation.embedders.gme")
    reference = reference_processor()
    fast = FastQwen2VLImageProcessor.like(reference)
    for size in [(8000, 8), (8, 8000), (1, 1), (2, 300), (4000, 3000), (640, 480), (1920, 1080)]:
        original = noise(*size, seed=sum(size))
        padded = gme.pad_extreme_aspect(original.convert("RGB"))
        pillow = padded.resize(gme.official_size(*padded.size), Image.Resampling.BICUBIC)
        assert gme.official_resize(original).tobytes() == pillow.tobytes()
        expected = reference(images=[pillow], return_tensors="np")
        pixels, grid = fast(gme.official_resize_pixels(original))
        np.testing.assert_array_equal(grid, expected["image_grid_thw"][0])
        np.testing.assert_allclose(pixels, expected["pixel_values"], rtol=0, atol=1e-6)


def test_aspect_beyond_200_is_refused_like_the_reference():
    with pytest.raises(ValueError, match="aspect ratio"):
        qwen2vl_smart_resize(10, 2010, 28, 256 * TOKEN, 1280 * TOKEN)
    with pytest.raises(ValueError, match="aspect ratio"):
        FastQwen2VLImageProcessor.like(reference_processor())(noise(2010, 10, seed=1))


def test_unsupported_configuration_is_refused():
    reference = reference_processor()
    reference.do_normalize = False
    with pytest.raises(ValueError, match="supported"):
        FastQwen2VLImageProcessor.like(reference)
