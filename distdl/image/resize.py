"""Target size arithmetic and the downscale itself.

Sizes here are PIL's ``(width, height)``; only the pipeline's public results use the
``(height, width)`` order of the output tables.
"""

from __future__ import annotations

from PIL import Image

# Above this ratio Pillow first box-reduces by an integer factor, then runs LANCZOS over
# the last <= 3x: indistinguishable from a full LANCZOS pass in practice and much faster
# for big non-JPEG images (JPEGs are already shrunk by draft mode while decoding).
REDUCING_GAP = 3.0


def target_size(size: tuple[int, int], longer_side: int) -> tuple[int, int]:
    """The ``(width, height)`` to store: longer side == ``longer_side``, downscale only.

    The shorter side is rounded half up and never below 1 px (1000x10 -> 720x7,
    4000x1 -> 720x1). An image whose longer side already fits is kept as is.
    """
    width, height = size
    longest = max(width, height)
    if longest <= longer_side:
        return size

    def scaled(side: int) -> int:
        # Integer half-up rounding of side * longer_side / longest: no float drift, and
        # the same answer whichever path (draft or not) the pixels took.
        return max(1, (2 * side * longer_side + longest) // (2 * longest))

    if width >= height:
        return longer_side, scaled(height)
    return scaled(width), longer_side


def resize_to(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` resampled to exactly ``size`` (returned unchanged if already that size)."""
    if image.size == size:
        return image
    if image.mode == "RGBA":
        # Resample premultiplied colours so transparent pixels do not bleed into their
        # neighbours. Pillow does that itself for RGBA but then ignores reducing_gap.
        premultiplied = image.convert("RGBa")
        return resize_to(premultiplied, size).convert("RGBA")
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
