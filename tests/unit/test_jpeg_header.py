"""The JPEG marker reader behind the header probe: it must give exactly what Pillow's path
gives, and step aside for every JPEG it cannot vouch for."""

from __future__ import annotations

import io
import itertools

import pytest
from PIL import Image

from distdl.image import footprint
from distdl.image.footprint import probe
from distdl.image.jpeg_header import read_jpeg_header

SIZES = ((1600, 1200), (1001, 333), (333, 1001), (64, 48), (2000, 9), (225, 224))
LONGER_SIDES = (224, 720, 5000)


def jpeg(
    size: tuple[int, int],
    mode: str = "RGB",
    *,
    orientation: int | None = None,
    **save: object,
) -> bytes:
    image = Image.new(mode, size, "white" if mode != "CMYK" else (0, 40, 80, 0))
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        save["exif"] = exif.tobytes()
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80, **save)
    return buffer.getvalue()


def pillow_probe(data: bytes, longer_side: int, monkeypatch: pytest.MonkeyPatch) -> object:
    with monkeypatch.context() as patched:
        patched.setattr(footprint, "read_jpeg_header", lambda _data: None)
        return probe(data, 10**9, longer_side)


PLAIN = [
    *(jpeg(size, mode) for size, mode in itertools.product(SIZES, ("RGB", "L", "CMYK"))),
    *(jpeg((1600, 900), orientation=value) for value in range(1, 9)),
    jpeg((1200, 700), progressive=True),
    jpeg((1200, 700), orientation=6, progressive=True, comment=b"a comment"),
]


@pytest.mark.parametrize("data", PLAIN, ids=range(len(PLAIN)))
def test_the_reader_gives_what_pillow_gives(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    assert read_jpeg_header(data) is not None  # the fast path is the one compared
    for longer_side in LONGER_SIDES:
        assert probe(data, 10**9, longer_side) == pillow_probe(data, longer_side, monkeypatch)


def test_orientation_and_mode_are_read() -> None:
    header = read_jpeg_header(jpeg((300, 200), "L", orientation=6))
    assert header is not None
    assert (header.size, header.mode, header.orientation) == ((300, 200), "L", 6)


@pytest.mark.parametrize(
    "data",
    [
        jpeg((300, 200), xmp=b"<x:xmpmeta xmlns:x='adobe:ns:meta/'></x:xmpmeta>"),
        jpeg((300, 200), orientation=9),  # invalid value: Pillow's rules decide
        jpeg((300, 200))[:100],  # truncated before the scan
        b"\xff\xd8\xff\xe0\x00\x02",
        b"\x89PNG\r\n\x1a\n",
        b"",
    ],
    ids=["xmp", "bad-orientation", "truncated", "no-frame", "png", "empty"],
)
def test_jpegs_it_cannot_vouch_for_are_left_to_pillow(data: bytes) -> None:
    assert read_jpeg_header(data) is None


def test_a_bomb_is_still_refused_by_pillow_with_its_message() -> None:
    data = jpeg((400, 300))
    with pytest.raises(Exception, match="max_image_pixels"):
        probe(data, max_pixels=1000, longer_side=224)
