"""Safe decoding: every kind of bad upload becomes one ImageRejected with a stable code."""

from __future__ import annotations

import io
import struct
import threading
import zlib

import pytest
from PIL import Image

import moderation.images as images_module
from moderation.hashbank.hashing import PDQ_MIN_QUALITY, compute_pdq, hamming
from moderation.images import (
    DEFAULT_WORKING_PIXELS,
    NEEDED_PIXELS,
    ImageRejected,
    PixelGate,
    decode_image,
    reduce_factor,
    sha256_hex,
    working_size,
)
from tests.synthetic_images import synthetic_photo


def encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width×height (a decompression bomb needs no real pixels)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"])
def test_accepted_formats_decode_to_rgb(fmt):
    data = encode(Image.new("RGB", (40, 30), (200, 10, 10)), fmt)
    decoded = decode_image(data)
    assert decoded.image.mode == "RGB"
    assert (decoded.width, decoded.height) == (40, 30)
    assert decoded.format == fmt
    assert decoded.sha256 == sha256_hex(data)
    assert decoded.byte_size == len(data)


def test_transparency_is_composited_on_white():
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    decoded = decode_image(encode(rgba, "PNG"))
    assert decoded.image.getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (60, 20), (0, 128, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    decoded = decode_image(encode(img, "JPEG", exif=exif.tobytes()))
    assert (decoded.width, decoded.height) == (20, 60)


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    decoded = decode_image(buf.getvalue())
    r, g, b = decoded.image.getpixel((4, 4))
    assert r > 200 and b < 50


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty"),
        (b"%PDF-1.7 not an image at all", "not_an_image"),
        (b"\x00" * 100, "not_an_image"),
        (b"GIF89a", "not_an_image"),  # a header with nothing after it
    ],
)
def test_garbage_is_rejected(data, code):
    with pytest.raises(ImageRejected) as info:
        decode_image(data)
    assert info.value.code == code


def test_wrong_type_is_rejected():
    with pytest.raises(ImageRejected) as info:
        decode_image("not bytes")  # type: ignore[arg-type]
    assert info.value.code == "wrong_type"


