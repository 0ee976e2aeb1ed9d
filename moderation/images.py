"""Safe image decoding: untrusted bytes in, an RGB image or one ``ImageRejected`` error out."""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import re
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import ExifTags, Image, UnidentifiedImageError

__all__ = [
    "ALLOWED_FORMATS",
    "DEFAULT_MAX_FRAMES",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_WORKING_PIXELS",
    "FULL_DECODES",
    "NEEDED_PIXELS",
    "DecodedImage",
    "PixelGate",
    "ImageRejected",
    "decode_image",
    "frame_sample",
    "reduce_factor",
    "sha256_hex",
    "working_size",
]

# Formats a moderation pipeline meets from uploads; everything else (PSD, EPS, ICO…) is refused.
# EPS would run Ghostscript and is never allowed.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")

# 50 MP: a 48 MP phone photo (8000×6000) passes. A format Pillow cannot decode reduced (PNG,
# WebP, TIFF, BMP, GIF) holds 4 bytes a pixel at full size while it loads: 200 MB at the cap,
# and ``FULL_DECODES`` lets only a cap's worth load at once in a process.
DEFAULT_MAX_PIXELS = 50_000_000
# What the hungriest consumer of a decoded image takes: GME's image processor at most 1280
# tokens of 28² px (~1.0 MP); open_nsfw takes 256², PDQ a 64² box average, crop hashes 64² of a
# window ≥ 90 % of each side. A reduced decode never goes below it.
NEEDED_PIXELS = 1024 * 1024
# What a decoded image keeps at most: larger ones are decoded reduced — JPEGs at 1/2, 1/4 or 1/8
# scale inside the decoder (so the full-size pixels never exist), others box-reduced by an
# integer factor after loading (the peak stays, but look-ahead batches hold the small copy).
DEFAULT_WORKING_PIXELS = 2048 * 2048
# Animated images (GIF, WebP, APNG; multi-page TIFF too): at most this many frames are decoded
# and scored, evenly spaced over the animation (first and last included) when it has more.
DEFAULT_MAX_FRAMES = 32
# The smallest a sampled frame after the first is reduced to (open_nsfw's 256² input; PDQ's 64²)
_FRAME_FLOOR = 256 * 256


class PixelGate:
    """Full-size decodes in flight hold their pixel count here; together they hold at most
    ``limit`` pixels (one at a time when each is near it), so a worker's decode threads never
    stack several huge images in memory at once. Small images do not pass through it."""

    def __init__(self) -> None:
        self._held = 0
        self._changed = threading.Condition()

    @property
    def held(self) -> int:
        return self._held

    @contextlib.contextmanager
    def hold(self, pixels: int, limit: int) -> Iterator[None]:
        with self._changed:
            # an image alone always goes (it passed the pixel cap); others wait for room
            self._changed.wait_for(lambda: self._held == 0 or self._held + pixels <= limit)
            self._held += pixels
        try:
            yield
        finally:
            with self._changed:
                self._held -= pixels
                self._changed.notify_all()


# The process's gate: every decode_image of a large image that must load at full size.
FULL_DECODES = PixelGate()


class ImageRejected(ValueError):
    """The bytes cannot be moderated as an image. ``code`` is stable, ``message`` is for humans."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class DecodedImage:
    """A decoded upload: RGB pixels (EXIF orientation applied, reduced to the working size)
    plus what we record about it — ``width``/``height`` are the original's (upright)."""

    image: Image.Image
    sha256: str
    byte_size: int
    width: int
    height: int
    format: str
    # animated images: the sampled frames after the first (``image`` is frame 0), RGB, upright,
    # each reduced to the frame budget; ``frame_numbers`` their 0-based positions in the
    # animation; ``frame_count`` the animation's length (1 for a still image)
    frames: tuple[Image.Image, ...] = ()
    frame_numbers: tuple[int, ...] = ()
    frame_count: int = 1

    def all_frames(self) -> list[tuple[int, Image.Image]]:
        """(frame number, pixels) of every decoded frame, frame 0 first."""
        return [(0, self.image), *zip(self.frame_numbers, self.frames, strict=True)]


