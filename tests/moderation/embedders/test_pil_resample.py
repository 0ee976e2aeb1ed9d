"""``pil_resample`` equals Pillow's BICUBIC resize pixel for pixel: the sizes where Pillow's pass
order, its reductions and its one-side-kept shortcut matter, random sizes, flat images (sums on
exact halves), grey as well as RGB, and images taller than one block of the horizontal pass."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from moderation.embedders import pil_resample
from moderation.embedders.pil_resample import (
    pil_bicubic_coefficients,
    pillow_reduces_height_first,
    resize,
    resize_pixels,
)

# (in W, in H) → (out W, out H): down/up/mixed, ×10 reductions, 1 px, one side kept, and the
# cases where Pillow ≥ 13 resamples vertically first (height shrinks by > 2× the width's pixels)
# with the tie and off-by-one around that rule.
RESIZES = [
    ((1932, 1092), (1316, 728)),
    ((1920, 1080), (1932, 1092)),
    ((1, 1), (56, 56)),
    ((3, 7), (28, 56)),
    ((8000, 80), (2800, 28)),
    ((80, 8000), (28, 2800)),
    ((640, 480), (644, 476)),
    ((57, 33), (56, 28)),
    ((4000, 3000), (1176, 868)),
    ((500, 375), (500, 364)),
    ((500, 375), (504, 375)),
    ((100, 100), (95, 90)),
    ((100, 100), (98, 95)),
    ((100, 100), (97, 95)),
    ((20, 110), (4, 74)),
    ((300, 4000), (280, 112)),
]


def pillow(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    image = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    out = np.asarray(image.resize(size, Image.Resampling.BICUBIC))
    return out.reshape(size[1], size[0], pixels.shape[2])


def test_the_fast_path_is_the_one_tested():
    assert pil_resample.HAVE_FAST_RESIZE  # numba comes with the gme extra (and the test one)


@pytest.mark.parametrize(("size_in", "size_out"), RESIZES, ids=[f"{a}->{b}" for a, b in RESIZES])
def test_resize_equals_pillow_pixel_for_pixel(size_in, size_out):
    rng = np.random.default_rng(size_in[0] + 7 * size_out[1])
    pixels = rng.integers(0, 256, (size_in[1], size_in[0], 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize_pixels(pixels, size_out), pillow(pixels, size_out))
    image = Image.fromarray(pixels)
    assert resize(image, size_out).tobytes() == image.resize(size_out, Image.BICUBIC).tobytes()


def test_resize_equals_pillow_on_random_sizes_channels_and_flat_images():
    rng = np.random.default_rng(19)
    for _ in range(60):
        w, h, ow, oh = (int(v) for v in rng.integers(1, 300, 4))
        channels = int(rng.choice([1, 3]))
        pixels = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
        if rng.random() < 0.25:  # flat: every tap the same byte, sums land on exact halves
            pixels[:] = rng.integers(0, 256)
        np.testing.assert_array_equal(
            resize_pixels(pixels, (ow, oh)),
            pillow(pixels, (ow, oh)),
            err_msg=f"{(w, h, channels)} -> {(ow, oh)}",
        )


def test_a_strided_view_is_resized_like_its_copy():
    pixels = np.random.default_rng(3).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    view = pixels[::-1, 10:]  # negative and offset strides: not contiguous
    np.testing.assert_array_equal(
        resize_pixels(view, (64, 50)), pillow(np.ascontiguousarray(view), (64, 50))
    )


def test_the_pass_order_follows_the_installed_pillow():
    """Pillow ≥ 13 resamples vertically first when the height shrinks much more than the width;
    the probe agrees with the version (13.x is what the project pins today)."""
    major = int(Image.__version__.split(".")[0])
    assert pillow_reduces_height_first() is (major >= 13)


def test_fixed_point_weights_are_pillows():
    """Each output's 22-bit weights sum to 1.0 up to their rounding, taps inside the image."""
    for size_in, size_out in [(1932, 1316), (7, 56), (8000, 28)]:
        index, fixed = pil_bicubic_coefficients(size_in, size_out)
        assert index.min() >= 0 and index.max() < size_in
        assert np.abs(fixed.sum(axis=1) - (1 << 22)).max() <= fixed.shape[1]


def test_other_modes_and_bad_input():
    grey = Image.fromarray(np.arange(64 * 48, dtype=np.uint8).reshape(48, 64) % 251, "L")
    assert resize(grey, (20, 30)).tobytes() == grey.resize((20, 30), Image.BICUBIC).tobytes()
    with pytest.raises(ValueError, match="uint8"):
        resize_pixels(np.zeros((4, 4, 3), dtype=np.float32), (2, 2))
    with pytest.raises(ValueError, match="RGB"):  # RGBA: Pillow premultiplies, not replayed
        resize_pixels(np.zeros((4, 4, 4), dtype=np.uint8), (2, 2))
    with pytest.raises(ValueError, match="positive"):
        resize_pixels(np.zeros((4, 4, 3), dtype=np.uint8), (0, 2))
