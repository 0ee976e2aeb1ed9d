"""PDQ perceptual hashes: compute (with quality), hex encoding, Hamming distances.

PDQ (Meta's photo hash, https://github.com/facebook/ThreatExchange/tree/main/pdq) turns an image
into 256 bits; near copies (re-encoded, resized, lightly cropped) land within a small Hamming
distance — 31 of 256 is PDQ's recommended "confident match" threshold. PDQ also reports a quality
0–100: below 50 the image is too featureless (flat, tiny, mostly one colour) for its hash to mean
anything, and such hashes must neither enter a bank nor be matched.

Hex encoding is the one ThreatExchange/HMA use: the 256 bits of ``pdqhash.compute`` read as one
big-endian binary number, 64 lower-case hex digits (the ``images.pdq_hash`` column).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pdqhash
from PIL import Image

__all__ = [
    "CROP_KEEP",
    "DIHEDRAL_VARIANTS",
    "HASH_BITS",
    "HASH_SIDE",
    "PDQ_MATCH_THRESHOLD",
    "PDQ_MIN_QUALITY",
    "PdqHash",
    "compute_crop_hashes",
    "compute_pdq",
    "crop_windows",
    "hamming",
    "hamming_many",
    "hashes_to_words",
    "hex_to_words",
    "is_pdq_hex",
    "join_hashes",
    "split_hashes",
    "words_to_hex",
]

HASH_BITS = 256
PDQ_MATCH_THRESHOLD = 31  # PDQ's recommended confident-match distance (of 256 bits)
PDQ_MIN_QUALITY = 50  # PDQ's guidance: hashes of quality < 50 are too featureless to match
# Every image is box-averaged (down *or up*, aspect ratio ignored) to HASH_SIDE × HASH_SIDE
# = 64 × 64 before hashing: exactly the grid PDQ reduces any image to, so PDQ's own filtering
# and decimation become the identity and the hash is the DCT of the area-averaged luminance.
# A fixed input size matters twice over:
# - PDQ's reduction uses filter windows that depend on the input size, so the same picture at
#   two sizes hashes further apart than it need be (a 50 % downscale: median 14–20 bits
#   unnormalised vs 2–4 normalised, seeded synthetic photos);
# - mirror symmetry: flips and 90° rotations, matched through the dihedral variants, must land
#   on the variant computed from the original's DCT. An exact area average (PIL's BOX *without*
#   ``reducing_gap``, whose integer pre-reduction starts at the top-left corner) is symmetric:
#   median 0–2, max 8 bits at 4:3, 16:9, 9:16, 1:1 and odd sizes; with ``reducing_gap`` max 14.
#   Of PDQ's own reductions only odd windows are symmetric (320 → 3: as good; 128, 256: not).
# Against the previous 320 × 320 input (bench_bank, 200 photos): the same recall for resize,
# JPEG, flips and crop windows (centred 3 % crops 65.5 vs 56.5 %), the nearest unrelated photo
# 90 bits away (86 before), at ~3× less CPU on the decode threads, where every image is hashed:
# 0.9 vs 5.2 ms for a 64×64 image, 1.4 vs 4.1 ms at 640×480, 4.9 vs 9.3 ms at 1920×1080.
# The price: our hashes differ from reference PDQ on the raw pixels, which matters only when
# importing hash lists computed elsewhere; entries hashed the old ways stay within 16 bits.
HASH_SIDE = 64

# Order of pdqhash.compute_dihedral's outputs (pdqhash README). "flip_h" mirrors left↔right.
DIHEDRAL_VARIANTS: tuple[str, ...] = (
    "original",
    "rot90",
    "rot180",
    "rot270",
    "flip_v",
    "flip_h",
    "rot90_flip_v",
    "rot90_flip_h",
)

# Crop variants of a banked image: windows of this fraction of each side, on an n×n grid of
# offsets from one corner to the other (``crop_windows``). PDQ moves ~60 bits under a 5 % crop
# (every DCT coefficient's phase shifts) but only ~20 under a ≤ 2 % one, so a query cropped by
# a few per cent lands near the window whose size and offset are nearest its own. Measured on
# seeded synthetic photos (3×3 grid, random-offset crops): 96 % windows catch 2–5 % crops best
# and miss 8 % ones; 93–94 % windows catch 8 % crops but lose the 3 % ones.
CROP_KEEP = 0.96

_HEX_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class PdqHash:
    """A PDQ hash as 64 hex chars, its quality (0–100), and optionally the hashes of the image's
    7 other rotations/mirrors (``DIHEDRAL_VARIANTS[1:]``), for flip-robust matching."""

    hex: str
    quality: int
    variants: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for value in (self.hex, *self.variants):
            if not is_pdq_hex(value):
                raise ValueError(f"not a PDQ hash (64 lower-case hex digits): {value!r}")
        if not 0 <= self.quality <= 100:
            raise ValueError(f"PDQ quality must be 0..100, got {self.quality}")
        if self.variants and len(self.variants) != len(DIHEDRAL_VARIANTS) - 1:
            raise ValueError(f"expected {len(DIHEDRAL_VARIANTS) - 1} variants or none")

    def queries(self, *, with_variants: bool = True) -> list[tuple[str, str]]:
        """(variant name, hex) pairs to look up: the hash itself, then its variants when wanted
        and computed."""
        pairs = [("original", self.hex)]
        if with_variants and self.variants:
            pairs += list(zip(DIHEDRAL_VARIANTS[1:], self.variants, strict=True))
        return pairs

    @classmethod
    def from_hex(cls, hex_hash: str, quality: int) -> PdqHash:
        """A stored hash (e.g. ``images.pdq_hash``), normalised to lower case."""
        return cls(hex=hex_hash.strip().lower(), quality=quality)


def is_pdq_hex(value: object) -> bool:
    return isinstance(value, str) and _HEX_RE.match(value) is not None


def compute_pdq(image: Image.Image, *, dihedral: bool = False, side: int = HASH_SIDE) -> PdqHash:
    """PDQ hash of a decoded image (any mode; converted to RGB) after resizing it to
    ``side`` × ``side`` px (see HASH_SIDE). ``dihedral`` also computes the 7 rotated/mirrored
    variants in the same pass (the DCT is shared, so it costs little more)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    if rgb.size != (side, side):
        # an exact area average; no reducing_gap: its corner-anchored pre-reduction breaks
        # mirror symmetry (see HASH_SIDE)
        rgb = rgb.resize((side, side), Image.Resampling.BOX)
    pixels = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
    if dihedral:
        vectors, quality = pdqhash.compute_dihedral(pixels)
        hexes = [_bits_to_hex(v) for v in vectors]
        return PdqHash(hex=hexes[0], quality=int(quality), variants=tuple(hexes[1:]))
    vector, quality = pdqhash.compute(pixels)
    return PdqHash(hex=_bits_to_hex(vector), quality=int(quality))


