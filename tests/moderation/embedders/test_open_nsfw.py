"""Open-NSFW runs offline on CPU: probabilities in [0, 1], batching changes nothing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from moderation.embedders.base import ImageClassifier
from moderation.embedders.open_nsfw import OpenNsfwClassifier, default_providers
from tests.samples import sample_images


@pytest.fixture(scope="module")
def classifier() -> OpenNsfwClassifier:
    return OpenNsfwClassifier(batch_size=4)


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (300, 200, 3), dtype=np.uint8), "RGB")
    gradient = Image.linear_gradient("L").convert("RGB").resize((640, 90))
    return [*sample_images(), noise, gradient, Image.new("RGB", (1, 1), (200, 150, 120))]


def test_is_a_classifier_for_sexual_on_the_probability_scale(classifier):
    assert isinstance(classifier, ImageClassifier)
    assert (classifier.category, classifier.scale) == ("sexual", "probability")
    assert classifier.model_id.startswith("open-nsfw-onnx-")
    assert classifier.providers == default_providers()
    assert classifier.providers[-1] == "CPUExecutionProvider"


def test_probabilities_on_real_photos_and_synthetic_images(classifier, images):
    scores = classifier.classify(images)
    assert scores.dtype == np.float32 and scores.shape == (len(images),)
    assert np.all((scores >= 0) & (scores <= 1))
    # the sample photos (a cat, coffee, a rocket, an astronaut) are plainly safe for work
    assert scores[: len(sample_images())].max() < 0.2
    assert classifier.classify([]).shape == (0,)


def test_batch_equals_one_at_a_time(classifier, images):
    batched = classifier.classify(images)  # batches of 4 with a ragged tail
    single = np.array([classifier.classify([image])[0] for image in images])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_same_weights_same_model_id(classifier):
    assert OpenNsfwClassifier().model_id == classifier.model_id
    with pytest.raises(ValueError):
        OpenNsfwClassifier(batch_size=0)
