"""Scorers: pattern vectors once per (catalog, model) and cached on disk; classifier; combined."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pytest
from PIL import Image

from moderation.domain import ScoreSource
from moderation.embedders.base import DEFAULT_IMAGE_INSTRUCTION, QUERY_INSTRUCTION
from moderation.embedders.fake import FakeEmbedder
from moderation.scoring.base import Scorer
from moderation.scoring.catalog import catalog_from_mapping, load_catalog
from moderation.scoring.scorers import (
    ClassifierScorer,
    CombinedScorer,
    EmbeddingScorer,
    PatternVectorCache,
    ScorerConfigError,
    build_scorer,
    score_isolating,
    score_keeping_vectors,
    scorer_embedder,
    scorer_profile,
)
from moderation.thresholds.tiers import decide, preset_thresholds
from tests.samples import sample_images


class CountingEmbedder(FakeEmbedder):
    """The fake embedder, recording every embed_texts call (a fake, not a mock)."""

    def __init__(self) -> None:
        super().__init__()
        self.text_calls: list[tuple[int, str]] = []
        self.image_calls = 0

    def embed_texts(self, texts: Sequence[str], instruction: str = QUERY_INSTRUCTION):
        self.text_calls.append((len(texts), instruction))
        return super().embed_texts(texts, instruction)

    def embed_images(self, images):
        self.image_calls += 1
        return super().embed_images(images)


class FixedClassifier:
    """An ``ImageClassifier`` scoring by mean brightness (deterministic, no model)."""

    model_id = "brightness-v1"
    category = "sexual"
    scale = "probability"

    def classify(self, images):
        return np.array([np.asarray(i).mean() / 255 for i in images], dtype=np.float32)


def png(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


SMALL = {
    "name": "small",
    "templates": ["a photo of {subject}", "a detailed image showing {subject}"],
    "categories": {
        "weapons": {"severity": 2, "subjects": ["a gun", "a knife"], "threshold": 0.25},
        "drugs": {"severity": 1, "subjects": ["pills", "a syringe"]},
    },
}


def test_pattern_vectors_are_embedded_once_then_reloaded_from_disk(tmp_path):
    catalog = load_catalog()
    cache = PatternVectorCache(tmp_path / "cache")
    first = CountingEmbedder()
    scorer = EmbeddingScorer(first, catalog, cache)
    assert first.text_calls == [(len(catalog.pairs()), QUERY_INSTRUCTION)]  # one batched call
    scorer.score_images(sample_images())
    scorer.score_images(sample_images()[:1])
    assert len(first.text_calls) == 1 and first.image_calls == 2  # never per image

    second = CountingEmbedder()  # a new process/instance with the same (catalog, model)
    again = EmbeddingScorer(second, catalog, PatternVectorCache(tmp_path / "cache"))
    assert second.text_calls == []
    np.testing.assert_array_equal(again.pattern_vectors["query"], scorer.pattern_vectors["query"])


def test_a_new_catalog_version_or_model_embeds_again(tmp_path):
    cache = PatternVectorCache(tmp_path)
    EmbeddingScorer(CountingEmbedder(), catalog_from_mapping(SMALL), cache)
    changed = catalog_from_mapping(
        {**SMALL, "templates": ["{subject} in the image", "x {subject}"]}
    )
    embedder = CountingEmbedder()
    EmbeddingScorer(embedder, changed, cache)
    assert len(embedder.text_calls) == 1

    class OtherModel(CountingEmbedder):
        def __init__(self) -> None:
            super().__init__()
            self.info = type(self.info)("fake", "fake-other", self.info.dim, "float32", "cpu")

    other = OtherModel()
    EmbeddingScorer(other, changed, cache)
    assert len(other.text_calls) == 1
    assert len(list(tmp_path.glob("*.npz"))) == 3


def test_corrupt_or_foreign_cache_files_are_recomputed(tmp_path):
    catalog = catalog_from_mapping(SMALL)
    cache = PatternVectorCache(tmp_path)
    reference = EmbeddingScorer(CountingEmbedder(), catalog, cache).pattern_vectors["query"]
    path = cache.path_for(catalog.version, FakeEmbedder().info.model_id, QUERY_INSTRUCTION)
    path.write_bytes(b"not an npz file")
    embedder = CountingEmbedder()
    scorer = EmbeddingScorer(embedder, catalog, cache)
    assert len(embedder.text_calls) == 1
    np.testing.assert_array_equal(scorer.pattern_vectors["query"], reference)
    assert EmbeddingScorer(CountingEmbedder(), catalog, cache).embedder.text_calls == []
    # a file whose phrasings disagree (e.g. a hash collision or hand edit) is not trusted
    assert (
        cache.load(catalog.version, "fake-v1-pixelgrid16-wordhash", QUERY_INSTRUCTION, ["x"])
        is None
    )


def test_unwritable_cache_still_scores(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    scorer = EmbeddingScorer(
        CountingEmbedder(), catalog_from_mapping(SMALL), PatternVectorCache(blocker)
    )
    assert len(scorer.score_images(sample_images()[:1])) == 1


def test_embedding_scorer_contract_and_a_built_violation():
    catalog = catalog_from_mapping(SMALL)
    scorer = EmbeddingScorer(FakeEmbedder(), catalog)
    assert isinstance(scorer, Scorer)
    assert scorer.catalog_version == catalog.version
    assert scorer.model_id == FakeEmbedder().info.model_id
    assert scorer.categories == ("drugs", "weapons")
    assert scorer.scales == {"drugs": "fake_cosine", "weapons": "fake_cosine"}
    assert scorer.severities == {"drugs": 1, "weapons": 2}
    assert scorer.base_thresholds == {"weapons": 0.25}
    images = [png(FakeEmbedder.image_matching("a photo of a knife")), *sample_images()]
    results = scorer.score_images(images)
    assert results[0]["weapons"].score > 0.99
    assert results[0]["weapons"].phrasing in {
        "a photo of a knife",
        "a detailed image showing a knife",
    }
    thresholds = preset_thresholds(scorer.scales, scorer.severities, scorer.base_thresholds)
    verdicts = [decide({c: s.score for c, s in r.items()}, thresholds) for r in results]
    assert (verdicts[0].tier, verdicts[0].category) == ("extreme", "weapons")
    assert all(v.tier == "clear" for v in verdicts[1:])
    assert scorer.score_images([]) == []


def test_fusion_from_the_catalog_embeds_both_dimensions(tmp_path):
    catalog = catalog_from_mapping({**SMALL, "fusion": {"query": 0.6, "corpus": 0.3}})
    embedder = CountingEmbedder()
    scorer = EmbeddingScorer(embedder, catalog, PatternVectorCache(tmp_path))
    assert sorted(i for _, i in embedder.text_calls) == sorted(
        [QUERY_INSTRUCTION, DEFAULT_IMAGE_INSTRUCTION]
    )
    result = scorer.score_images(sample_images()[:1])[0]["weapons"]
    assert set(result.details["dimensions"]) == {"query", "corpus"}


def test_classifier_and_combined_scorers():
    classifier = ClassifierScorer(FixedClassifier(), severity=4)
    assert isinstance(classifier, Scorer) and classifier.catalog_version == ""
    assert classifier.scales == {"sexual": "probability"} and classifier.severities == {"sexual": 4}
    white, black = Image.new("RGB", (8, 8), "white"), Image.new("RGB", (8, 8), "black")
    scores = classifier.score_images([white, black])
    assert [s["sexual"].score for s in scores] == [1.0, 0.0]
    assert scores[0]["sexual"].source is ScoreSource.CLASSIFIER

    catalog = catalog_from_mapping(
        {
            **SMALL,
            "categories": {
                **SMALL["categories"],
                "sexual": {"severity": 3, "subjects": ["nudity", "sex"]},
            },
        }
    )
    embedding = EmbeddingScorer(FakeEmbedder(), catalog)
    combined = CombinedScorer([classifier, embedding])
    assert isinstance(combined, Scorer)
    assert combined.model_id == "brightness-v1+" + embedding.model_id
    assert combined.catalog_version == catalog.version
    assert (
        combined.scales["sexual"] == "probability" and combined.scales["weapons"] == "fake_cosine"
    )
    assert set(combined.categories) == {"sexual", "weapons", "drugs"}
    assert combined.base_thresholds == {"weapons": 0.25}
    merged = combined.score_images([white])[0]
    assert merged["sexual"].score == 1.0
    assert merged["sexual"].details["other_signals"][0]["source"] == "embedding"
    assert merged["weapons"].source is ScoreSource.EMBEDDING
    with pytest.raises(ValueError):
        CombinedScorer([classifier])


def test_build_scorer_backends(settings_factory, tmp_path):
    fake = build_scorer(settings_factory(backend="fake"))
    assert isinstance(fake, EmbeddingScorer) and fake.catalog_version == load_catalog().version
    assert list((tmp_path / "pattern-cache").glob("*.npz"))  # cached under pattern_cache_dir

    default = build_scorer(settings_factory())
    assert isinstance(default, ClassifierScorer)
    assert default.model_id.startswith("open-nsfw-onnx-") and default.severities == {"sexual": 3}

    both = build_scorer(settings_factory(backend="fake", classifiers="open_nsfw"))
    assert isinstance(both, CombinedScorer) and both.scales["sexual"] == "probability"

    custom = tmp_path / "catalog.yaml"
    custom.write_text(
        "name: c\ncategories:\n  drugs:\n    severity: 1\n    phrasings: [a, b, c, d]\n"
    )
    assert build_scorer(settings_factory(backend="fake", catalog_file=custom)).categories == (
        "drugs",
    )


def record_batches(forward):
    """A pass-through for one instance's forward that records each call's batch size."""
    sizes: list[int] = []

    def recording(batch):
        sizes.append(len(batch))
        return forward(batch)

    return recording, sizes


class RecordingSession:
    """Delegates to an ONNX Runtime session; records the batch size of every ``run``."""

    def __init__(self, session) -> None:
        self.session, self.sizes = session, []

    def run(self, outputs, feeds):
        self.sizes.extend(len(v) for v in feeds.values())
        return self.session.run(outputs, feeds)


def test_batch_size_reaches_the_fake_embedder(settings_factory):
    catalog = catalog_from_mapping(SMALL)  # 8 phrasings
    scorer = build_scorer(settings_factory(backend="fake", batch_size=3), catalog)
    embedder = scorer.embedder
    assert embedder.batch_size == 3
    embedder.forward_images, image_sizes = record_batches(embedder.forward_images)
    embedder.forward_texts, text_sizes = record_batches(embedder.forward_texts)
    assert len(scorer.score_images((sample_images() * 2)[:7])) == 7
    embedder.embed_texts([p for _, p in catalog.pairs()])
    assert image_sizes == [3, 3, 1] and text_sizes == [3, 3, 2]


def test_batch_size_reaches_the_classifiers(settings_factory):
    combined = build_scorer(
        settings_factory(backend="fake", classifiers="open_nsfw", batch_size=2),
        catalog_from_mapping(SMALL),
    )
    classifier_part, embedding_part = combined.scorers
    assert embedding_part.embedder.batch_size == 2
    classifier = classifier_part.classifier
    classifier._session = recording = RecordingSession(classifier._session)
    combined.score_images((sample_images() * 2)[:5])
    assert recording.sizes == [2, 2, 1]


def _profile_of(scorer):
    return (dict(scorer.scales), dict(scorer.severities), dict(scorer.base_thresholds))


@pytest.mark.parametrize(
    "overrides",
    [{"backend": "fake"}, {}, {"backend": "fake", "classifiers": "open_nsfw"}],
    ids=["fake", "open_nsfw", "fake+open_nsfw"],
)
def test_the_profile_is_what_the_built_scorer_has_without_loading_it(settings_factory, overrides):
    settings = settings_factory(**overrides)
    profile = scorer_profile(settings)
    assert _profile_of(profile) == _profile_of(build_scorer(settings))


def test_the_profile_refuses_an_unknown_backend_like_build_scorer(settings_factory):
    from moderation.embedders.registry import BackendUnavailable

    settings = settings_factory(backend="fake").model_copy(update={"backend": "magic"})
    with pytest.raises(BackendUnavailable, match="unknown backend 'magic'"):
        scorer_profile(settings)


def test_build_scorer_gme_needs_a_weights_directory(settings_factory, tmp_path):
    with pytest.raises(ScorerConfigError, match="MODERATION_GME_PATH"):
        build_scorer(settings_factory(backend="gme"))
    with pytest.raises(ScorerConfigError, match="not a directory"):
        build_scorer(settings_factory(backend="gme", gme_path=tmp_path / "missing"))


class PickyScorer(EmbeddingScorer):
    """Fails any batch containing a 1×1 image, like a model choking on one bad input."""

    def score_images(self, images):
        if any(image.size == (1, 1) for image in images):
            raise ValueError("cannot score a 1x1 image")
        return super().score_images(images)


def test_one_bad_image_fails_alone():
    scorer = PickyScorer(FakeEmbedder(), catalog_from_mapping(SMALL))
    good = sample_images()[:2]
    out = score_isolating(scorer, [good[0], Image.new("RGB", (1, 1)), good[1]])
    assert isinstance(out[1], ValueError) and "1x1" in str(out[1])
    alone = scorer.score_images(good)
    assert [o["weapons"].score for o in (out[0], out[2])] == pytest.approx(
        [s["weapons"].score for s in alone], abs=1e-6
    )
    assert isinstance(score_isolating(scorer, [Image.new("RGB", (1, 1))])[0], ValueError)


def test_score_keeping_vectors_matches_score_images_with_one_image_forward():
    catalog = catalog_from_mapping(
        {
            **SMALL,
            "categories": {
                **SMALL["categories"],
                "sexual": {"severity": 3, "subjects": ["nudity", "sex"]},
            },
        }
    )
    embedder = CountingEmbedder()
    embedding = EmbeddingScorer(embedder, catalog)
    combined = CombinedScorer([ClassifierScorer(FixedClassifier()), embedding])
    images = [png(FakeEmbedder.image_matching("a photo of a gun")), *sample_images()[:2]]
    for scorer in (embedding, combined):
        expected = scorer.score_images(images)
        before = embedder.image_calls
        score_sets, vectors = score_keeping_vectors(scorer, images)
        assert embedder.image_calls == before + 1  # the vectors are the ones scored
        assert score_sets == expected
        assert vectors is not None and vectors.shape == (len(images), embedder.info.dim)
        np.testing.assert_allclose(vectors, embedder.embed_images(images))
        assert scorer_embedder(scorer) is embedder
    classifier = ClassifierScorer(FixedClassifier())
    score_sets, vectors = score_keeping_vectors(classifier, images)
    assert vectors is None and scorer_embedder(classifier) is None
    assert score_sets == classifier.score_images(images)
