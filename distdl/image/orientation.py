"""EXIF orientation, with the semantics of ``PIL.ImageOps.exif_transpose``.

The pipeline reads the tag before decoding (for JPEG, to choose the draft size) and applies
it after resizing, so the transpose runs on the small image instead of the original.
"""

from __future__ import annotations

from PIL import ExifTags, Image

NORMAL = 1
# Same table as ImageOps.exif_transpose: orientation value -> transpose that shows it upright.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = frozenset({5, 6, 7, 8})


def read_orientation(image: Image.Image) -> int:
    """The EXIF (or XMP) orientation of ``image``; ``NORMAL`` when absent or invalid."""
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, NORMAL)
    except Exception:
        return NORMAL  # corrupt EXIF must not cost us otherwise good pixels
    return value if isinstance(value, int) and value in _TRANSPOSE else NORMAL


def oriented_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """``size`` as displayed once ``orientation`` is applied.

    Swapping is its own inverse, so this also maps a displayed size back to a stored one.
    """
    width, height = size
    return (height, width) if orientation in _SWAPS_AXES else (width, height)


def apply_orientation(image: Image.Image, orientation: int) -> Image.Image:
    """``image`` turned upright (``image`` itself for ``NORMAL``)."""
    method = _TRANSPOSE.get(orientation)
    return image if method is None else image.transpose(method)
