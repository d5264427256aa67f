from __future__ import annotations

import io

import pytest
from PIL import ExifTags, Image, ImageChops, ImageStat

from distdl.testing.image_samples import (
    ANIMATED_FORMATS,
    EXIF_FORMATS,
    FORMATS,
    WRITABLE_MODES,
    make_bomb_bytes,
    make_image_bytes,
)

PIL_NAMES = {"jpeg": "JPEG", "png": "PNG", "gif": "GIF", "bmp": "BMP", "tiff": "TIFF"}
FORMAT_MODES = [(fmt, mode) for fmt in FORMATS for mode in sorted(WRITABLE_MODES[fmt])]


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize(("fmt", "mode"), FORMAT_MODES)
def test_every_format_and_mode_decodes_at_the_requested_size(fmt: str, mode: str) -> None:
    image = _open(make_image_bytes(fmt, 37, 23, seed=3, mode=mode))
    assert image.size == (37, 23)
    assert image.format == PIL_NAMES.get(fmt, "WEBP")


@pytest.mark.parametrize(
    ("fmt", "mode", "stored_mode"),
    [
        ("png", "RGBA", "RGBA"),
        ("png", "LA", "LA"),
        ("png", "I;16", "I;16"),
        ("tiff", "PA", "PA"),
        ("tiff", "CMYK", "CMYK"),
        ("tiff", "F", "F"),
        ("jpeg", "CMYK", "CMYK"),
        ("png", "PA", "P"),  # palette + transparent index: the web's usual "PA"
    ],
)
def test_modes_are_stored_as_such(fmt: str, mode: str, stored_mode: str) -> None:
    assert _open(make_image_bytes(fmt, 16, 8, mode=mode)).mode == stored_mode


@pytest.mark.parametrize(("fmt", "mode"), [("png", "RGBA"), ("png", "PA"), ("gif", "PA")])
def test_alpha_ramp_is_transparent_on_the_left_and_opaque_on_the_right(fmt: str, mode: str) -> None:
    rgba = _open(make_image_bytes(fmt, 40, 10, mode=mode)).convert("RGBA")
    assert rgba.getpixel((0, 5))[3] == 0
    assert rgba.getpixel((39, 5))[3] == 255


def test_same_arguments_same_bytes_and_seed_changes_content() -> None:
    first = make_image_bytes("png", 50, 40, seed=7)
    assert make_image_bytes("png", 50, 40, seed=7) == first
    assert make_image_bytes("png", 50, 40, seed=8) != first


def test_jpeg_sizes_are_photo_like() -> None:
    data = make_image_bytes("jpeg", 800, 600, seed=1)
    bytes_per_pixel = len(data) / (800 * 600)
    # Real photos at quality 90 land around 0.2-0.6 byte/pixel; flat colours at ~0.01.
    assert 0.15 < bytes_per_pixel < 1.0


@pytest.mark.parametrize("fmt", sorted(ANIMATED_FORMATS))
def test_frames_and_first_frame_equals_single_image(fmt: str) -> None:
    animated = Image.open(io.BytesIO(make_image_bytes(fmt, 48, 32, seed=5, frames=3)))
    assert animated.n_frames == 3
    first = animated.convert("RGB")
    single = _open(make_image_bytes(fmt, 48, 32, seed=5)).convert("RGB")
    other = _open(make_image_bytes(fmt, 48, 32, seed=6)).convert("RGB")
    mean_diff = sum(ImageStat.Stat(ImageChops.difference(first, single)).mean) / 3
    other_diff = sum(ImageStat.Stat(ImageChops.difference(first, other)).mean) / 3
    assert mean_diff < 5  # lossy WebP re-encodes a little differently inside an animation
    assert other_diff > 30


@pytest.mark.parametrize("fmt", sorted(EXIF_FORMATS))
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_written(fmt: str, orientation: int) -> None:
    image = Image.open(io.BytesIO(make_image_bytes(fmt, 20, 10, exif_orientation=orientation)))
    assert image.getexif().get(ExifTags.Base.Orientation) == orientation
    # The pixels are stored as given; Pillow's TIFF reader alone reports the upright size.
    turned = fmt == "tiff" and orientation >= 5
    assert image.size == ((10, 20) if turned else (20, 10))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fmt": "avif"}, "unknown format"),
        ({"mode": "XYZ"}, "unknown mode"),
        ({"width": 0}, ">= 1"),
        ({"mode": "RGBA", "fmt": "jpeg"}, "cannot store mode RGBA"),
        ({"frames": 2, "fmt": "jpeg"}, "frames"),
        ({"exif_orientation": 6, "fmt": "gif"}, "EXIF"),
        ({"exif_orientation": 9}, "1..8"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"fmt": "png", "width": 10, "height": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        make_image_bytes(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["png", "gif", "jpeg"])
def test_bomb_headers_claim_the_size_in_a_tiny_file(fmt: str) -> None:
    data = make_bomb_bytes(fmt, 9000, 7000)  # 63 Mpx: under Pillow's own global guard
    assert len(data) < 2000
    image = Image.open(io.BytesIO(data))
    assert image.size == (9000, 7000)


def test_bomb_of_unknown_format_raises() -> None:
    with pytest.raises(ValueError, match="png, gif and jpeg"):
        make_bomb_bytes("bmp", 10, 10)
