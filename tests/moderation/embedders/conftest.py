"""Fixtures for embedder tests: one tiny random GME checkpoint per session, loaded for real."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from .gme_fixture import build_tiny_gme


@pytest.fixture(scope="session")
def tiny_gme_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """(directory, state dict) of a tiny random GME written in the real download's layout."""
    pytest.importorskip("transformers")
    directory = tmp_path_factory.mktemp("tiny-gme")
    state = build_tiny_gme(directory)
    return directory, state


@pytest.fixture(scope="session")
def tiny_gme_dir(tiny_gme_checkpoint: tuple[Path, dict]) -> Path:
    return tiny_gme_checkpoint[0]


@pytest.fixture(scope="session")
def tiny_gme(tiny_gme_dir: Path):  # -> GmeEmbedder
    """The production ``GmeEmbedder`` on the tiny checkpoint: CPU, fp32, right padding."""
    from moderation.embedders.gme import GmeEmbedder

    embedder = GmeEmbedder(tiny_gme_dir, device="cpu", batch_size=8)
    yield embedder
    embedder.close()


@pytest.fixture(scope="session")
def tiny_gme_small(tiny_gme_dir: Path):  # -> GmeEmbedder
    """Like ``tiny_gme`` but with 16..64 visual tokens per image, for fast batching tests."""
    from moderation.embedders.gme import GmeEmbedder

    embedder = GmeEmbedder(
        tiny_gme_dir, device="cpu", batch_size=8, min_image_tokens=16, max_image_tokens=64
    )
    yield embedder
    embedder.close()


@pytest.fixture(scope="session")
def tiny_gme_small_left(tiny_gme_small):  # -> GmeEmbedder
    """The same loaded model as ``tiny_gme_small``, padding batches on the left."""
    left = copy.copy(tiny_gme_small)
    left.padding_side = "left"
    return left
