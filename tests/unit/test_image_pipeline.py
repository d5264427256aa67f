from __future__ import annotations

import hashlib
import io
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image, ImageChops, ImageOps, ImageStat, JpegImagePlugin

from distdl.config import DownloaderParameters
from distdl.core import codes
from distdl.image import pipeline
from distdl.image.pipeline import ImageFailure, ImageOptions, ProcessedImage, process_image
from distdl.image.resize import resize_to, target_size
from distdl.testing.image_samples import (
    ANIMATED_FORMATS,
    FORMATS,
    WRITABLE_MODES,
    make_bomb_bytes,
    make_image_bytes,
    make_rgb_image,
)

RAW_NO_RESIZE = ImageOptions(image_size=100_000, image_format="raw")
FORMAT_MODES = [(fmt, mode) for fmt in FORMATS for mode in sorted(WRITABLE_MODES[fmt])]


def _ok(data: bytes, options: ImageOptions | None = None) -> ProcessedImage:
    result = process_image(data, options or ImageOptions())
    assert isinstance(result, ProcessedImage), result
    return result


def _failure(data: bytes, options: ImageOptions | None = None) -> ImageFailure:
    result = process_image(data, options or ImageOptions())
    assert isinstance(result, ImageFailure), result
    return result


def _stored(result: ProcessedImage) -> Image.Image:
    image = Image.open(io.BytesIO(result.image))
    image.load()
    return image


def _mean_difference(first: Image.Image, second: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(first, second)).mean) / 3


def _raw_image(result: ProcessedImage) -> Image.Image:
    height, width = result.resized_size
    return Image.frombytes("RGB", (width, height), result.image)


# ---- formats, modes and sizes --------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "mode"), FORMAT_MODES)
def test_every_format_and_mode_gives_an_rgb_jpeg_of_the_right_size(fmt: str, mode: str) -> None:
    result = _ok(make_image_bytes(fmt, 900, 600, seed=1, mode=mode))
    assert result.original_size == (600, 900)
    assert result.resized_size == (480, 720)
    stored = _stored(result)
    assert (stored.format, stored.mode, stored.size) == ("JPEG", "RGB", (720, 480))


@pytest.mark.parametrize(
    ("size", "resized"),
    [
        ((1000, 10), (7, 720)),
        ((10, 1000), (720, 7)),
        ((4000, 1), (1, 720)),
        ((720, 720), (720, 720)),
    ],
)
def test_exact_resized_dimensions(size: tuple[int, int], resized: tuple[int, int]) -> None:
    result = _ok(make_image_bytes("png", *size), ImageOptions(image_format="raw"))
    assert result.original_size == (size[1], size[0])
    assert result.resized_size == resized
    assert len(result.image) == resized[0] * resized[1] * 3


def test_small_images_are_not_upscaled_and_keep_their_pixels() -> None:
    data = make_image_bytes("png", 300, 200, seed=9)
    result = _ok(data, ImageOptions(image_format="raw"))
    assert result.original_size == result.resized_size == (200, 300)
    assert result.image == Image.open(io.BytesIO(data)).convert("RGB").tobytes()


def test_raw_is_height_width_rgb_bytes() -> None:
    result = _ok(make_image_bytes("jpeg", 1000, 800, seed=2), ImageOptions(image_format="raw"))
    assert result.resized_size == (576, 720)
    assert len(result.image) == 576 * 720 * 3
    as_jpeg = _stored(_ok(make_image_bytes("jpeg", 1000, 800, seed=2)))
    assert _mean_difference(_raw_image(result), as_jpeg) < 3


def test_png_output_is_lossless_of_the_resized_pixels() -> None:
    data = make_image_bytes("png", 1000, 800, seed=3)
    as_png = _ok(data, ImageOptions(image_format="png"))
    as_raw = _ok(data, ImageOptions(image_format="raw"))
    stored = _stored(as_png)
    assert stored.format == "PNG"
    assert stored.tobytes() == as_raw.image


