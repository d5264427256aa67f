"""No bytes, however broken, make process_image raise or report an internal error."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distdl.core import codes
from distdl.image.pipeline import ImageFailure, ImageOptions, ProcessedImage, process_image
from distdl.testing.image_samples import FORMATS, make_image_bytes

# Small limits keep mutated headers from asking for large (legitimate) allocations.
OPTIONS = ImageOptions(image_size=64, max_pixels=1_000_000)
SEEDS = [make_image_bytes(fmt, 48, 32, seed=1) for fmt in FORMATS] + [
    make_image_bytes("gif", 40, 30, frames=2),
    make_image_bytes("webp", 40, 30, frames=2, mode="RGBA"),
    make_image_bytes("png", 40, 30, mode="PA"),
    make_image_bytes("png", 40, 30, mode="I;16", exif_orientation=6),
    make_image_bytes("tiff", 40, 30, mode="CMYK", frames=2),
    make_image_bytes("jpeg", 40, 30, mode="CMYK", exif_orientation=8),
]
FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,  # keep no example database inside the repository
    suppress_health_check=[HealthCheck.too_slow],
)
# Pillow warns about large headers and damaged EXIF on its way to the outcomes we assert on.
pytestmark = [
    pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin"),
]


def _check(data: bytes) -> None:
    result = process_image(data, OPTIONS)
    if isinstance(result, ImageFailure):
        assert result.error_code in (codes.UNDECODABLE, codes.DECOMPRESSION_BOMB), result
        assert result.error_msg
    else:
        assert isinstance(result, ProcessedImage)
        assert max(result.resized_size) <= 64
        assert min(result.resized_size) >= 1


@pytest.mark.timeout(300)
@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    _check(data)


@pytest.mark.timeout(300)
@FUZZ
@given(st.sampled_from(SEEDS), st.data())
def test_truncated_images(seed: bytes, data: st.DataObject) -> None:
    _check(seed[: data.draw(st.integers(0, len(seed) - 1))])


@pytest.mark.timeout(300)
@FUZZ
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1),
)
def test_corrupted_images(seed: bytes, edits: list[tuple[float, int]]) -> None:
    corrupted = bytearray(seed)
    for where, value in edits:
        corrupted[int(where * len(corrupted))] = value
    _check(bytes(corrupted))


def _png(width: int, height: int, depth: int, colour: int, body: bytes) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(body))
        + chunk(b"IEND", b"")
    )


@pytest.mark.timeout(300)
@FUZZ
@given(
    width=st.integers(0, 2**31 - 1),
    height=st.integers(0, 2**31 - 1),
    depth=st.sampled_from([1, 2, 4, 8, 16, 3]),
    colour=st.sampled_from([0, 2, 3, 4, 6, 5]),
    body=st.binary(max_size=512),
)
def test_png_with_arbitrary_headers(
    width: int, height: int, depth: int, colour: int, body: bytes
) -> None:
    _check(_png(width, height, depth, colour, body))
