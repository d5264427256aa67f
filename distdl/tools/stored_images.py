"""Stored images as the tools see them: which format, decode fully, downscale, re-encode.

The stored format is told by the bytes (JPEG and PNG signatures), not by the config, which
may have changed since the download: anything else is the ``raw`` RGB buffer of
``resized_size`` (``height * width * 3`` bytes).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image

from distdl.image.decode import draft
from distdl.image.encode import StoredFormat, encode
from distdl.image.resize import resize_to, target_size

_JPEG = b"\xff\xd8\xff"
_PNG = b"\x89PNG\r\n\x1a\n"


class StoredImageError(ValueError):
    """A stored image that cannot be used; the message is the removed row's reason."""


def stored_format(data: bytes) -> StoredFormat:
    if data.startswith(_JPEG):
        return "jpeg"
    if data.startswith(_PNG):
        return "png"
    return "raw"


def open_stored(data: bytes, size: Sequence[int], longer_side: int | None = None) -> Image.Image:
    """Decode stored bytes to RGB; ``size`` is the row's ``resized_size`` ([height, width]).

    With ``longer_side``, a JPEG much larger than that is decoded at a reduced DCT scale
    (draft mode): only the pixels a downscale needs.
    """
    fmt = stored_format(data)
    height, width = int(size[0]), int(size[1])
    if fmt == "raw":
        if len(data) != height * width * 3:
            raise StoredImageError(
                f"raw buffer of {len(data)} bytes, expected {height}x{width}x3 = "
                f"{height * width * 3}"
            )
        return Image.frombytes("RGB", (width, height), data)
    try:
        image = Image.open(io.BytesIO(data), formats=[fmt.upper()])
        if longer_side is not None and fmt == "jpeg":
            draft(image, 1, longer_side)  # stored images are upright: no EXIF orientation
        image.load()
    except Exception as exc:
        raise StoredImageError(f"undecodable {fmt}: {type(exc).__name__}: {exc}") from exc
    return image if image.mode == "RGB" else image.convert("RGB")


def downscaled(
    data: bytes, size: Sequence[int], longer_side: int, jpeg_quality: int
) -> tuple[bytes, tuple[int, int]] | None:
    """The stored image re-encoded (same format) with its longer side at ``longer_side``,
    and its new ``(height, width)``; None when it already fits (its bytes stay as they are)."""
    height, width = int(size[0]), int(size[1])
    target = target_size((width, height), longer_side)
    if target == (width, height):
        return None
    image = open_stored(data, size, longer_side)
    if image.size != (width, height) and not _drafted(image.size, (width, height)):
        raise StoredImageError(
            f"stored image is {image.height}x{image.width}, resized_size says {height}x{width}"
        )
    small = resize_to(image, target)
    return encode(small, stored_format(data), jpeg_quality), (small.height, small.width)


def _drafted(decoded: tuple[int, int], full: tuple[int, int]) -> bool:
    """True when ``decoded`` is ``full`` at a JPEG DCT scale (1/2, 1/4, 1/8, rounded up)."""
    return any(decoded == (-(-full[0] // scale), -(-full[1] // scale)) for scale in (2, 4, 8))