def test_jpeg_quality_is_used() -> None:
    data = make_image_bytes("jpeg", 1000, 800, seed=4)
    low = _ok(data, ImageOptions(jpeg_quality=40))
    high = _ok(data, ImageOptions(jpeg_quality=95))
    assert len(low.image) < len(high.image)


def test_md5s_are_of_the_downloaded_and_of_the_stored_bytes() -> None:
    data = make_image_bytes("jpeg", 1000, 800, seed=5)
    result = _ok(data)
    assert result.hashsum_original == hashlib.md5(data).hexdigest()
    assert result.hashsum_resized == hashlib.md5(result.image).hexdigest()
    assert result.hashsum_original != result.hashsum_resized


# ---- EXIF orientation ----------------------------------------------------------------------


@pytest.mark.parametrize(("orientation", "swapped"), [(1, False), (3, False), (6, True), (8, True)])
def test_orientation_swaps_dimensions_of_rotated_images(orientation: int, swapped: bool) -> None:
    data = make_image_bytes("jpeg", 1600, 1200, exif_orientation=orientation)
    result = _ok(data)
    expected_original, expected_resized = (
        ((1600, 1200), (720, 540)) if swapped else ((1200, 1600), (540, 720))
    )
    assert result.original_size == expected_original
    assert result.resized_size == expected_resized
    assert _stored(result).size == (expected_resized[1], expected_resized[0])