def crop_windows(
    width: int, height: int, grid: int, keep: float = CROP_KEEP
) -> list[tuple[int, int, int, int]]:
    """(left, top, right, bottom) boxes of ``keep``·width × ``keep``·height windows at the
    ``grid`` × ``grid`` offsets 0, 1/(grid−1), …, 1 of the trimmed margin (grid 1: centred).
    Pure geometry; ``grid`` 0 gives no windows."""
    if grid <= 0:
        return []
    if not 0 < keep < 1:
        raise ValueError(f"keep must be in (0, 1), got {keep}")
    cut_x, cut_y = round(width * (1 - keep)), round(height * (1 - keep))
    steps = [0.5] if grid == 1 else [i / (grid - 1) for i in range(grid)]
    boxes = []
    for fy in steps:
        for fx in steps:
            left, top = round(cut_x * fx), round(cut_y * fy)
            boxes.append((left, top, left + width - cut_x, top + height - cut_y))
    return boxes


def compute_crop_hashes(
    image: Image.Image, grid: int, *, keep: float = CROP_KEEP, min_quality: int = PDQ_MIN_QUALITY
) -> tuple[str, ...]:
    """PDQ hashes of the image's ``crop_windows`` (banked next to its own hash so cropped
    copies match). Windows too featureless to match on (quality < ``min_quality``) are left
    out."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    hashes = []
    for box in crop_windows(rgb.width, rgb.height, grid, keep):
        pdq = compute_pdq(rgb.crop(box))
        if pdq.quality >= min_quality:
            hashes.append(pdq.hex)
    return tuple(hashes)


def join_hashes(hex_hashes: Sequence[str]) -> str | None:
    """Hashes as one string (the ``bank_entries.crop_hashes`` column); None for none."""
    for value in hex_hashes:
        if not is_pdq_hex(value):
            raise ValueError(f"not a PDQ hash (64 lower-case hex digits): {value!r}")
    return "".join(hex_hashes) or None


def split_hashes(joined: str | None) -> list[str]:
    """Inverse of ``join_hashes``."""
    if not joined:
        return []
    if len(joined) % 64:
        raise ValueError(f"joined PDQ hashes must be a multiple of 64 hex digits: {len(joined)}")
    return [joined[i : i + 64] for i in range(0, len(joined), 64)]


def _bits_to_hex(bits: npt.NDArray[np.integer]) -> str:
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex()


def hex_to_words(hex_hash: str) -> npt.NDArray[np.uint64]:
    """One hash as 4 uint64 words (the unit the distance functions work on)."""
    return hashes_to_words([hex_hash])[0]


def hashes_to_words(hex_hashes: Sequence[str]) -> npt.NDArray[np.uint64]:
    """Hashes as an (n, 4) uint64 array. Byte order is irrelevant to Hamming distance, so the
    raw bytes are viewed as native words; ``words_to_hex`` inverts it exactly."""
    if not hex_hashes:
        return np.zeros((0, 4), dtype=np.uint64)
    try:
        raw = bytes.fromhex("".join(hex_hashes))
    except ValueError as exc:
        raise ValueError(f"invalid hex in PDQ hashes: {exc}") from None
    if len(raw) != 32 * len(hex_hashes) or any(len(h) != 64 for h in hex_hashes):
        raise ValueError("every PDQ hash must be exactly 64 hex digits")
    return np.frombuffer(raw, dtype=np.uint64).reshape(-1, 4).copy()


def words_to_hex(words: npt.NDArray[np.uint64]) -> str:
    return np.ascontiguousarray(words, dtype=np.uint64).tobytes().hex()


def hamming(a: str, b: str) -> int:
    """Hamming distance 0–256 between two hex hashes."""
    return int(np.bitwise_count(hex_to_words(a) ^ hex_to_words(b)).sum())


def hamming_many(bank: npt.NDArray[np.uint64], query: npt.NDArray[np.uint64]) -> npt.NDArray:
    """Distances (int, 0–256) from one hash (4 words) to each row of an (n, 4) bank: the
    brute-force scan — XOR, popcount per word, sum."""
    return np.bitwise_count(bank ^ query).sum(axis=1, dtype=np.int32)
