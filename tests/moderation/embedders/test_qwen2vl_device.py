"""GME preprocessing on the model's device equals transformers' ``Qwen2VLImageProcessorPil``.

The device path replays Pillow's integer resampling, so it is held to the same bar as the fast
CPU path: equal within float32 rounding (in practice bit for bit), which is far inside the bf16
tolerance the model's inputs are cast to. torch on the CPU here; the ``gpu`` twin on CUDA.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("transformers")

from moderation.embedders import gme  # noqa: E402
from moderation.embedders.qwen2vl_device import DeviceQwen2VLImageProcessor, pil_resize  # noqa: E402

from .test_pil_resample import RESIZES  # noqa: E402
from .test_qwen2vl_image import SIZES, noise, reference_processor  # noqa: E402


def _pixels(width: int, height: int, seed: int) -> np.ndarray:
    return np.asarray(noise(width, height, seed=seed)).copy()


@pytest.mark.parametrize(("size_in", "size_out"), RESIZES, ids=[f"{a}->{b}" for a, b in RESIZES])
def test_pil_resize_equals_pillow_pixel_for_pixel(size_in, size_out):
    pixels = _pixels(*size_in, seed=size_in[0] + 7 * size_out[1])
    expected = np.asarray(Image.fromarray(pixels).resize(size_out, Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(pil_resize(torch.from_numpy(pixels), size_out).numpy(), expected)


def test_pil_resize_equals_pillow_on_random_sizes_and_flat_images():
    rng = np.random.default_rng(19)
    for _ in range(40):
        w, h, ow, oh = (int(v) for v in rng.integers(1, 400, 4))
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if rng.random() < 0.25:  # flat: every tap the same byte, sums land on exact halves
            pixels[:] = rng.integers(0, 256)
        expected = np.asarray(Image.fromarray(pixels).resize((ow, oh), Image.Resampling.BICUBIC))
        got = pil_resize(torch.from_numpy(pixels), (ow, oh)).numpy()
        np.testing.assert_array_equal(got, expected, err_msg=f"{(w, h)} -> {(ow, oh)}")


def test_pil_resize_refuses_what_is_not_uint8_hwc():
    with pytest.raises(ValueError, match="uint8"):
        pil_resize(torch.zeros((4, 4, 3), dtype=torch.float32), (2, 2))


def _equal_to_reference(device: str, image: Image.Image) -> None:
    reference = reference_processor()
    processor = DeviceQwen2VLImageProcessor.like(reference, device)
    expected = reference(images=[image], return_tensors="np")
    pixels, grid = processor(torch.from_numpy(np.asarray(image).copy()).to(device))
    assert pixels.device.type == torch.device(device).type and pixels.dtype == torch.float32
    np.testing.assert_array_equal(grid, expected["image_grid_thw"][0])
    np.testing.assert_allclose(pixels.cpu().numpy(), expected["pixel_values"], rtol=0, atol=1e-6)


# the equality test's corpus, minus what the reference itself refuses (beyond 200:1)
DEVICE_SIZES = [s for s in SIZES if max(s) / min(s) <= 200]


@pytest.mark.parametrize(
    ("width", "height"), DEVICE_SIZES, ids=[f"{w}x{h}" for w, h in DEVICE_SIZES]
)
def test_device_processor_equals_the_reference_on_cpu_torch(width, height):
    _equal_to_reference("cpu", noise(width, height, seed=width * 7919 + height))


def test_device_processor_through_the_gme_resize_including_padded_extreme_aspects():
    for size in [(8000, 8), (8, 8000), (1, 1), (2, 300), (3800, 20), (640, 480)]:
        _equal_to_reference("cpu", gme.official_resize(noise(*size, seed=sum(size))))


def _corpus() -> list[Image.Image]:
    """What a worker hands GME: photos, banners beyond 200:1 (padded), odd modes, tiny."""
    sizes = [(640, 480), (1920, 1080), (8000, 8), (8, 8000), (3, 7), (447, 449)]
    images = [noise(w, h, seed=w + h) for w, h in sizes]
    images += [noise(300, 200, seed=5, mode=mode) for mode in ("L", "RGBA", "P")]
    return images


def test_gme_device_preprocessor_feeds_the_model_what_fast_does(tiny_gme_dir):
    """MODERATION_GME_PREPROCESSOR=device on the CPU: same pixel_values, same vectors."""
    device = gme.GmeEmbedder(tiny_gme_dir, device="cpu", batch_size=8, preprocessor="device")
    fast = gme.GmeEmbedder(tiny_gme_dir, device="cpu", batch_size=8, preprocessor="fast")
    images = _corpus()
    try:
        assert device._device_processor is not None and device._fast_processor is None
        a, b = device.prepare_images(images), fast.prepare_images(images)
        np.testing.assert_array_equal(a.image_grid_thw.numpy(), b.image_grid_thw.numpy())
        np.testing.assert_array_equal(a.input_ids.numpy(), b.input_ids.numpy())
        np.testing.assert_allclose(a.pixel_values.numpy(), b.pixel_values.numpy(), atol=1e-6)
        np.testing.assert_allclose(
            device.embed_images(images), fast.embed_images(images), atol=1e-5
        )
        assert device.info.model_id == fast.info.model_id
    finally:
        device.close()
        fast.close()


def test_auto_preprocessor_is_fast_on_the_cpu(tiny_gme_dir, settings_factory):
    from moderation.scoring.scorers import _load_embedder

    embedder = gme.GmeEmbedder(tiny_gme_dir, device="cpu")
    assert embedder.preprocessor == "fast" and embedder._device_processor is None
    settings = settings_factory(backend="gme", gme_path=tiny_gme_dir, device="cpu")
    assert settings.gme_preprocessor == "auto"
    assert _load_embedder(settings).preprocessor == "fast"
    settings = settings_factory(
        backend="gme", gme_path=tiny_gme_dir, device="cpu", gme_preprocessor="device"
    )
    assert _load_embedder(settings).preprocessor == "device"


# --- GPU (skipped without CUDA) ----------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize(
    ("width", "height"), DEVICE_SIZES, ids=[f"{w}x{h}" for w, h in DEVICE_SIZES]
)
def test_device_processor_equals_the_reference_on_cuda(width, height):
    _equal_to_reference("cuda", noise(width, height, seed=width * 7919 + height))


@pytest.mark.gpu
def test_gme_on_cuda_preprocesses_on_the_device_like_fast_on_the_cpu(tiny_gme_dir):
    cuda = gme.GmeEmbedder(tiny_gme_dir, device="cuda", batch_size=8)  # auto → device
    fast = gme.GmeEmbedder(tiny_gme_dir, device="cpu", batch_size=8)
    images = _corpus()
    try:
        assert cuda.preprocessor == "device"
        a, b = cuda.prepare_images(images), fast.prepare_images(images)
        assert a.pixel_values.is_cuda
        np.testing.assert_array_equal(a.image_grid_thw.numpy(), b.image_grid_thw.numpy())
        np.testing.assert_allclose(a.pixel_values.cpu().numpy(), b.pixel_values.numpy(), atol=1e-6)
        # bf16 model on the GPU vs fp32 on the CPU: compare directions
        cosines = (cuda.embed_images(images) * fast.embed_images(images)).sum(axis=1)
        assert cosines.min() > 0.99
    finally:
        cuda.close()
        fast.close()