def frame_sample(count: int, max_frames: int) -> list[int]:
    """The frames of a ``count``-frame animation that are decoded: all of them when at most
    ``max_frames``, else ``max_frames`` evenly spaced ones, the first and the last included."""
    if count <= max_frames:
        return list(range(count))
    if max_frames <= 1:
        return [0]
    step = (count - 1) / (max_frames - 1)
    return sorted({round(i * step) for i in range(max_frames)})


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def working_size(width: int, height: int, budget: int) -> tuple[int, int]:
    """The size a ``width``×``height`` image is decoded to: its own if it has at most ``budget``
    pixels, else the largest of (nearly) the same aspect ratio within ``budget`` (sides ≥ 1)."""
    if width * height <= budget:
        return width, height
    scale = math.sqrt(budget / (width * height))
    w, h = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
    if w * h > budget:  # a side clamped to 1 px, or float rounding: shorten the longer side
        if w >= h:
            w = min(width, max(1, budget // h))
        else:
            h = min(height, max(1, budget // w))
    return w, h


def decode_image(
    data: bytes,
    *,
    max_bytes: int = 25 * 1024 * 1024,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    working_pixels: int | None = DEFAULT_WORKING_PIXELS,
    max_frames: int = DEFAULT_MAX_FRAMES,
    gate: PixelGate | None = FULL_DECODES,
) -> DecodedImage:
    """Decode ``data`` defensively.

    Checks, in order: non-empty, ``len(data) <= max_bytes``, a recognised format from
    ``ALLOWED_FORMATS``, ``width × height <= max_pixels`` (read from the header, before any pixel
    is decoded — the decompression-bomb guard), then a decode (truncation and corruption
    surface here). Images above ``working_pixels`` come back reduced to at most that many
    pixels and at least ``min(working_pixels, max(working_pixels / 4, NEEDED_PIXELS))``, aspect
    ratio kept: JPEGs decode straight at 1/2, 1/4 or 1/8 scale, so their full-size pixels never
    exist; other formats are box-reduced by an integer factor after loading; a bilinear resize
    follows only where that is still above ``working_pixels``. ``None`` keeps every pixel.
    The recorded ``width``/``height`` stay the original's.

    Animated images (GIF, WebP, APNG, multi-page TIFF) give their first frame as ``image`` and
    up to ``max_frames`` − 1 more, sampled evenly (``frame_sample``), in ``frames``: each
    reduced to ``working_pixels`` / frames sampled (at least 256² pixels), so the frames kept
    hold about what one still image would. A frame bomb is refused before any frame after the
    first is decoded: ``frame_count × width × height`` (the pixels a decoder walks through to
    reach the sampled frames) above ``max_pixels`` is ``too_many_frames``.

    An image that must load at full size above the working size (every format but a reduced
    JPEG) first takes its pixels from ``gate``, whose limit is ``max_pixels``: concurrent
    decodes in one process then hold at most 4 bytes × ``max_pixels`` of full-size pixels.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ImageRejected("wrong_type", f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise ImageRejected("empty", "the upload has zero bytes")
    if len(data) > max_bytes:
        raise ImageRejected("too_large", f"{len(data)} bytes exceeds the {max_bytes}-byte limit")
    _raise_pillow_guard(max_pixels)
    opened = _open(data, max_pixels)
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
        count = _frame_count(opened, width * height, max_pixels, max_frames)
        full_size = width * height > (working_pixels or DEFAULT_WORKING_PIXELS) and not (
            fmt == "JPEG" and working_pixels is not None  # drafted: never loads at full size
        )
        held = (
            gate.hold(width * height, max_pixels)
            if gate is not None and full_size
            else contextlib.nullcontext()
        )
        with held:
            rgb, turned = _load_rgb(opened, working_pixels, max_pixels)
            frames: list[Image.Image] = []
            numbers = frame_sample(count, max_frames)[1:] if count > 1 else []
            if numbers:
                if rgb is opened:  # seeking would change the first frame's pixels under it
                    rgb = rgb.copy()
                budget = max(_FRAME_FLOOR, (working_pixels or width * height) // (len(numbers) + 1))
                for number in numbers:
                    frames.append(_load_frame(opened, number, budget, max_pixels))
    finally:
        if rgb is not opened:  # a loaded RGB image is returned as is: closing would free it
            opened.close()
    return DecodedImage(
        image=rgb,
        sha256=sha256_hex(data),
        byte_size=len(data),
        width=height if turned else width,
        height=width if turned else height,
        format=fmt,
        frames=tuple(frames),
        frame_numbers=tuple(numbers),
        frame_count=count,
    )


def _frame_count(opened: Image.Image, frame_pixels: int, max_pixels: int, max_frames: int) -> int:
    """The animation's length (1 for still images and when only one frame is wanted); raises
    ``too_many_frames`` for a frame bomb. Counting reads frame headers, not pixels."""
    if max_frames <= 1 or not getattr(opened, "is_animated", False):
        return 1
    try:
        count = int(getattr(opened, "n_frames", 1))
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageRejected("corrupt", f"unreadable animation: {exc}") from None
    finally:
        with contextlib.suppress(Exception):
            opened.seek(0)
    if count * frame_pixels > max_pixels:
        raise ImageRejected(
            "too_many_frames",
            f"{count} frames of {frame_pixels} pixels = {count * frame_pixels} pixels exceeds "
            f"the {max_pixels} limit",
        )
    return max(1, count)


def _load_frame(opened: Image.Image, number: int, budget: int, max_pixels: int) -> Image.Image:
    """Frame ``number`` of an animation: reduced to ``budget`` pixels, upright, RGB (a copy)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened.seek(number)
            opened.load()
            # a frame as the viewer shows it (GIF/APNG frames are composited by the decoder)
            image: Image.Image = opened
            if image.mode not in _RESIZABLE_MODES:
                image = _to_rgb(image)
            if image.width * image.height > budget:
                factor = reduce_factor(image.width, image.height, budget)
                image = _reduce(image, factor)
                if image.width * image.height > budget:
                    size = working_size(image.width, image.height, budget)
                    image = image.resize(size, Image.Resampling.BILINEAR)
            orientation = opened.getexif().get(ExifTags.Base.Orientation, 1)
            turn = _UPRIGHT.get(orientation) if isinstance(orientation, int) else None
            if turn is not None:
                image = image.transpose(turn)
            rgb = _to_rgb(image)
            return rgb.copy() if rgb is opened else rgb
    except ImageRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(exc, max_pixels) from None
    except OSError as exc:
        code = "truncated" if "truncated" in str(exc).lower() else "corrupt"
        raise ImageRejected(code, f"cannot decode frame {number}: {exc}") from None
    except (ValueError, SyntaxError, EOFError) as exc:
        raise ImageRejected("corrupt", f"cannot decode frame {number}: {exc}") from None


_guard_lock = threading.Lock()


def _raise_pillow_guard(max_pixels: int) -> None:
    """Let ``max_pixels`` be the limit that decides.

    ``Image.open`` refuses images above 2 × ``Image.MAX_IMAGE_PIXELS`` (~179 MP by default)
    before our check can run, so a configured limit above it would be silently capped, and
    ``GifImagePlugin`` checks frames against it too. Pillow's guard is process-wide: it is only
    ever *raised* (to the largest limit asked for), never lowered, so concurrent decodes with
    different limits stay safe, and ``decode_image``'s own check still runs on every image.
    """
    current = Image.MAX_IMAGE_PIXELS
    if current is None or current >= max_pixels:
        return
    with _guard_lock:
        current = Image.MAX_IMAGE_PIXELS
        if current is not None and current < max_pixels:
            Image.MAX_IMAGE_PIXELS = max_pixels


def _too_many_pixels(exc: Exception, max_pixels: int) -> ImageRejected:
    """Pillow's bomb error, restated against the configured limit (not Pillow's own)."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{found.group(1)} pixels" if found else "the image size"
    return ImageRejected("too_many_pixels", f"{size} exceeds the {max_pixels} limit")


def _open(data: bytes, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # our own pixel cap replaces PIL's global DecompressionBombWarning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        raise ImageRejected("not_an_image", _not_an_image_reason(data)) from None
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(exc, max_pixels) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageRejected("corrupt", f"unreadable image header: {exc}") from None


def _not_an_image_reason(data: bytes) -> str:
    try:
        with Image.open(io.BytesIO(data)) as probe:
            return f"format {probe.format} is not accepted (allowed: {', '.join(ALLOWED_FORMATS)})"
    except Exception:
        return "the bytes are not a recognised image format"


# EXIF orientation → the transpose that shows the image upright (as ImageOps.exif_transpose)
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_TURNS_SIDES = {5, 6, 7, 8}
_RESIZABLE_MODES = {"RGB", "RGBA", "L", "LA"}  # others become RGB first (P would go nearest)


def _load_rgb(
    opened: Image.Image, working_pixels: int | None, max_pixels: int
) -> tuple[Image.Image, bool]:
    """The first frame, reduced to the working size, upright, RGB; and whether turning it
    upright swapped its sides. Reducing comes before turning and converting, so those copies
    are small too."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened.seek(0)
            width, height = opened.size
            over = working_pixels is not None and width * height > working_pixels
            budget = working_pixels if over else None
            if budget is not None:
                # JPEG: the decoder scales by the largest of 1/2, 1/4, 1/8 that keeps the size
                # at least the floor's; other formats ignore drafts
                least = min(budget, max(budget // 4, NEEDED_PIXELS))
                opened.draft(opened.mode, working_size(width, height, least))
            opened.load()
            orientation = opened.getexif().get(ExifTags.Base.Orientation, 1)
            image = opened
            if budget is not None and image.width * image.height > budget:
                image = _shrink(image, (width, height), least, budget)
            turn = _UPRIGHT.get(orientation) if isinstance(orientation, int) else None
            if turn is not None:
                # transpose copies the pixels, so only when there is something to turn (a
                # copy costs ~1.5 ms at 640×480 on this machine, half a JPEG decode)
                image = image.transpose(turn)
            rgb = _to_rgb(image)
    except ImageRejected:
        raise
    except Image.DecompressionBombError as exc:  # a GIF frame larger than its header said
        raise _too_many_pixels(exc, max_pixels) from None
    except OSError as exc:
        code = "truncated" if "truncated" in str(exc).lower() else "corrupt"
        raise ImageRejected(code, f"cannot decode pixels: {exc}") from None
    except (ValueError, SyntaxError, EOFError) as exc:
        raise ImageRejected("corrupt", f"cannot decode pixels: {exc}") from None
    return rgb, turn is not None and orientation in _TURNS_SIDES


def _shrink(image: Image.Image, original: tuple[int, int], least: int, budget: int) -> Image.Image:
    """``image`` (a loaded ``original``-sized picture, maybe already drafted smaller) within
    ``least``..``budget`` pixels: an integer box reduction first — one pass, no full-size
    intermediate, as cheap as a copy — then a resize only if that still exceeds ``budget``."""
    if image.mode not in _RESIZABLE_MODES:
        image = _to_rgb(image)
    image = _reduce(image, reduce_factor(image.width, image.height, least))
    if image.width * image.height > budget:
        # bilinear (antialiased when shrinking): ~3× cheaper than bicubic, and the model and
        # PDQ resize again anyway
        image = image.resize(working_size(*original, budget), Image.Resampling.BILINEAR)
    return image


# Rows of an image with alpha reduced at a time (``_reduce``): about this many pixels a strip.
_STRIP_PIXELS = 1 << 20


def _reduce(image: Image.Image, factor: int) -> Image.Image:
    """``image.reduce(factor)``, the same pixels, without a full-size copy for images with
    alpha: Pillow premultiplies RGBA/LA into a whole new image before reducing (twice the
    peak memory of a large PNG), so those go in strips of whole ``factor``-row blocks."""
    if factor <= 1:
        return image
    if image.mode not in ("RGBA", "LA"):
        return image.reduce(factor)
    width, height = image.size
    rows = max(1, _STRIP_PIXELS // (width * factor)) * factor
    reduced = Image.new(image.mode, (-(-width // factor), -(-height // factor)))
    for top in range(0, height, rows):
        strip = image.crop((0, top, width, min(top + rows, height)))
        reduced.paste(strip.reduce(factor), (0, top // factor))
    return reduced


def reduce_factor(width: int, height: int, least: int) -> int:
    """The largest integer factor ``Image.reduce`` can shrink ``width``×``height`` by (sides
    rounded up) and keep at least ``least`` pixels; 1 when none can."""
    lo, hi = 1, max(width, height)  # the reduced area only shrinks as the factor grows
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if -(-width // mid) * -(-height // mid) >= least:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB (the image itself if it already is); transparency is composited onto white (what a
    viewer shows)."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image if image.mode == "RGB" else image.convert("RGB")