def test_truncated_jpeg_is_rejected():
    data = encode(Image.effect_noise((256, 256), 60).convert("RGB"), "JPEG", quality=95)
    with pytest.raises(ImageRejected) as info:
        decode_image(data[: len(data) // 2])
    assert info.value.code in {"truncated", "corrupt"}


def test_too_many_bytes_is_rejected_before_decoding():
    data = encode(Image.new("RGB", (64, 64)), "PNG")
    with pytest.raises(ImageRejected) as info:
        decode_image(data, max_bytes=len(data) - 1)
    assert info.value.code == "too_large"


def test_decompression_bomb_is_rejected_from_the_header():
    bomb = png_header_only(100_000, 100_000)  # 10 G pixels claimed, a few bytes sent
    assert len(bomb) < 200
    with pytest.raises(ImageRejected) as info:
        decode_image(bomb)
    assert info.value.code == "too_many_pixels"
    # beyond Pillow's own guard too, the reason quotes the configured limit, not Pillow's
    assert "exceeds the 50000000 limit" in info.value.message
    assert "178956970" not in info.value.message


def test_pixel_limit_is_configurable():
    data = encode(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(ImageRejected) as info:
        decode_image(data, max_pixels=9_999)
    assert info.value.code == "too_many_pixels"
    assert decode_image(data, max_pixels=10_000).width == 100


def test_disallowed_format_names_the_format():
    data = encode(Image.new("RGB", (8, 8)), "ICO")
    with pytest.raises(ImageRejected) as info:
        decode_image(data)
    assert info.value.code == "not_an_image"
    assert "ICO" in info.value.message


def test_configured_pixel_limit_above_pillows_own_guard_is_the_one_that_decides():
    header_225mp = png_header_only(15_000, 15_000)  # above Pillow's default 178,956,970
    with pytest.raises(ImageRejected) as info:
        decode_image(header_225mp, max_pixels=300_000_000)
    assert info.value.code in {"truncated", "corrupt"}  # past the pixel check: no pixels sent
    with pytest.raises(ImageRejected) as info:
        decode_image(header_225mp, max_pixels=200_000_000)
    assert info.value.code == "too_many_pixels"
    assert info.value.message == "15000x15000 = 225000000 pixels exceeds the 200000000 limit"


@pytest.mark.parametrize(
    ("size", "budget"),
    [((640, 480), 307_200), ((6000, 4000), 4_194_304), ((4000, 6000), 1_000_000),
     ((100_000, 3), 10_000), ((3, 100_000), 10_000), ((1, 10**8), 5), ((8191, 8191), 2**22)],
)  # fmt: skip
def test_working_size_fits_the_budget_and_keeps_the_aspect_ratio(size, budget):
    w, h = working_size(*size, budget)
    assert w >= 1 and h >= 1 and w * h <= budget
    if size[0] * size[1] <= budget:
        assert (w, h) == size
    else:
        assert w <= size[0] and h <= size[1]
        if min(w, h) >= 10:
            assert abs(w / h - size[0] / size[1]) / (size[0] / size[1]) < 0.02
            assert w * h > 0.95 * budget  # the largest that fits, not merely one that fits


def photo(width: int, height: int) -> Image.Image:
    return synthetic_photo(11, (width, height))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_large_images_are_decoded_reduced_but_record_their_own_size(fmt):
    data = encode(photo(3000, 2000), fmt)
    decoded = decode_image(data, working_pixels=600_000)
    assert (decoded.width, decoded.height) == (3000, 2000)
    assert decoded.image.size == working_size(3000, 2000, 600_000) == (948, 632)
    assert decoded.image.mode == "RGB"
    full = decode_image(data, working_pixels=None)
    assert full.image.size == (3000, 2000) and (full.width, full.height) == (3000, 2000)
    # what PDQ sees (a 64×64 box average) barely moves
    reduced_hash, full_hash = compute_pdq(decoded.image), compute_pdq(full.image)
    assert full_hash.quality >= PDQ_MIN_QUALITY
    assert hamming(reduced_hash.hex, full_hash.hex) <= 8


def test_reduced_decode_turns_upright_and_records_upright_original_size():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    data = encode(photo(1200, 400), "JPEG", exif=exif.tobytes())
    decoded = decode_image(data, working_pixels=120_000)
    assert (decoded.width, decoded.height) == (400, 1200)
    assert decoded.image.size == (200, 600)


def test_large_jpegs_decode_straight_at_a_reduced_scale_within_the_bounds():
    image = Image.linear_gradient("L").resize((4800, 3200)).convert("RGB")
    decoded = decode_image(encode(image, "JPEG"))  # 15.4 MP, default working size 4.2 MP
    # 1/2 scale in the decoder already fits: no full-size pixels, no resize
    assert decoded.image.size == (2400, 1600)
    assert NEEDED_PIXELS <= 2400 * 1600 <= DEFAULT_WORKING_PIXELS
    assert (decoded.width, decoded.height) == (4800, 3200)
    # the floor: never below what the model needs, even where 1/4 scale would fit the budget
    big = decode_image(encode(image, "JPEG"), working_pixels=2 * NEEDED_PIXELS)
    assert big.image.size == working_size(4800, 3200, 2 * NEEDED_PIXELS)


def test_large_pngs_are_box_reduced_by_an_integer_factor_within_the_bounds():
    image = Image.linear_gradient("L").resize((3600, 2400)).convert("RGB")
    decoded = decode_image(encode(image, "PNG"))  # 8.6 MP
    assert decoded.image.size == (1800, 1200)  # reduce(2): one cheap pass, no resize
    assert (decoded.width, decoded.height) == (3600, 2400)


@pytest.mark.parametrize(
    ("width", "height", "least"),
    [(3600, 2400, 2**20), (8000, 6000, 2**20), (1001, 999, 1000), (5, 5, 1), (10, 10, 100),
     (100_000, 3, 10_000), (2048, 2048, 2**22)],
)  # fmt: skip
def test_reduce_factor_is_the_largest_that_keeps_least_pixels(width, height, least):
    f = reduce_factor(width, height, least)

    def area(k: int) -> int:
        return -(-width // k) * -(-height // k)

    assert f >= 1
    assert f == 1 or area(f) >= least
    assert area(f + 1) < least or f + 1 > max(width, height)


def test_images_within_the_working_size_keep_every_pixel():
    data = encode(photo(640, 480), "JPEG")
    assert decode_image(data, working_pixels=640 * 480).image.size == (640, 480)


def _png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (10, 20, 30, 255)[: len(mode)]).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


class _RecordingGate(PixelGate):
    def __init__(self) -> None:
        super().__init__()
        self.asked: list[int] = []

    def hold(self, pixels, limit):  # type: ignore[override]
        self.asked.append(pixels)
        return super().hold(pixels, limit)


def test_full_size_loads_of_large_images_pass_the_gate_and_small_or_drafted_ones_do_not():
    gate = _RecordingGate()
    decode_image(_png((3000, 2000)), gate=gate)  # 6 MP PNG: loads at full size
    decode_image(_jpeg((3000, 2000)), gate=gate)  # JPEG: decoded reduced, never full size
    decode_image(_png((1000, 1000)), gate=gate)  # within the working size
    assert gate.asked == [6_000_000]
    assert gate.held == 0  # released


def test_the_gate_admits_what_fits_and_holds_back_the_rest_until_room_is_freed():
    gate = PixelGate()
    events: list[str] = []

    def take(pixels: int) -> None:
        with gate.hold(pixels, 10):
            events.append(f"took {pixels}")

    with gate.hold(6, 10):
        small = threading.Thread(target=take, args=(3,))
        small.start()
        small.join(timeout=30)  # 6 + 3 fits: it does not wait for the 6 to go
        assert events == ["took 3"]
        large = threading.Thread(target=take, args=(6,))
        large.start()
        large.join(timeout=0.3)  # 6 + 6 does not fit: it waits
        events.append("released 6")
    large.join(timeout=30)
    assert events == ["took 3", "released 6", "took 6"]
    assert gate.held == 0


def test_a_rejected_decode_gives_its_pixels_back():
    gate = PixelGate()
    data = _png((3000, 2000))
    with pytest.raises(ImageRejected):
        decode_image(data[: len(data) // 2], gate=gate)
    assert gate.held == 0


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
@pytest.mark.parametrize(("size", "factor"), [((1031, 517), 3), ((4000, 777), 7), ((64, 5000), 2)])
def test_reducing_an_image_with_alpha_in_strips_gives_pillows_pixels(mode, size, factor):
    rgb = synthetic_photo(3, size)
    alpha = Image.linear_gradient("L").resize(size)
    image = (rgb if mode == "RGBA" else rgb.convert("L")).copy()
    image.putalpha(alpha)
    assert image.mode == mode
    ours = images_module._reduce(image, factor)
    assert ours.mode == mode and ours.size == image.reduce(factor).size
    assert ours.tobytes() == image.reduce(factor).tobytes()
