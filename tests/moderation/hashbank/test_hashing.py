"""PDQ hashing: determinism, hex round-trip, quality, dihedral variants, distance helpers."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from moderation.hashbank.hashing import (
    DIHEDRAL_VARIANTS,
    HASH_SIDE,
    PDQ_MATCH_THRESHOLD,
    PdqHash,
    compute_crop_hashes,
    compute_pdq,
    crop_windows,
    hamming,
    hamming_many,
    hashes_to_words,
    hex_to_words,
    is_pdq_hex,
    join_hashes,
    split_hashes,
    words_to_hex,
)
from tests.synthetic_images import flat_image, synthetic_photo


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return synthetic_photo(7, (480, 360))


def test_hash_is_deterministic_and_well_formed(photo):
    first, second = compute_pdq(photo), compute_pdq(photo.copy())
    assert first == second
    assert is_pdq_hex(first.hex) and len(first.hex) == 64
    assert first.quality >= 90  # textured photo: PDQ is confident
    assert first.variants == ()


def test_hex_matches_reference_bit_order(photo):
    """ThreatExchange's encoding: the bit vector read as one big-endian binary number."""
    import pdqhash

    resized = photo.resize((HASH_SIDE, HASH_SIDE), Image.Resampling.BOX)
    bits, _ = pdqhash.compute(np.asarray(resized))
    expected = f"{int(''.join(str(int(b)) for b in bits), 2):064x}"
    assert compute_pdq(photo).hex == expected


def test_entries_hashed_the_old_way_still_match_their_images():
    """Entries banked when hashing was LANCZOS to a 512 px longest side stay well inside the
    match threshold of today's hashes of the same images (measured on 120 photo × size pairs:
    median 8, max 16 bits — the same as with the 320 × 320 input of the previous version)."""
    import pdqhash

    distances = []
    for seed in range(8):
        photo = synthetic_photo(200 + seed, (640, 480))
        for image in (photo, photo.resize((1536, 1152)), photo.resize((300, 225))):
            scale = 512 / max(image.size)
            size = (round(image.width * scale), round(image.height * scale))
            bits, _ = pdqhash.compute(np.asarray(image.resize(size, Image.Resampling.LANCZOS)))
            lanczos = np.packbits(bits.astype(np.uint8)).tobytes().hex()
            distances.append(hamming(compute_pdq(image).hex, lanczos))
    assert max(distances) <= 16 < PDQ_MATCH_THRESHOLD and np.median(distances) <= 10


def test_hex_round_trips_through_words(photo):
    hashes = [compute_pdq(synthetic_photo(s, (96, 64))).hex for s in range(5)]
    words = hashes_to_words(hashes)
    assert words.shape == (5, 4) and words.dtype == np.uint64
    assert [words_to_hex(w) for w in words] == hashes
    assert words_to_hex(hex_to_words(hashes[0])) == hashes[0]


def test_distances_agree_with_bit_counting():
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 2, size=(50, 256), dtype=np.uint8)
    hexes = [np.packbits(b).tobytes().hex() for b in bits]
    expected = (bits != bits[0]).sum(axis=1)
    assert [hamming(hexes[0], h) for h in hexes] == expected.tolist()
    got = hamming_many(hashes_to_words(hexes), hex_to_words(hexes[0]))
    assert got.tolist() == expected.tolist()
    assert hamming(hexes[0], hexes[0]) == 0


def test_flat_image_has_zero_quality():
    assert compute_pdq(flat_image()).quality < 50


