"""Test doubles that are real implementations of small protocols (no mocks)."""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image

from moderation.domain import ScoreSource
from moderation.scoring.base import CategoryScore, ScoreSet

__all__ = ["ColourScorer", "noise_jpeg", "png_bytes"]


class ColourScorer:
    """A deterministic scorer: ``sexual`` = mean red, ``violence`` = mean green (0–1).

    ``poison_width`` makes any image of that width raise (a scorer crash on one input).
    """

    model_id = "test-colour-v1"
    catalog_version = "test-catalog"
    categories = ("sexual", "violence")
    scales = {"sexual": "probability", "violence": "probability"}
    severities = {"sexual": 3, "violence": 4}
    base_thresholds: dict[str, float] = {}

    def __init__(self, poison_width: int | None = None) -> None:
        self.poison_width = poison_width
        self.calls: list[int] = []  # batch sizes seen

    def score_images(self, images: Sequence[Image.Image]) -> list[ScoreSet]:
        self.calls.append(len(images))
        out = []
        for image in images:
            if image.width == self.poison_width:
                raise RuntimeError(f"scorer cannot handle width {image.width}")
            small = image.resize((1, 1))
            r, g, _ = small.getpixel((0, 0))
            out.append(
                {
                    "sexual": CategoryScore("sexual", r / 255, ScoreSource.CLASSIFIER),
                    "violence": CategoryScore("violence", g / 255, ScoreSource.CLASSIFIER),
                }
            )
        return out


def png_bytes(colour: tuple[int, int, int] = (0, 0, 0), size: tuple[int, int] = (16, 16)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def noise_jpeg(size: tuple[int, int] = (64, 64), seed: int = 0) -> bytes:
    """A JPEG of random pixels (large enough that cutting it short leaves a valid header)."""
    import random

    rng = random.Random(seed)
    pixels = bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 3))
    image = Image.frombytes("RGB", size, pixels)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    return buf.getvalue()