@pytest.mark.parametrize("fmt", ["png", "webp", "tiff"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow_exif_transpose(fmt: str, orientation: int) -> None:
    data = make_image_bytes(fmt, 60, 40, seed=6, exif_orientation=orientation)
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    result = _ok(data, RAW_NO_RESIZE)
    assert result.original_size == (upright.height, upright.width)
    assert result.image == upright.tobytes()


def test_orientation_is_applied_after_resizing_with_the_same_result() -> None:
    data = make_image_bytes("png", 1200, 900, seed=7, exif_orientation=6)
    result = _ok(data, ImageOptions(image_format="raw"))
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    reference = resize_to(upright, (540, 720))
    assert result.resized_size == (720, 540)
    assert _mean_difference(_raw_image(result), reference) < 1


def test_corrupt_orientation_value_is_ignored() -> None:
    exif = Image.Exif()
    exif[0x0112] = 42
    buffer = io.BytesIO()
    make_rgb_image(80, 40).save(buffer, "JPEG", exif=exif.tobytes())
    assert _ok(buffer.getvalue()).original_size == (40, 80)


# ---- first frame ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(ANIMATED_FORMATS))
def test_animations_give_their_first_frame(fmt: str) -> None:
    animated = _raw_image(_ok(make_image_bytes(fmt, 64, 48, seed=11, frames=3), RAW_NO_RESIZE))
    first = _raw_image(_ok(make_image_bytes(fmt, 64, 48, seed=11), RAW_NO_RESIZE))
    second = _raw_image(_ok(make_image_bytes(fmt, 64, 48, seed=12), RAW_NO_RESIZE))
    assert _mean_difference(animated, first) < 5
    assert _mean_difference(animated, second) > 30


# ---- JPEG draft mode -------------------------------------------------------------------------


@pytest.fixture
def draft_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    calls: list[tuple[int, int]] = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self: JpegImagePlugin.JpegImageFile, mode: str | None, size: tuple[int, int] | None):  # type: ignore[no-untyped-def]
        assert size is not None
        calls.append(size)
        return original(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    return calls


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("size", "orientation", "drafted"),
    [
        ((4000, 3000), 1, True),
        ((3001, 1999), 1, True),
        ((2887, 1441), 6, True),
        ((1441, 2887), 8, True),
        ((7201, 160), 1, True),  # 720x16
        ((7201, 10), 1, False),  # 720x1: too thin a strip to draft
    ],
)
def test_draft_gives_the_same_size_as_a_full_decode(
    size: tuple[int, int], orientation: int, drafted: bool, draft_calls: list[tuple[int, int]]
) -> None:
    data = make_image_bytes("jpeg", *size, seed=13, exif_orientation=orientation)
    result = _ok(data, ImageOptions(image_format="raw"))
    assert bool(draft_calls) == drafted
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    full_size = target_size(upright.size, 720)
    assert result.resized_size == (full_size[1], full_size[0])
    reference = resize_to(upright, full_size)
    assert _mean_difference(_raw_image(result), reference) < 3  # same picture, DCT-scaled


def test_no_draft_below_a_factor_of_two(draft_calls: list[tuple[int, int]]) -> None:
    result = _ok(make_image_bytes("jpeg", 1400, 1000, seed=14))
    assert result.resized_size == (514, 720)
    assert draft_calls == []


def test_draft_size_is_the_stored_target(draft_calls: list[tuple[int, int]]) -> None:
    _ok(make_image_bytes("jpeg", 3000, 1600, seed=15, exif_orientation=6))
    assert draft_calls == [(720, 384)]  # stored landscape, displayed portrait


def test_camera_mpo_jpegs_are_drafted_and_give_their_first_frame(
    draft_calls: list[tuple[int, int]],
) -> None:
    first, second = make_rgb_image(2000, 1500, seed=16), make_rgb_image(2000, 1500, seed=17)
    buffer = io.BytesIO()
    first.save(buffer, "MPO", save_all=True, append_images=[second])
    result = _ok(buffer.getvalue(), ImageOptions(image_format="raw"))
    assert draft_calls == [(720, 540)]
    reference = resize_to(first, (720, 540))
    assert _mean_difference(_raw_image(result), reference) < 3


# ---- decompression bombs -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["png", "gif", "jpeg"])
def test_huge_headers_are_bombs(fmt: str) -> None:
    failure = _failure(make_bomb_bytes(fmt, 60000, 60000))
    assert failure.error_code == codes.DECOMPRESSION_BOMB


@pytest.mark.parametrize("fmt", ["png", "gif", "jpeg"])
def test_per_call_limit_is_checked_before_any_pixel_is_allocated(
    fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_bomb_bytes(fmt, 3000, 2000)
    canvases: list[tuple[int, int]] = []
    allocate = Image.core.new

    def spy(mode: str, size: tuple[int, int]) -> object:
        canvases.append(size)
        return allocate(mode, size)

    monkeypatch.setattr(Image.core, "new", spy)
    failure = _failure(data, ImageOptions(max_pixels=5_999_999))
    assert failure.error_code == codes.DECOMPRESSION_BOMB
    assert "3000x2000" in failure.error_msg
    assert canvases == []
    # One pixel more allowed: the canvas is allocated and decoding starts. PNG/GIF then find
    # their data truncated; libjpeg pads the missing data (drafted to 1/4 scale here).
    allowed = process_image(data, ImageOptions(max_pixels=6_000_000))
    if fmt == "jpeg":
        assert (750, 500) in canvases
        assert isinstance(allowed, ProcessedImage)
    else:
        assert (3000, 2000) in canvases
        assert isinstance(allowed, ImageFailure)
        assert allowed.error_code == codes.UNDECODABLE


def test_limit_boundary_on_a_valid_image() -> None:
    data = make_image_bytes("png", 200, 150)
    assert _failure(data, ImageOptions(max_pixels=29_999)).error_code == codes.DECOMPRESSION_BOMB
    assert _ok(data, ImageOptions(max_pixels=30_000)).original_size == (150, 200)


def test_pillow_global_guard_error_maps_to_bomb(monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_image_bytes("png", 100, 100)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    failure = _failure(data, ImageOptions(max_pixels=10**9))
    assert failure.error_code == codes.DECOMPRESSION_BOMB


def test_pillow_global_guard_warning_as_error_maps_to_bomb(monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_image_bytes("png", 100, 100)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 6000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        failure = _failure(data, ImageOptions(max_pixels=10**9))
    assert failure.error_code == codes.DECOMPRESSION_BOMB


# ---- bad bytes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty body"),
        (b"  <!DOCTYPE html><html><body>Not found</body></html>", "HTML"),
        (b"\xef\xbb\xbf<svg xmlns='http://www.w3.org/2000/svg'/>", "HTML/XML/SVG"),
        (b'{"error": "not found"}', "JSON"),
        (b"PK\x03\x04 a zip file", "starts with 504b0304"),
        (b"\x89PNG\r\n\x1a\n", "damaged PNG header"),
        (b"GIF89a\x00", "damaged GIF header"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "damaged WebP header"),
        (make_image_bytes("jpeg", 300, 200)[:2000], "truncated"),
        (make_image_bytes("png", 300, 200)[:3000], "truncated"),
        (make_image_bytes("gif", 300, 200)[:1000], "GIF"),
    ],
)
def test_bad_bytes_are_undecodable_with_a_specific_message(data: bytes, message: str) -> None:
    failure = _failure(data)
    assert failure.error_code == codes.UNDECODABLE
    assert message in failure.error_msg
    assert len(failure.error_msg) <= 200


@pytest.mark.parametrize("pil_format", ["ICO", "PCX", "TGA"])
def test_formats_outside_the_list_are_refused(pil_format: str) -> None:
    buffer = io.BytesIO()
    make_rgb_image(32, 32).save(buffer, pil_format)
    failure = _failure(buffer.getvalue())
    assert failure.error_code == codes.UNDECODABLE
    assert "not a JPEG/PNG/GIF/BMP/TIFF/WebP image" in failure.error_msg


def test_an_unexpected_error_after_decoding_is_an_internal_error_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def out_of_memory(*args: object) -> bytes:
        raise MemoryError("no room")

    monkeypatch.setattr(pipeline, "encode", out_of_memory)
    failure = _failure(make_image_bytes("png", 20, 20))
    assert failure.error_code == codes.INTERNAL_ERROR
    assert "MemoryError: no room" in failure.error_msg


# ---- options and threads -------------------------------------------------------------------


def test_options_from_config() -> None:
    params = DownloaderParameters(
        image_size=256, image_format="png", jpeg_quality=80, max_image_pixels=1234
    )
    assert ImageOptions.from_config(params) == ImageOptions(
        image_size=256, image_format="png", jpeg_quality=80, max_pixels=1234
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"image_size": 0},
        {"image_format": "gif"},
        {"jpeg_quality": 0},
        {"jpeg_quality": 101},
        {"max_pixels": 0},
    ],
)
def test_invalid_options_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ImageOptions(**kwargs)  # type: ignore[arg-type]


