"""The ``Embedder`` protocol every embedding backend implements, and shared helpers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = [
    "DEFAULT_IMAGE_INSTRUCTION",
    "QUERY_INSTRUCTION",
    "Embedder",
    "EmbedderInfo",
    "ImageClassifier",
    "l2_normalise",
]

# GME's recipe (SEED-DIGEST §1): texts are retrieval *queries* with this instruction; images
# are corpus items with the default system prompt.
QUERY_INSTRUCTION = "Find an image that matches the given text."
DEFAULT_IMAGE_INSTRUCTION = "You are a helpful assistant."


@dataclass(frozen=True)
class EmbedderInfo:
    name: str  # backend name, e.g. "gme"
    model_id: str  # weights + recipe identity; part of every cache key
    dim: int
    dtype: str  # compute dtype, e.g. "bfloat16", "float32"
    device: str


@runtime_checkable
class Embedder(Protocol):
    """Images and texts into one space; rows are L2-normalised float32."""

    info: EmbedderInfo

    def embed_images(self, images: Sequence[Image]) -> np.ndarray:
        """float32 [n, dim], unit rows, one forward per batch."""
        ...

    def embed_texts(self, texts: Sequence[str], instruction: str = QUERY_INSTRUCTION) -> np.ndarray:
        """float32 [m, dim], unit rows; ``instruction`` goes in the system turn."""
        ...


@runtime_checkable
class ImageClassifier(Protocol):
    """A model that emits one category's score directly (no phrasings), e.g. Open-NSFW."""

    model_id: str  # weights + preprocessing identity; part of every score-reuse key
    category: str  # the catalog category it scores, e.g. "sexual"
    scale: str  # the score scale, e.g. "probability"

    def classify(self, images: Sequence[Image]) -> np.ndarray:
        """float32 [n] scores on ``scale``, batched internally."""
        ...


def l2_normalise(matrix: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), as float32."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.maximum(norms, eps)
