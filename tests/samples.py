"""The packaged sample photos (``moderation/samples``) for tests; licences in
moderation/samples_LICENSES.md."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "moderation" / "samples"
BROKEN_DIR = SAMPLES_DIR / "broken"


def sample_paths() -> list[Path]:
    """The real photos, sorted (at least three)."""
    return sorted(SAMPLES_DIR.glob("*.jpg"))


def sample_images() -> list[Image.Image]:
    """The real photos decoded to RGB."""
    images = []
    for path in sample_paths():
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    return images