def test_threads_give_the_same_results_as_sequential_calls() -> None:
    bodies = [make_image_bytes(fmt, 900, 700, seed=i) for i, fmt in enumerate(FORMATS)]
    bodies += [b"garbage", make_bomb_bytes("png", 60000, 60000)]
    options = ImageOptions()
    sequential = [process_image(body, options) for body in bodies]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(process_image, bodies, [options] * len(bodies)))
    assert threaded == sequential


@pytest.mark.parametrize(
    ("fmt", "mode"), [("png", "RGBA"), ("png", "LA"), ("gif", "PA"), ("webp", "RGBA")]
)
def test_transparency_flattened_after_resizing_matches_flattening_first(
    fmt: str, mode: str
) -> None:
    data = make_image_bytes(fmt, 1500, 1000, seed=21, mode=mode)
    result = _ok(data, ImageOptions(image_format="raw"))
    source = Image.open(io.BytesIO(data)).convert("RGBA")
    flattened_first = Image.new("RGB", source.size, (255, 255, 255))
    flattened_first.paste(source, mask=source)
    reference = flattened_first.resize((720, 480), Image.Resampling.LANCZOS)
    assert result.resized_size == (480, 720)
    assert _mean_difference(_raw_image(result), reference) < 1
    assert _raw_image(result).getpixel((0, 240)) == (255, 255, 255)  # transparent column
