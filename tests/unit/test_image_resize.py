from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from distdl.image.resize import resize_to, target_size


@pytest.mark.parametrize(
    ("size", "longer_side", "expected"),
    [
        ((1000, 10), 720, (720, 7)),
        ((10, 1000), 720, (7, 720)),
        ((4000, 1), 720, (720, 1)),  # never below 1 px
        ((1, 4000), 720, (1, 720)),
        ((4000, 3000), 720, (720, 540)),
        ((3000, 4000), 720, (540, 720)),
        ((1440, 3), 720, (720, 2)),  # 1.5 rounds half up
        ((1001, 1000), 720, (720, 719)),
        ((2000, 2000), 720, (720, 720)),
        ((720, 100), 720, (720, 100)),  # already fits: unchanged
        ((300, 200), 720, (300, 200)),  # smaller: never upscaled
        ((5, 3), 1, (1, 1)),
    ],
)
def test_target_size(size: tuple[int, int], longer_side: int, expected: tuple[int, int]) -> None:
    assert target_size(size, longer_side) == expected


@settings(database=None)
@given(
    width=st.integers(1, 100_000),
    height=st.integers(1, 100_000),
    longer_side=st.integers(1, 4096),
)
def test_target_size_properties(width: int, height: int, longer_side: int) -> None:
    new_width, new_height = target_size((width, height), longer_side)
    if max(width, height) <= longer_side:
        assert (new_width, new_height) == (width, height)
        return
    # the side that was longer is the one set to longer_side
    assert (new_width if width >= height else new_height) == longer_side
    assert 1 <= min(new_width, new_height) <= longer_side
    # the shorter side is the exact scaled value rounded to the nearest integer
    long_side, short_side = max(width, height), min(width, height)
    exact = short_side * longer_side / long_side
    assert abs(min(new_width, new_height) - max(1.0, exact)) <= 0.5 + 1e-9


def test_resize_to_exact_size_and_identity() -> None:
    image = Image.new("RGB", (400, 300), (10, 20, 30))
    assert resize_to(image, (400, 300)) is image
    small = resize_to(image, (133, 100))
    assert small.size == (133, 100)
    assert small.mode == "RGB"
    assert small.getpixel((50, 50)) == (10, 20, 30)


def test_rgba_is_resized_premultiplied_so_hidden_colours_do_not_bleed() -> None:
    image = Image.new("RGBA", (400, 100), (255, 0, 0, 0))  # invisible red
    image.paste((0, 0, 255, 255), (200, 0, 400, 100))  # opaque blue
    small = resize_to(image, (40, 10))
    assert small.mode == "RGBA"
    assert small.size == (40, 10)
    for x in range(40):
        red, _, _, alpha = small.getpixel((x, 5))
        assert alpha == 0 or red <= 2, (x, small.getpixel((x, 5)))


def test_rgba_resize_uses_the_reducing_gap_like_rgb() -> None:
    image = Image.new("RGBA", (3000, 2000), (10, 200, 30, 255))
    assert resize_to(image, (300, 200)).getpixel((150, 100)) == (10, 200, 30, 255)
