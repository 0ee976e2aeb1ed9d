"""The playground engine: text parsing, one lazily built scorer per process, GME-style matching."""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Sequence

import pytest
from PIL import Image

from moderation.embedders.base import QUERY_INSTRUCTION
from moderation.embedders.fake import FakeEmbedder
from moderation.images import decode_image
from moderation.scoring.scorers import EmbeddingScorer, build_scorer
from moderation.web import playground as playground_module
from moderation.web.playground import (
    MAX_TEXT_CHARS,
    MAX_TEXTS,
    Playground,
    PlaygroundUnavailable,
    TextsRejected,
    parse_texts,
    thumbnail_uri,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", []),
        ("\n \n\t\n", []),
        ("A girl\nA boy\n", ["A girl", "A boy"]),
        ("  padded  \r\n\r\nnext", ["padded", "next"]),
        ("same\nother\nsame\n same ", ["same", "other"]),
        ("\n".join(["x"] * 200), ["x"]),  # repeats do not count against the cap
    ],
)
def test_texts_one_per_line_blank_and_repeated_lines_dropped(raw, expected):
    assert parse_texts(raw) == expected


def test_too_many_texts_are_refused_with_the_count():
    raw = "\n".join(f"text {i}" for i in range(MAX_TEXTS + 1))
    with pytest.raises(
        TextsRejected, match=f"{MAX_TEXTS + 1} candidate texts; at most {MAX_TEXTS}"
    ):
        parse_texts(raw)
    assert len(parse_texts("\n".join(f"text {i}" for i in range(MAX_TEXTS)))) == MAX_TEXTS


def test_a_too_long_line_is_named():
    raw = "short\n\n" + "y" * (MAX_TEXT_CHARS + 1)
    with pytest.raises(TextsRejected, match=f"line 3 has {MAX_TEXT_CHARS + 1} characters"):
        parse_texts(raw)
    assert parse_texts("z" * MAX_TEXT_CHARS) == ["z" * MAX_TEXT_CHARS]


def decoded(text: str):
    buffer = io.BytesIO()
    FakeEmbedder.image_matching(text).save(buffer, "PNG")
    return decode_image(buffer.getvalue())


class RecordingEmbedder(FakeEmbedder):
    """The fake embedder, recording its calls (a fake, not a mock)."""

    def __init__(self) -> None:
        super().__init__()
        self.text_calls: list[tuple[tuple[str, ...], str]] = []
        self.image_calls = 0

    def embed_texts(self, texts: Sequence[str], instruction: str = QUERY_INSTRUCTION):
        self.text_calls.append((tuple(texts), instruction))
        return super().embed_texts(texts, instruction)

    def embed_images(self, images):
        self.image_calls += 1
        return super().embed_images(images)


@pytest.fixture
def recording(settings_factory):
    """A playground over the fake backend whose embedder records its calls; builds counted."""
    embedder = RecordingEmbedder()
    builds: list[int] = []

    def build(settings):
        builds.append(1)
        scorer = build_scorer(settings)
        assert isinstance(scorer, EmbeddingScorer)
        return EmbeddingScorer(embedder, scorer.catalog)

    return Playground(settings_factory(backend="fake"), build), embedder, builds


def test_the_scorer_is_built_once_on_first_use_even_under_concurrency(recording):
    playground, _, builds = recording
    assert playground.loaded is None and playground.embedder is None  # nothing at construction
    barrier = threading.Barrier(6)
    got = []

    def use() -> None:
        barrier.wait()
        got.append(playground.scorer())

    threads = [threading.Thread(target=use) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1 and len({id(s) for s in got}) == 1
    assert playground.loaded is got[0] and isinstance(playground.embedder, RecordingEmbedder)


def test_texts_are_queries_in_one_batch_and_sorted_by_score(recording):
    playground, embedder, _ = recording
    image = playground.analyse(decoded("a red bicycle"))
    assert image.vector is not None and "weapons" in image.scores
    embedder.text_calls.clear()
    texts = ["a cat", "a red bicycle", "a blue bicycle", "a red car"]
    rows = playground.match(image, texts)
    assert embedder.text_calls == [(tuple(texts), QUERY_INSTRUCTION)]  # one call, not a loop
    assert [r.text for r in rows][0] == "a red bicycle" and rows[0].score > 0.99
    assert [r.score for r in rows] == sorted((r.score for r in rows), reverse=True)
    assert rows[0].band == "very_high" and rows[-1].text == "a cat" and rows[-1].band == "none"
    assert playground.match(image, []) == []


def test_an_analysed_image_is_remembered_not_embedded_again(recording, monkeypatch):
    playground, embedder, _ = recording
    first = playground.analyse(decoded("a red bicycle"))
    assert embedder.image_calls == 1  # scores and vector from ONE image forward
    assert playground.analyse(decoded("a red bicycle")) is first and embedder.image_calls == 1
    assert playground.recall(first.sha256) is first and playground.recall("0" * 64) is None
    assert first.thumbnail.startswith("data:image/jpeg;base64,")
    monkeypatch.setattr(playground_module, "MEMO_SIZE", 2)
    playground.analyse(decoded("a green tree"))
    playground.analyse(decoded("a yellow boat"))
    assert playground.recall(first.sha256) is None  # the oldest is forgotten past the bound


def test_a_classifier_backend_scores_the_image_but_cannot_match_texts(settings_factory):
    playground = Playground(settings_factory())  # the embedded default: open_nsfw
    assert playground.backend == "open_nsfw" and not playground.matches_texts
    image = playground.analyse(decoded("a red bicycle"))
    assert set(image.scores) == {"sexual"} and image.vector is None
    assert 0.0 <= image.scores["sexual"].score <= 1.0
    with pytest.raises(TextsRejected, match="MODERATION_BACKEND=gme"):
        playground.match(image, ["a cat"])


def test_a_backend_that_cannot_be_built_says_which_setting_and_is_retried(settings_factory):
    calls = []

    def build(settings):
        calls.append(1)
        return build_scorer(settings)

    playground = Playground(settings_factory(backend="gme"), build)
    for _ in range(2):
        with pytest.raises(PlaygroundUnavailable, match="MODERATION_GME_PATH"):
            playground.scorer()
    assert len(calls) == 2 and playground.loaded is None


@pytest.mark.parametrize(("size", "expected"), [((1000, 500), (320, 160)), ((64, 48), (64, 48))])
def test_thumbnails_shrink_large_images_and_never_upscale(size, expected):
    buffer = io.BytesIO()
    Image.new("RGB", size, "teal").save(buffer, "PNG")
    uri = thumbnail_uri(decode_image(buffer.getvalue()))
    prefix = "data:image/jpeg;base64,"
    assert uri.startswith(prefix)
    assert Image.open(io.BytesIO(base64.b64decode(uri[len(prefix) :]))).size == expected
