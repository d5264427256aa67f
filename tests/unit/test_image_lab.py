"""LAB images (some scientific TIFFs) decode only when pillow-simd was built with Little CMS."""

from __future__ import annotations

import io

from PIL import Image, features

from distdl.image.pipeline import ImageOptions, ProcessedImage, process_image


def lab_tiff(lab: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("LAB", size, lab).save(buffer, "TIFF")
    return buffer.getvalue()


def test_this_build_has_little_cms() -> None:
    assert features.check("littlecms2"), "rebuild pillow-simd with liblcms2-dev (see README)"


def test_a_lab_tiff_goes_through_the_pipeline_with_its_colours() -> None:
    # L*=50, a*=+60, b*=-60 (Pillow stores a*/b* offset by 128): a vivid purple.
    result = process_image(lab_tiff((128, 188, 68)), ImageOptions(image_format="png"))
    assert isinstance(result, ProcessedImage), result
    assert result.original_size == (48, 64)
    stored = Image.open(io.BytesIO(result.image))
    assert stored.mode == "RGB"
    red, green, blue = stored.getpixel((10, 10))
    assert red > green + 60 and blue > green + 60, (red, green, blue)
    grey = process_image(lab_tiff((128, 128, 128)), ImageOptions(image_format="png"))
    assert isinstance(grey, ProcessedImage)
    red, green, blue = Image.open(io.BytesIO(grey.image)).getpixel((0, 0))
    assert max(red, green, blue) - min(red, green, blue) <= 3 and 100 < red < 140
