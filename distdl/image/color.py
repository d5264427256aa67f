"""Any decoded pixel mode to 8-bit RGB, in two steps so that transparency is flattened on
the small image: :func:`to_rgb_or_rgba` right after decoding, :func:`flatten_on_white`
after resizing (:func:`to_rgb` does both at once).

* Transparency (RGBA, LA, PA, or a ``transparency`` entry on P/L/RGB images) becomes RGBA
  and is composited on white, so transparent backgrounds do not turn black.
* 16-bit grey (``I;16*``) keeps its 8 most significant bits; 32-bit ``I`` is read as 16-bit
  data when it exceeds 255 (how PNG/TIFF 16-bit images decode) and as 8-bit otherwise.
* Float ``F`` in [0, 1] is scaled by 255; other float ranges are clipped to [0, 255].
* Everything else (1, L, P, CMYK, YCbCr, ...) goes through ``Image.convert("RGB")``.
"""

from __future__ import annotations

from PIL import Image

WHITE = (255, 255, 255)
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as an RGB image (``image`` itself when it already is one)."""
    return flatten_on_white(to_rgb_or_rgba(image))


def to_rgb_or_rgba(image: Image.Image) -> Image.Image:
    """``image`` as RGBA if it has any transparency, else as RGB (itself if it is either)."""
    has_transparency = "transparency" in image.info
    if image.mode in ("RGB", "RGBA") and not has_transparency:
        return image
    if image.mode in _ALPHA_MODES or has_transparency:
        return image.convert("RGBA")
    if image.mode.startswith("I;16"):
        return _scaled_to_l(image.convert("I"), 1 / 256).convert("RGB")
    if image.mode == "I":
        _, high = image.getextrema()
        factor = 1 / 256 if high > 255 else 1.0
        return _scaled_to_l(image, factor).convert("RGB")
    if image.mode == "F":
        _, high = image.getextrema()
        factor = 255.0 if high <= 1.0 else 1.0
        return _scaled_to_l(image, factor).convert("RGB")
    return image.convert("RGB")


def flatten_on_white(image: Image.Image) -> Image.Image:
    """An RGB or RGBA ``image`` as RGB, its transparent parts composited on white."""
    if image.mode == "RGB":
        return image
    background = Image.new("RGB", image.size, WHITE)
    background.paste(image, mask=image)  # an RGBA mask means "use its alpha band"
    return background


def _scaled_to_l(image: Image.Image, factor: float) -> Image.Image:
    if factor != 1.0:
        image = image.point(lambda value: value * factor)
    return image.convert("L")  # clips to [0, 255]
