"""Synthetic test images of every input format, for tests, benchmarks and the simulated fleet.

Content is photo-like on purpose (smooth gradients, a few shapes, fine grain noise) so that
JPEG/WebP sizes are close to real photographs instead of the few hundred bytes a flat colour
compresses to. Everything is built with PIL's C primitives and a seeded ``random.Random``:
the same arguments always give the same bytes, and a 4000x3000 JPEG takes under a second.

Modes: the image is drawn in RGB and converted to ``mode``. Alpha modes (LA, PA, RGBA) get an
alpha ramp that is fully transparent in the left column and opaque in the right one. PNG and
GIF cannot store a real PA image, so ``mode="PA"`` there gives the web's usual equivalent: a
palette image whose palette index 255 is transparent (a ``tRNS``/GIF transparency entry).
A mode the format cannot store raises :class:`ValueError`.
"""

from __future__ import annotations

import io
import random
import struct
import zlib

from PIL import Image, ImageChops, ImageDraw

FORMATS: tuple[str, ...] = ("jpeg", "png", "gif", "bmp", "tiff", "webp")
MODES: tuple[str, ...] = ("RGB", "L", "LA", "P", "PA", "RGBA", "CMYK", "I;16", "I", "F", "1")

_PIL_FORMAT = {
    "jpeg": "JPEG",
    "png": "PNG",
    "gif": "GIF",
    "bmp": "BMP",
    "tiff": "TIFF",
    "webp": "WEBP",
}

# Modes each format can be asked for (checked up front for a clear error message).
WRITABLE_MODES: dict[str, frozenset[str]] = {
    "jpeg": frozenset({"RGB", "L", "CMYK", "1"}),  # "1" is stored as L
    # "I" is left out of PNG: Pillow 12 deprecates writing it (use "I;16")
    "png": frozenset({"RGB", "L", "LA", "P", "PA", "RGBA", "I;16", "1"}),
    "gif": frozenset({"RGB", "L", "P", "PA", "1"}),
    "bmp": frozenset({"RGB", "L", "P", "1"}),
    "tiff": frozenset(MODES),
    "webp": frozenset({"RGB", "RGBA"}),
}
ANIMATED_FORMATS = frozenset({"gif", "webp", "png", "tiff"})  # tiff: multi-page
EXIF_FORMATS = frozenset({"jpeg", "png", "tiff", "webp"})
_ORIENTATION_TAG = 0x0112
_TRANSPARENT_INDEX_FORMATS = {"png", "gif"}
_TRANSPARENT_INDEX = 255
_GRAIN = 24  # peak-to-peak grain amplitude


def make_image_bytes(
    fmt: str,
    width: int,
    height: int,
    *,
    seed: int = 0,
    mode: str = "RGB",
    exif_orientation: int | None = None,
    frames: int = 1,
) -> bytes:
    """Encoded bytes of a ``width`` x ``height`` synthetic image in ``fmt``.

    ``frames > 1`` gives an animation (GIF, WebP, APNG) or a multi-page TIFF whose frame
    ``i`` is drawn with seed ``seed + i``: frame 0 equals the single-frame image of ``seed``.
    ``exif_orientation`` (1-8) is written as the EXIF Orientation tag; the pixels are stored
    as given, so a viewer applying the tag shows them rotated/flipped.
    Nothing is cached here (a 50 Mpx BMP is 150 MB): callers serving images again keep
    their own size-bounded cache.
    """
    _check_arguments(fmt, width, height, mode, exif_orientation, frames)
    rgb_frames = (make_rgb_image(width, height, seed=seed + i) for i in range(frames))
    images = [_in_mode(frame, mode, fmt) for frame in rgb_frames]
    options = _save_options(fmt, mode, exif_orientation)
    if frames > 1:
        options.update(save_all=True, append_images=images[1:], duration=100, loop=0)
    buffer = io.BytesIO()
    images[0].save(buffer, _PIL_FORMAT[fmt], **options)
    return buffer.getvalue()


def make_rgb_image(width: int, height: int, *, seed: int = 0) -> Image.Image:
    """A photo-like RGB image: gradients per channel, a few flat shapes, fine grain."""
    rng = random.Random(seed)
    image = _gradient_background(width, height, rng)
    _draw_shapes(image, rng)
    return _add_grain(image, rng)


def make_bomb_bytes(fmt: str, width: int, height: int) -> bytes:
    """A tiny file whose header claims ``width`` x ``height`` pixels (png, gif or jpeg).

    The pixel data is absent or truncated. PNG and GIF decoders give up once they have
    allocated the full canvas; libjpeg pads the missing data and really decodes it, so the
    JPEG one is a working bomb. Used to test the decompression-bomb guard.
    """
    if fmt == "png":
        return _png_bomb(width, height)
    if fmt == "gif":
        return _gif_bomb(width, height)
    if fmt == "jpeg":
        return _jpeg_bomb(width, height)
    raise ValueError(f"make_bomb_bytes supports png, gif and jpeg, not {fmt!r}")


def _check_arguments(
    fmt: str, width: int, height: int, mode: str, exif_orientation: int | None, frames: int
) -> None:
    if fmt not in _PIL_FORMAT:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    if width < 1 or height < 1:
        raise ValueError(f"width and height must be >= 1, got {width}x{height}")
    if mode not in WRITABLE_MODES[fmt]:
        raise ValueError(f"{fmt} cannot store mode {mode}")
    if frames < 1 or (frames > 1 and fmt not in ANIMATED_FORMATS):
        raise ValueError(f"{fmt} cannot hold {frames} frames")
    if exif_orientation is not None:
        if fmt not in EXIF_FORMATS:
            raise ValueError(f"{fmt} cannot carry EXIF")
        if not 1 <= exif_orientation <= 8:
            raise ValueError(f"EXIF orientation must be 1..8, got {exif_orientation}")


