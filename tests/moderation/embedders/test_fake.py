"""The fake embedder: deterministic, unit rows, and a documented way to build a matching image."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from moderation.embedders.base import DEFAULT_IMAGE_INSTRUCTION, Embedder
from moderation.embedders.fake import FAKE_DIM, FakeEmbedder, content_words
from tests.samples import sample_images


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return sample_images()


def png_round_trip(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def test_implements_the_protocol_with_unit_float32_rows(photos):
    embedder = FakeEmbedder()
    assert isinstance(embedder, Embedder)
    images = embedder.embed_images(photos)
    texts = embedder.embed_texts(["a photo of a gun", "pills", ""])
    for matrix, rows in ((images, len(photos)), (texts, 3)):
        assert matrix.dtype == np.float32 and matrix.shape == (rows, FAKE_DIM)
        np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, rtol=1e-5)
    assert embedder.embed_images([]).shape == (0, FAKE_DIM)
    assert embedder.embed_texts([]).shape == (0, FAKE_DIM)


def test_same_input_same_vector_across_instances(photos):
    a, b = FakeEmbedder(), FakeEmbedder()
    np.testing.assert_array_equal(a.embed_images(photos), b.embed_images(photos))
    np.testing.assert_array_equal(a.embed_texts(["a knife"]), b.embed_texts(["a knife"]))
    # batching does not change a row
    np.testing.assert_array_equal(a.embed_images(photos)[1], a.embed_images([photos[1]])[0])


def test_template_words_do_not_make_phrasings_alike():
    embedder = FakeEmbedder()
    assert content_words("A detailed image showing a Gun") == ["gun"]
    same = embedder.embed_texts(["a photo of a gun", "a gun in the image"])
    assert float(same[0] @ same[1]) == pytest.approx(1.0, abs=1e-6)
    other = embedder.embed_texts(["a photo of a gun", "a photo of pills"])
    assert abs(float(other[0] @ other[1])) < 0.2
    # the instruction is ignored by design
    np.testing.assert_array_equal(
        embedder.embed_texts(["gun"]), embedder.embed_texts(["gun"], DEFAULT_IMAGE_INSTRUCTION)
    )


def test_image_matching_scores_high_only_against_its_phrasing(photos):
    embedder = FakeEmbedder()
    built = png_round_trip(FakeEmbedder.image_matching("a photo of a gun", size=96))
    vectors = embedder.embed_images([built, *photos])
    texts = embedder.embed_texts(["a detailed image showing a gun", "a photo of pills"])
    sims = vectors @ texts.T
    assert sims[0, 0] > 0.99
    assert abs(sims[0, 1]) < 0.2
    # real photos are far from any phrasing (noise floor std ≈ 0.036)
    assert np.abs(sims[1:]).max() < 0.15


def test_device_time_holds_each_batch_for_its_images(photos):
    """MODERATION_FAKE_DEVICE_MS_PER_IMAGE: one sleep per forward, n × ms long; same vectors."""
    slept: list[float] = []
    device = FakeEmbedder(batch_size=2, device_ms_per_image=8, sleep=slept.append)
    images = [*photos, *photos][:5]
    vectors = device.embed_images(images)
    assert slept == pytest.approx([0.016, 0.016, 0.008])  # batches of 2, 2, 1
    np.testing.assert_array_equal(vectors, FakeEmbedder(batch_size=2).embed_images(images))
    device.embed_texts(["a knife"])  # texts are not held
    assert len(slept) == 3


def test_no_device_time_by_default(photos):
    slept: list[float] = []
    FakeEmbedder(sleep=slept.append).embed_images(photos)
    FakeEmbedder(device_ms_per_image=0, sleep=slept.append).embed_images(photos)
    assert slept == []
    with pytest.raises(ValueError, match="device_ms_per_image"):
        FakeEmbedder(device_ms_per_image=-1)


def test_device_time_reaches_the_fake_from_the_settings(monkeypatch):
    from moderation.config import Settings
    from moderation.scoring.scorers import _load_embedder

    monkeypatch.setenv("MODERATION_FAKE_DEVICE_MS_PER_IMAGE", "2.5")
    settings = Settings(_env_file=None, backend="fake", batch_size=4)  # type: ignore[call-arg]
    embedder = _load_embedder(settings)
    assert isinstance(embedder, FakeEmbedder)
    assert (embedder.device_ms_per_image, embedder.batch_size) == (2.5, 4)
    monkeypatch.delenv("MODERATION_FAKE_DEVICE_MS_PER_IMAGE")
    assert _load_embedder(Settings(_env_file=None, backend="fake")).device_ms_per_image == 0
