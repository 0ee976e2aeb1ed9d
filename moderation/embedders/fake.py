"""A deterministic, model-free embedder for pipeline tests: pixel grids and hashed words.

Images and texts land in one 768-dim space (16 × 16 px × 3 channels):

- an image is box-averaged to 16 × 16 RGB, centred on mid-grey (``pixel / 255 - 0.5``) and
  L2-normalised;
- a text is the sum of one pseudo-random Gaussian vector per content word (seeded by the
  word's BLAKE2b hash; stop words and the variant-template words such as "photo", "image",
  "showing" are dropped), L2-normalised. The instruction is ignored.

So an unrelated image and phrasing have cosine ≈ N(0, 1/768) (std ≈ 0.036: "clear" under
the content-safety cut-offs), phrasings that share content words are similar, and a test can
build a deliberately violating image: ``FakeEmbedder.image_matching("a photo of a gun")``
draws the phrasing's vector as pixels, so it scores ≈ 1.0 against every phrasing whose content
words are exactly ``{"gun"}``. Encode it losslessly (PNG): JPEG blurs the pattern.

Device-shaped: with ``device_ms_per_image`` (``MODERATION_FAKE_DEVICE_MS_PER_IMAGE``) each image
forward also holds its batch ``n × device_ms_per_image`` ms in a sleep, which releases the GIL
and uses no CPU — what a forward on a GPU looks like to the host. The pipeline's overlap of
decode, hashing and database work with model time can then be measured on a CPU-only machine
(``benchmarks/bench_pipeline.py --device-ms 8``). Vectors are the same with or without it.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from moderation.embedders.base import QUERY_INSTRUCTION, EmbedderInfo, l2_normalise

__all__ = ["FAKE_DIM", "FakeEmbedder", "content_words"]

GRID = 16
FAKE_DIM = GRID * GRID * 3
MODEL_ID = f"fake-v1-pixelgrid{GRID}-wordhash"

# Function words plus the seed's variant-template words: without them every phrasing built
# from "a photo of {subject}" would resemble every other, across categories.
STOP_WORDS = frozenset(
    """a an the of in on at to and or with without for from by as is are be being this that
    these those there some any its it their his her photo photograph photos picture pictures
    image images detailed detail showing shows show shown depicting depicts depiction
    containing contains visible scene""".split()
)
_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")


def content_words(text: str) -> list[str]:
    """Lower-cased words of ``text`` without stop words (order and repeats kept)."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]


def _word_vector(word: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "big")
    return np.random.default_rng(seed).standard_normal(FAKE_DIM)


class FakeEmbedder:
    """Implements ``Embedder`` without a model; same input → bit-identical vector."""

    def __init__(
        self,
        model_path: object = None,
        *,
        device: str = "cpu",
        batch_size: int = 16,
        device_ms_per_image: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        # model_path and device mirror the real backends' constructors and are ignored
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not device_ms_per_image >= 0:
            raise ValueError(f"device_ms_per_image must be >= 0, got {device_ms_per_image}")
        self.batch_size = batch_size
        self.device_ms_per_image = float(device_ms_per_image)
        self._sleep = sleep  # time.sleep releases the GIL and burns no CPU
        self.info = EmbedderInfo(
            name="fake", model_id=MODEL_ID, dim=FAKE_DIM, dtype="float32", device="cpu"
        )

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """float32 [n, 768] unit rows: the centred 16 × 16 RGB box average of each image,
        ``batch_size`` images per "forward" (``forward_images``), as a real backend batches."""
        return self._batched(images, self.forward_images)

    def embed_texts(self, texts: Sequence[str], instruction: str = QUERY_INSTRUCTION) -> np.ndarray:
        """float32 [m, 768] unit rows: the sum of the content words' hashed vectors."""
        return self._batched(texts, self.forward_texts)

    def forward_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """One batch of images (the stand-in for a model forward); with a device time, the
        batch is held ``len(images) × device_ms_per_image`` ms as a device would hold it."""
        if self.device_ms_per_image and images:
            self._sleep(len(images) * self.device_ms_per_image / 1000)
        grids = [
            np.asarray(image.convert("RGB").resize((GRID, GRID), Image.Resampling.BOX))
            for image in images
        ]
        features = np.stack(grids).reshape(len(images), FAKE_DIM).astype(np.float32) / 255 - 0.5
        return l2_normalise(features)

    def forward_texts(self, texts: Sequence[str]) -> np.ndarray:
        """One batch of texts (the stand-in for a model forward); no instruction involved."""
        rows = []
        for text in texts:
            # a text of stop words only still gets its own (whole-text) direction
            words = content_words(text) or [text.lower().strip() or "<empty>"]
            rows.append(np.sum([_word_vector(w) for w in words], axis=0))
        return l2_normalise(np.stack(rows))

    def _batched(self, items: Sequence, forward: Callable[[Sequence], np.ndarray]) -> np.ndarray:
        if not items:
            return np.empty((0, FAKE_DIM), dtype=np.float32)
        size = self.batch_size
        return np.concatenate([forward(items[i : i + size]) for i in range(0, len(items), size)])

    @staticmethod
    def image_matching(text: str, size: int = 64) -> Image.Image:
        """An RGB image whose fake embedding ≈ ``text``'s (cosine > 0.99 when saved as PNG).

        ``size`` should be a multiple of 16 so the box average recovers the grid exactly.
        """
        vector = FakeEmbedder().embed_texts([text])[0]
        pixels = 127.5 + 127.0 * vector / np.abs(vector).max()
        grid = np.clip(np.rint(pixels), 0, 255).astype(np.uint8).reshape(GRID, GRID, 3)
        return Image.fromarray(grid, "RGB").resize((size, size), Image.Resampling.NEAREST)
