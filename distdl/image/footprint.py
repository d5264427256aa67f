"""How many bytes the pipeline will need to process an image, read from its header alone.

:func:`probe` parses the header (no pixel is decoded), refuses what must not be decoded
(``UNDECODABLE``, ``DECOMPRESSION_BOMB`` over ``max_image_pixels``) and estimates the peak of
memory that decoding, converting and resizing the image will take. The rank reserves that
much of ``memory_per_rank`` before the image goes to a decoder (see
:mod:`distdl.core.memory_budget`).

The estimate follows what :mod:`distdl.image.pipeline` allocates, pixel by pixel, as Pillow
stores them (1 byte for ``1``/``L``/``P``, 2 for 16-bit grey, 4 for every other mode,
RGB included):

1. decoding: the decoded frame (a JPEG at its draft scale), plus the decoder's own buffers
   (WebP decodes through a full canvas and copies of it, alive until the end);
2. converting to RGB or RGBA: the converted copy, plus intermediates for 16-bit and float
   modes, while the decoded frame is still alive;
3. resizing: the RGB(A) image, its premultiplied copy when it has alpha, an integer-factor
   reduction when Pillow takes one (``reducing_gap``), the horizontal pass and the result.

The peak is the larger of 2 and 3 (plus WebP's buffers), with a margin of 1/8. Checked
against the peak RSS of real decodes in ``tests/unit/test_image_footprint.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

from distdl.image.decode import DRAFTABLE, draft, drafted_size, open_image
from distdl.image.jpeg_header import read_jpeg_header
from distdl.image.orientation import read_orientation
from distdl.image.resize import REDUCING_GAP, target_size

_BYTES_STORED = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
_WIDE_BYTES = 4  # every other mode, RGB included, is stored 4 bytes a pixel
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
# Bytes a pixel held by the conversion to RGB/RGBA on top of the decoded frame
# (distdl.image.color): the RGB(A) copy, and for 16-bit/float modes the scaled copies too.
_CONVERSION_BYTES = {"I;16": 8, "I;16B": 8, "I;16L": 8, "I;16N": 8, "I": 5, "F": 5, "LAB": 8}
# libwebp's canvas, its previous frame and Pillow's copy: alive until the image is dropped
_WEBP_DECODER_BYTES = 12
FIXED_BYTES = 256 * 1024  # header objects, codec state, the encoded result
MARGIN = 1.125  # for what the model leaves out (16-bit grey keeps a scaled copy a bit longer)


@dataclass(frozen=True, slots=True)
class Footprint:
    size: tuple[int, int]  # (width, height) as it will be decoded (a JPEG at its draft scale)
    mode: str  # the mode the decoder produces
    format: str
    peak_bytes: int  # estimated peak of memory to decode, convert and resize it


def probe(data: bytes, max_pixels: int, longer_side: int) -> Footprint:
    """The footprint of ``data``; raises :class:`~distdl.image.decode.ImageRejected` for
    bytes that are not an accepted image, or have more than ``max_pixels`` pixels."""
    quick = plain_jpeg(data, max_pixels, longer_side)
    return quick if quick is not None else probe_with_pillow(data, max_pixels, longer_side)


def probe_with_pillow(data: bytes, max_pixels: int, longer_side: int) -> Footprint:
    image = open_image(data, max_pixels)
    image_format = image.format or ""
    if image_format in DRAFTABLE:
        draft(image, read_orientation(image), longer_side)
    transparent = "transparency" in image.info
    # Resizing is done before the EXIF rotation, on the image as stored (and drafted).
    final = target_size(image.size, longer_side)
    peak = peak_bytes(image.size, image.mode, final, transparent=transparent, fmt=image_format)
    return Footprint(image.size, image.mode, image_format, peak)


def plain_jpeg(data: bytes, max_pixels: int, longer_side: int) -> Footprint | None:
    """What the Pillow path above gives, for a plain JPEG within the pixel limits, from its
    markers alone (:mod:`distdl.image.jpeg_header`); None for every other body. Never
    raises, never warns."""
    header = read_jpeg_header(data)
    if header is None:
        return None
    width, height = header.size
    if width * height > min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels):
        return None  # refused, or warned about, by the Pillow path with its own message
    size = drafted_size(header.size, header.orientation, longer_side)
    final = target_size(size, longer_side)
    return Footprint(size, header.mode, "JPEG", peak_bytes(size, header.mode, final, fmt="JPEG"))


def peak_bytes(
    size: tuple[int, int],
    mode: str,
    final: tuple[int, int],
    *,
    transparent: bool = False,
    fmt: str = "",
) -> int:
    """Estimated peak bytes to decode a ``size`` image of ``mode`` and resize it to ``final``."""
    pixels = size[0] * size[1]
    decoded = pixels * _BYTES_STORED.get(mode, _WIDE_BYTES)
    decoder = pixels * _WEBP_DECODER_BYTES if fmt == "WEBP" else 0
    alpha = transparent or mode in _ALPHA_MODES
    converts = alpha or mode not in ("RGB", "RGBA")
    if not converts:
        converting = decoded
    elif alpha:
        converting = decoded + pixels * _WIDE_BYTES
    else:
        converting = decoded + pixels * _CONVERSION_BYTES.get(mode, _WIDE_BYTES)
    rgb = pixels * _WIDE_BYTES
    premultiplied = rgb if alpha else 0
    resizing = rgb + premultiplied + _resize_bytes(size, final)
    return math.ceil((decoder + max(converting, resizing)) * MARGIN) + FIXED_BYTES


def least_peak_bytes(pixels: int, longer_side: int) -> int:
    """The footprint of the cheapest image of ``pixels`` pixels to process: RGB, square,
    not a JPEG (whose draft could shrink it)."""
    side = max(1, math.isqrt(pixels))
    return peak_bytes((side, side), "RGB", target_size((side, side), longer_side))


def _resize_bytes(size: tuple[int, int], final: tuple[int, int]) -> int:
    """What ``Image.resize(final, reducing_gap=REDUCING_GAP)`` allocates on a 4-byte image."""
    if size == final:
        return 0
    width, height = size
    final_width, final_height = final
    factor_x = max(1, int(width / final_width / REDUCING_GAP))
    factor_y = max(1, int(height / final_height / REDUCING_GAP))
    reduced = 0
    if factor_x > 1 or factor_y > 1:
        width, height = math.ceil(width / factor_x), math.ceil(height / factor_y)
        reduced = width * height
    horizontal = final_width * height if width != final_width else 0
    return _WIDE_BYTES * (reduced + horizontal + final_width * final_height)
