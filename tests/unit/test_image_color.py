from __future__ import annotations

import io

import pytest
from PIL import Image, ImageChops

from distdl.image.color import to_rgb
from distdl.testing.image_samples import make_image_bytes

WHITE = (255, 255, 255)


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _max_difference(first: Image.Image, second: Image.Image) -> int:
    return max(high for _, high in ImageChops.difference(first, second).getextrema())


def test_rgb_is_returned_unchanged() -> None:
    image = Image.new("RGB", (4, 4))
    assert to_rgb(image) is image


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [
        ("png", "RGBA"),
        ("png", "LA"),
        ("png", "PA"),
        ("gif", "PA"),
        ("tiff", "PA"),
        ("webp", "RGBA"),
    ],
)
def test_transparency_is_composited_on_white(fmt: str, mode: str) -> None:
    source = _open(make_image_bytes(fmt, 40, 10, seed=2, mode=mode))
    rgb = to_rgb(source)
    assert rgb.mode == "RGB"
    assert rgb.size == (40, 10)
    assert rgb.getpixel((0, 5)) == WHITE  # fully transparent column
    opaque = source.convert("RGBA").getpixel((39, 5))
    assert opaque[3] == 255
    assert rgb.getpixel((39, 5)) == opaque[:3]  # fully opaque column keeps its colour


def test_half_transparent_pixel_is_blended_with_white() -> None:
    image = Image.new("RGBA", (1, 1), (0, 0, 0, 128))
    red, green, blue = to_rgb(image).getpixel((0, 0))
    assert red == green == blue
    assert 125 <= red <= 129


def test_palette_transparency_index_becomes_white() -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([10, 20, 30, 200, 100, 50])
    image.putpixel((1, 0), 1)
    image.info["transparency"] = 0
    rgb = to_rgb(image)
    assert rgb.getpixel((0, 0)) == WHITE
    assert rgb.getpixel((1, 0)) == (200, 100, 50)


@pytest.mark.parametrize(("fmt", "mode"), [("png", "I;16"), ("tiff", "I;16"), ("tiff", "I")])
def test_wide_integer_modes_keep_their_grey_levels(fmt: str, mode: str) -> None:
    grey = to_rgb(_open(make_image_bytes(fmt, 30, 20, seed=4, mode="L")))
    wide = to_rgb(_open(make_image_bytes(fmt, 30, 20, seed=4, mode=mode)))
    assert wide.mode == "RGB"
    assert _max_difference(grey, wide) <= 1


def test_32_bit_integer_with_16_bit_values_is_scaled() -> None:
    image = Image.new("I", (3, 1))
    image.putdata([0, 128 * 256, 65535])
    rgb = to_rgb(image)
    assert [rgb.getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


@pytest.mark.parametrize(
    ("values", "expected"),
    [([0.0, 0.5, 1.0], [0, 127, 255]), ([-3.0, 100.0, 300.0], [0, 100, 255])],
)
def test_float_mode_is_scaled_or_clipped(values: list[float], expected: list[int]) -> None:
    image = Image.new("F", (3, 1))
    image.putdata(values)
    rgb = to_rgb(image)
    assert [rgb.getpixel((x, 0))[0] for x in range(3)] == expected


@pytest.mark.parametrize(("fmt", "mode"), [("jpeg", "CMYK"), ("tiff", "CMYK"), ("png", "1")])
def test_other_modes_use_pillow_conversion(fmt: str, mode: str) -> None:
    source = _open(make_image_bytes(fmt, 24, 16, seed=1, mode=mode))
    assert to_rgb(source).tobytes() == source.convert("RGB").tobytes()
