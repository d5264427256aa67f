"""Downloaded bytes to RGB pixels, refusing what must not be decoded.

Accepted formats: JPEG (incl. camera MPO), PNG (incl. APNG), GIF, BMP, TIFF and WebP. Other
formats Pillow knows are refused on purpose (some, like EPS, hand the bytes to external
programs). Multi-frame images yield their first frame.

The pixel limit is checked per call against the header size, before a single pixel is
decoded, so a 100 kB file claiming 50000x50000 pixels costs nothing. Pillow's own global
guard (``Image.MAX_IMAGE_PIXELS``, 89.5 Mpx by default: a ``DecompressionBombWarning`` above
it, a ``DecompressionBombError`` above twice it) still runs inside ``Image.open`` and is left
untouched (it is process-wide). Its error, and its warning when warnings are turned into
errors, map to ``DECOMPRESSION_BOMB`` too; so a ``max_pixels`` above twice the global limit
is capped by it, and images between the two limits are accepted with Pillow's warning.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from distdl.core import codes
from distdl.image.color import to_rgb_or_rgba
from distdl.image.orientation import oriented_size, read_orientation
from distdl.image.resize import target_size

ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP")
DRAFTABLE = frozenset({"JPEG", "MPO"})
# Below this many output rows (or columns) the partial 8x8 block at the image edge would
# weigh too much in the DCT-scaled draft (a 7201x10 strip drafted to 1 row is visibly off);
# such extreme strips are cheap to decode in full anyway.
_MIN_DRAFT_SIDE = 8
_BOMB_SIGNALS = (Image.DecompressionBombError, Image.DecompressionBombWarning)
_MESSAGE_LIMIT = 200
_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)


class ImageRejected(Exception):
    """Bytes the pipeline refuses; :func:`~distdl.image.pipeline.process_image` turns it
    into an ``ImageFailure`` row and never lets it escape."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class DecodedImage:
    image: Image.Image  # RGB, or RGBA if transparent; as stored: orientation not applied yet
    orientation: int  # EXIF orientation, 1 when absent or invalid
    original_size: tuple[int, int]  # (width, height) of the full original, as displayed


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Parse only the header of ``data`` and enforce ``max_pixels``; decodes no pixel."""
    if not data:
        raise ImageRejected(codes.UNDECODABLE, "empty body")
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError as exc:
        raise ImageRejected(codes.UNDECODABLE, _unidentified_message(data)) from exc
    except _BOMB_SIGNALS as exc:
        raise ImageRejected(codes.DECOMPRESSION_BOMB, short_message(exc)) from exc
    except Exception as exc:
        name = _format_by_signature(data) or "image"
        message = f"damaged {name} header: {short_message(exc)}"
        raise ImageRejected(codes.UNDECODABLE, message) from exc
    width, height = image.size
    if width * height > max_pixels:
        message = f"{width}x{height} = {width * height} pixels > max_image_pixels {max_pixels}"
        raise ImageRejected(codes.DECOMPRESSION_BOMB, message)
    return image


def decode(image: Image.Image, longer_side: int) -> DecodedImage:
    """Decode the first frame of an opened ``image`` to RGB (RGBA if it has transparency).

    ``longer_side`` is the size the caller will resize to: a JPEG at least twice as large
    is decoded at 1/2, 1/4 or 1/8 scale (draft mode, never below the final size), unless
    the final size is a strip thinner than ``_MIN_DRAFT_SIDE``.
    """
    header_size = image.size
    if image.format in DRAFTABLE:
        orientation = read_orientation(image)  # JPEG keeps EXIF in its header
        draft(image, orientation, longer_side)
        _load(image)
    else:
        _load(image)
        orientation = read_orientation(image)  # PNG may keep eXIf after the pixels
    try:
        pixels = to_rgb_or_rgba(image)
    except Exception as exc:
        message = f"cannot convert mode {image.mode} to RGB: {short_message(exc)}"
        raise ImageRejected(codes.UNDECODABLE, message) from exc
    return DecodedImage(pixels, orientation, oriented_size(header_size, orientation))


def short_message(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:_MESSAGE_LIMIT]


def draft(image: Image.Image, orientation: int, longer_side: int) -> None:
    """Have a JPEG decode at the smallest DCT scale that still covers its final size;
    ``image.size`` then tells the size it will decode to. Decodes no pixel."""
    # The final size comes from the header size alone, so drafting never changes it; the
    # draft only has to stay at or above it, which Image.draft guarantees.
    stored = _draft_request(image.size, orientation, longer_side)
    if stored is not None:
        # Only a speed-up: if a damaged header upsets it, decode at full scale instead.
        with contextlib.suppress(Exception):
            image.draft("RGB", stored)


def drafted_size(size: tuple[int, int], orientation: int, longer_side: int) -> tuple[int, int]:
    """The size :func:`draft` leaves a JPEG of ``size`` at, without opening it: Pillow's
    DCT scale is the largest of 8, 4, 2 that fits the request."""
    stored = _draft_request(size, orientation, longer_side)
    if stored is None:
        return size
    fits = min(size[0] // stored[0], size[1] // stored[1])
    scale = next(s for s in (8, 4, 2, 1) if fits >= s)
    return (size[0] + scale - 1) // scale, (size[1] + scale - 1) // scale


def _draft_request(
    size: tuple[int, int], orientation: int, longer_side: int
) -> tuple[int, int] | None:
    """The size to ask Image.draft for (the final size as stored), or None: no draft."""
    displayed = target_size(oriented_size(size, orientation), longer_side)
    stored_width, stored_height = oriented_size(displayed, orientation)
    scale = min(size[0] // stored_width, size[1] // stored_height)
    if scale >= 2 and min(stored_width, stored_height) >= _MIN_DRAFT_SIDE:
        return stored_width, stored_height
    return None


def _load(image: Image.Image) -> None:
    try:
        image.load()
    except _BOMB_SIGNALS as exc:
        raise ImageRejected(codes.DECOMPRESSION_BOMB, short_message(exc)) from exc
    except Exception as exc:
        message = f"{image.format} data: {short_message(exc)}"
        raise ImageRejected(codes.UNDECODABLE, message) from exc


def _unidentified_message(data: bytes) -> str:
    name = _format_by_signature(data)
    if name is not None:
        return f"damaged {name} header"
    head = data[:256].lstrip()
    if head.startswith(b"\xef\xbb\xbf"):  # UTF-8 byte order mark
        head = head[3:].lstrip()
    if head[:1] == b"<":
        return "not an image: HTML/XML/SVG text"
    if head[:1] in (b"{", b"["):
        return "not an image: JSON text"
    return f"not a JPEG/PNG/GIF/BMP/TIFF/WebP image (starts with {data[:8].hex()})"


def _format_by_signature(data: bytes) -> str | None:
    """The accepted format whose magic number ``data`` starts with, if any."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    return None
