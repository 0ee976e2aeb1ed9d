"""Safe image decoding: untrusted bytes in, an RGB image or one ``ImageRejected`` error out."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

__all__ = [
    "ALLOWED_FORMATS",
    "DecodedImage",
    "ImageRejected",
    "decode_image",
    "sha256_hex",
]

# Formats a moderation pipeline meets from uploads; everything else (PSD, EPS, ICO…) is refused.
# EPS would run Ghostscript and is never allowed.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")


class ImageRejected(ValueError):
    """The bytes cannot be moderated as an image. ``code`` is stable, ``message`` is for humans."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class DecodedImage:
    """A decoded upload: RGB pixels (EXIF orientation applied) plus what we record about it."""

    image: Image.Image
    sha256: str
    byte_size: int
    width: int
    height: int
    format: str


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_image(
    data: bytes, *, max_bytes: int = 25 * 1024 * 1024, max_pixels: int = 64_000_000
) -> DecodedImage:
    """Decode ``data`` defensively.

    Checks, in order: non-empty, ``len(data) <= max_bytes``, a recognised format from
    ``ALLOWED_FORMATS``, ``width × height <= max_pixels`` (read from the header, before any pixel
    is decoded — the decompression-bomb guard), then a full decode (truncation and corruption
    surface here). Animated images give their first frame.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ImageRejected("wrong_type", f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise ImageRejected("empty", "the upload has zero bytes")
    if len(data) > max_bytes:
        raise ImageRejected("too_large", f"{len(data)} bytes exceeds the {max_bytes}-byte limit")
    opened = _open(data)
    rgb = None
    try:
        width, height = opened.size
        if width <= 0 or height <= 0:
            raise ImageRejected("corrupt", f"invalid dimensions {width}x{height}")
        if width * height > max_pixels:
            raise ImageRejected(
                "too_many_pixels",
                f"{width}x{height} = {width * height} pixels exceeds the {max_pixels} limit",
            )
        fmt = str(opened.format)
        rgb = _load_rgb(opened)
    finally:
        if rgb is not opened:  # a loaded RGB image is returned as is: closing would free it
            opened.close()
    return DecodedImage(
        image=rgb,
        sha256=sha256_hex(data),
        byte_size=len(data),
        width=rgb.width,
        height=rgb.height,
        format=fmt,
    )


def _open(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # our own pixel cap replaces PIL's global DecompressionBombWarning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        raise ImageRejected("not_an_image", _not_an_image_reason(data)) from None
    except Image.DecompressionBombError as exc:
        raise ImageRejected("too_many_pixels", str(exc)) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageRejected("corrupt", f"unreadable image header: {exc}") from None


def _not_an_image_reason(data: bytes) -> str:
    try:
        with Image.open(io.BytesIO(data)) as probe:
            return f"format {probe.format} is not accepted (allowed: {', '.join(ALLOWED_FORMATS)})"
    except Exception:
        return "the bytes are not a recognised image format"


def _load_rgb(opened: Image.Image) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened.seek(0)
            opened.load()
            # exif_transpose copies the pixels even when there is nothing to turn (a copy
            # costs ~1.5 ms at 640×480 on this machine, half a JPEG decode)
            upright = opened.getexif().get(ExifTags.Base.Orientation, 1) in (None, 1)
            oriented = opened if upright else ImageOps.exif_transpose(opened)
            rgb = _to_rgb(oriented if oriented is not None else opened)
    except ImageRejected:
        raise
    except OSError as exc:
        code = "truncated" if "truncated" in str(exc).lower() else "corrupt"
        raise ImageRejected(code, f"cannot decode pixels: {exc}") from None
    except (ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise ImageRejected("corrupt", f"cannot decode pixels: {exc}") from None
    return rgb


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB (the image itself if it already is); transparency is composited onto white (what a
    viewer shows)."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image if image.mode == "RGB" else image.convert("RGB")
