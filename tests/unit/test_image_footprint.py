"""The decoded footprint read from an image header: what it refuses, and how close it is to
what the pipeline really allocates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from png_bombs import png_bomb

from distdl.core import codes
from distdl.image.decode import ImageRejected
from distdl.image.footprint import least_peak_bytes, peak_bytes, probe
from distdl.testing.image_samples import make_image_bytes

MB = 1_000_000


def test_a_jpeg_is_costed_at_its_draft_scale() -> None:
    data = make_image_bytes("jpeg", 4000, 3000, seed=1)
    footprint = probe(data, max_pixels=10**9, longer_side=720)
    assert footprint.size == (1000, 750)  # decoded at 1/4: what decoding will allocate
    assert footprint.peak_bytes < 8 * MB
    full = probe(data, max_pixels=10**9, longer_side=4000)
    assert full.size == (4000, 3000) and full.peak_bytes > 40 * MB


def test_a_png_bomb_is_costed_from_its_header_without_decoding() -> None:
    bomb = png_bomb(9000, 9000)  # 81 Mpx in about 80 kB
    footprint = probe(bomb, max_pixels=10**9, longer_side=720)
    assert len(bomb) < 100_000
    assert footprint.mode == "L" and footprint.size == (9000, 9000)
    assert footprint.peak_bytes > 81_000_000 * 5  # grey frame + its RGB copy


def test_more_pixels_than_max_image_pixels_are_refused_naming_the_key() -> None:
    with pytest.raises(ImageRejected) as refused:
        probe(png_bomb(9000, 9000), max_pixels=50_000_000, longer_side=720)
    assert refused.value.code == codes.DECOMPRESSION_BOMB
    assert "max_image_pixels 50000000" in refused.value.message


def test_bytes_that_are_not_an_image_are_refused() -> None:
    with pytest.raises(ImageRejected) as refused:
        probe(b"<html>sign in</html>", max_pixels=10**9, longer_side=720)
    assert refused.value.code == codes.UNDECODABLE


def test_what_costs_more_is_costed_more() -> None:
    final = (720, 720)
    rgb = peak_bytes((4000, 4000), "RGB", final)
    assert peak_bytes((4000, 4000), "RGBA", final) > rgb  # premultiplied copy
    assert peak_bytes((4000, 4000), "RGB", final, transparent=True) > rgb
    assert peak_bytes((4000, 4000), "RGB", final, fmt="WEBP") > rgb  # decoder canvas
    assert peak_bytes((4000, 4000), "I;16", final) > rgb  # scaled copies
    assert peak_bytes((4000, 4000), "RGB", (3999, 3999)) > rgb  # a big resize result


def test_the_cheapest_image_at_the_pixel_limit_is_an_rgb_one() -> None:
    pixels = 178_956_970
    cheapest = least_peak_bytes(pixels, 720)
    assert 4 * pixels < cheapest < 5 * pixels


# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the parent (pytest).
_MEASURE = """
import re, sys
from pathlib import Path
from distdl.image.pipeline import ImageOptions, ProcessedImage, process_image
def peak():
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) * 1024
data = Path(sys.argv[1]).read_bytes()
before = peak()
assert isinstance(process_image(data, ImageOptions()), ProcessedImage)
print(peak() - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's VmHWM")
@pytest.mark.parametrize(
    ("fmt", "mode"),
    [("png", "RGB"), ("png", "RGBA"), ("png", "PA"), ("tiff", "CMYK"), ("webp", "RGB")],
)
def test_the_estimate_covers_the_real_peak_without_overstating_it(
    tmp_path: Path, fmt: str, mode: str
) -> None:
    data = make_image_bytes(fmt, 3000, 2000, seed=3, mode=mode)
    path = tmp_path / "image.bin"
    path.write_bytes(data)
    # A fresh process (its peak RSS starts below the image's) that warmed its codecs up.
    small = make_image_bytes(fmt, 32, 32, mode=mode)
    warm = f"from distdl.image.pipeline import *; process_image({small!r}, ImageOptions())\n"
    out = subprocess.run(
        [sys.executable, "-c", warm + _MEASURE, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    real = int(out.stdout.strip())
    estimate = probe(data, max_pixels=10**9, longer_side=720).peak_bytes
    assert real <= estimate <= 1.6 * real, (real, estimate)
