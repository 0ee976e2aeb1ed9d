"""Safe decoding: every kind of bad upload becomes one ImageRejected with a stable code."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from moderation.images import ImageRejected, decode_image, sha256_hex


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