def test_dihedral_variants_name_the_transform(photo):
    pdq = compute_pdq(photo, dihedral=True)
    assert len(pdq.variants) == len(DIHEDRAL_VARIANTS) - 1
    assert pdq.hex == compute_pdq(photo).hex
    mirrored = compute_pdq(photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    by_name = dict(pdq.queries())
    # the DCT-derived variant sits a few bits from the hash of the really mirrored pixels: the
    # 64×64 box average of a non-multiple size is not exactly mirror-symmetric — well inside 31
    assert hamming(by_name["flip_h"], mirrored.hex) <= 10
    assert min(hamming(h, mirrored.hex) for _, h in pdq.queries()) == hamming(
        by_name["flip_h"], mirrored.hex
    )
    assert hamming(pdq.hex, mirrored.hex) > 64  # PDQ itself is not mirror-invariant
    assert [name for name, _ in pdq.queries(with_variants=False)] == ["original"]


@pytest.mark.parametrize("size", [(640, 480), (1280, 720), (720, 1280), (641, 479), (97, 61)])
def test_flips_and_rotations_land_near_a_dihedral_variant_at_any_aspect(size):
    photo = synthetic_photo(100, size)
    pdq = compute_pdq(photo, dihedral=True)
    for op in (Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.ROTATE_90,
               Image.Transpose.FLIP_TOP_BOTTOM, Image.Transpose.ROTATE_270):  # fmt: skip
        moved = compute_pdq(photo.transpose(op)).hex
        assert min(hamming(h, moved) for _, h in pdq.queries()) <= 10


def test_resize_normalisation_makes_scale_cheap(photo):
    half = photo.resize((photo.width // 2, photo.height // 2), Image.Resampling.BILINEAR)
    assert hamming(compute_pdq(photo).hex, compute_pdq(half).hex) <= 10


@pytest.mark.parametrize("size", [(1, 1), (3, 2), (4000, 3), (2, 900)])
def test_degenerate_sizes_hash_without_error(size):
    pdq = compute_pdq(Image.new("RGB", size, (10, 200, 30)))
    assert is_pdq_hex(pdq.hex) and 0 <= pdq.quality <= 100


def test_non_rgb_modes_are_converted(photo):
    assert compute_pdq(photo.convert("L")).quality >= 0
    assert compute_pdq(photo.convert("RGBA")).hex == compute_pdq(photo).hex


@pytest.mark.parametrize(
    "bad", ["", "xyz", "A" * 64, "0" * 63, "0" * 65, "g" * 64, None, 12]
)  # fmt: skip
def test_invalid_hashes_are_refused(bad):
    assert not is_pdq_hex(bad)
    with pytest.raises((ValueError, TypeError)):
        PdqHash(hex=bad, quality=80)  # type: ignore[arg-type]


def test_from_hex_normalises_case_and_checks_quality():
    assert PdqHash.from_hex("AB" * 32, 90).hex == "ab" * 32
    with pytest.raises(ValueError):
        PdqHash(hex="0" * 64, quality=101)
    with pytest.raises(ValueError, match="variants"):
        PdqHash(hex="0" * 64, quality=50, variants=("1" * 64,))


def test_hashes_to_words_rejects_bad_lengths():
    with pytest.raises(ValueError):
        hashes_to_words(["0" * 62])
    with pytest.raises(ValueError):
        hashes_to_words(["zz" * 32])
    assert hashes_to_words([]).shape == (0, 4)


@pytest.mark.parametrize(
    ("size", "grid", "keep", "boxes"),
    [
        ((100, 50), 0, 0.9, []),
        ((100, 50), 1, 0.9, [(5, 2, 95, 47)]),  # centred (2.5 rounds to 2)
        ((100, 50), 2, 0.9, [(0, 0, 90, 45), (10, 0, 100, 45), (0, 5, 90, 50), (10, 5, 100, 50)]),
        ((200, 100), 3, 0.96, [(0, 0, 192, 96), (4, 0, 196, 96), (8, 0, 200, 96),
                               (0, 2, 192, 98), (4, 2, 196, 98), (8, 2, 200, 98),
                               (0, 4, 192, 100), (4, 4, 196, 100), (8, 4, 200, 100)]),
    ],
)  # fmt: skip
def test_crop_windows_tile_the_trimmed_margin(size, grid, keep, boxes):
    assert crop_windows(*size, grid, keep) == boxes


def test_crop_windows_refuse_a_meaningless_fraction():
    with pytest.raises(ValueError, match="keep"):
        crop_windows(100, 100, 2, 1.0)


def test_crop_hashes_are_window_hashes_and_skip_featureless_ones(photo):
    crops = compute_crop_hashes(photo, 2, keep=0.9)
    assert len(crops) == 4 and all(is_pdq_hex(h) for h in crops)
    assert crops[0] == compute_pdq(photo.crop((0, 0, 432, 324))).hex
    assert compute_crop_hashes(flat_image(), 3) == ()
    assert compute_crop_hashes(photo, 0) == ()


def test_joined_hashes_round_trip(photo):
    hexes = [compute_pdq(photo).hex, "0" * 64]
    assert split_hashes(join_hashes(hexes)) == hexes
    assert join_hashes([]) is None and split_hashes(None) == []
    with pytest.raises(ValueError, match="multiple of 64"):
        split_hashes("ab" * 33)
    with pytest.raises(ValueError, match="not a PDQ hash"):
        join_hashes(["xyz"])