def _gradient_background(width: int, height: int, rng: random.Random) -> Image.Image:
    size = (width, height)
    ramps = [
        Image.linear_gradient("L").rotate(rng.uniform(0, 360), resample=Image.Resampling.BILINEAR)
        for _ in range(2)
    ]
    # rotate() leaves black corners: crop the 256x256 ramp to its inner square before scaling.
    ramps = [ramp.crop((48, 48, 208, 208)) for ramp in ramps]
    radial = Image.radial_gradient("L").crop(_random_window(rng))
    channels = [c.resize(size, Image.Resampling.BILINEAR) for c in (*ramps, radial)]
    rng.shuffle(channels)
    return Image.merge("RGB", channels)


def _random_window(rng: random.Random) -> tuple[int, int, int, int]:
    side = rng.randint(96, 200)
    left, top = rng.randint(0, 256 - side), rng.randint(0, 256 - side)
    return left, top, left + side, top + side


def _draw_shapes(image: Image.Image, rng: random.Random) -> None:
    draw = ImageDraw.Draw(image)
    width, height = image.size
    for _ in range(rng.randint(3, 7)):
        x0, x1 = sorted(rng.randint(0, width) for _ in range(2))
        y0, y1 = sorted(rng.randint(0, height) for _ in range(2))
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)


def _add_grain(image: Image.Image, rng: random.Random) -> Image.Image:
    # Sensor-like grain: without it JPEGs of smooth synthetic content are several times
    # smaller than photographs of the same size (this amplitude gives ~0.3 byte/pixel at q90).
    raw = rng.randbytes(image.width * image.height)
    grain = Image.frombytes("L", image.size, raw).point(lambda v: v * _GRAIN // 255)
    return ImageChops.add(image, Image.merge("RGB", (grain, grain, grain)), offset=-_GRAIN // 2)


def _in_mode(image: Image.Image, mode: str, fmt: str) -> Image.Image:
    if mode == "RGB":
        return image
    if mode in ("1", "L", "CMYK", "I", "F"):
        return image.convert(mode)
    if mode == "I;16":
        return image.convert("L").point(lambda v: v * 257, "I").convert("I;16")
    if mode == "P":
        return image.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    alpha = _alpha_ramp(image.size)
    if mode == "PA":
        return _paletted_with_alpha(image, alpha, real_pa=fmt not in _TRANSPARENT_INDEX_FORMATS)
    with_alpha = image.convert("L") if mode == "LA" else image.copy()
    with_alpha.putalpha(alpha)
    return with_alpha


def _paletted_with_alpha(image: Image.Image, alpha: Image.Image, *, real_pa: bool) -> Image.Image:
    # At most 255 colours keeps index _TRANSPARENT_INDEX free to mean "transparent".
    paletted = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=255)
    if real_pa:
        with_alpha = paletted.convert("PA")
        with_alpha.putalpha(alpha)
        return with_alpha
    palette = paletted.getpalette() or []
    paletted.putpalette(palette + [255] * (768 - len(palette)))  # give index 255 a colour
    transparent = alpha.point(lambda a: 255 if a < 128 else 0, "1")
    paletted.paste(_TRANSPARENT_INDEX, mask=transparent)
    return paletted


def _alpha_ramp(size: tuple[int, int]) -> Image.Image:
    """Left column fully transparent (0), right column opaque (255)."""
    width = size[0]
    row = bytes(x * 255 // max(1, width - 1) for x in range(width))
    return Image.frombytes("L", (width, 1), row).resize(size, Image.Resampling.NEAREST)


def _save_options(fmt: str, mode: str, exif_orientation: int | None) -> dict[str, object]:
    options: dict[str, object] = {}
    if fmt == "jpeg":
        options["quality"] = 90
    elif fmt == "webp":
        options["quality"] = 85
    elif fmt == "png":
        options["compress_level"] = 3  # the fleet serves many PNGs: favour speed
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[_ORIENTATION_TAG] = exif_orientation
        options["exif"] = exif.tobytes()
    if mode == "PA" and fmt in _TRANSPARENT_INDEX_FORMATS:
        options["transparency"] = _TRANSPARENT_INDEX
    return options


# ---- decompression-bomb headers ---------------------------------------------------------


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _png_bomb(width: int, height: int) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    first_rows = zlib.compress(b"\x00" * 4096)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", first_rows)
        + _png_chunk(b"IEND", b"")
    )


def _gif_bomb(width: int, height: int) -> bytes:
    screen = struct.pack("<HHBBB", width, height, 0x80, 0, 0)  # global table of 2 colours
    palette = b"\x00\x00\x00\xff\xff\xff"
    descriptor = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0)
    return b"GIF89a" + screen + palette + descriptor + b"\x02\x02\x44\x01\x00;"


def _jpeg_bomb(width: int, height: int) -> bytes:
    if width > 0xFFFF or height > 0xFFFF:
        raise ValueError("a JPEG header holds at most 65535x65535")
    small = io.BytesIO()
    make_rgb_image(16, 16).save(small, "JPEG", quality=50)
    data = bytearray(small.getvalue())
    sof = data.find(b"\xff\xc0")
    if sof < 0:
        raise RuntimeError("baseline JPEG without SOF0 marker")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)
