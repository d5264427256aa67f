"""The image pipeline the download worker runs on every body: decode, resize, encode, hash.

:func:`process_image` runs in the rank's decoder processes, off the event loop and under a
time limit (:mod:`distdl.image.decoder_pool`). It never raises for bad bytes: an image that
cannot be used comes back as an :class:`ImageFailure`, which becomes an errors.parquet row.

Sizes are reported as ``(height, width)``, the order of the output tables.
``original_size`` is the size of the original *as displayed*, i.e. after its EXIF
orientation is applied (a portrait photo stored sideways with Orientation=6 reports
``(4000, 3000)``, not ``(3000, 4000)``), so it always has the aspect ratio of the stored
image. Only the longer side is ever changed: images that already fit are not upscaled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from distdl.core import codes
from distdl.image.color import flatten_on_white
from distdl.image.decode import ImageRejected, decode, open_image, short_message
from distdl.image.encode import StoredFormat, encode
from distdl.image.hashes import md5_hex
from distdl.image.orientation import apply_orientation, oriented_size
from distdl.image.resize import resize_to, target_size

if TYPE_CHECKING:
    from distdl.config import DownloaderParameters

_STORED_FORMATS = ("jpeg", "png", "raw")


@dataclass(frozen=True, slots=True)
class ImageOptions:
    image_size: int = 720  # longer side after resize; downscale only
    image_format: StoredFormat = "jpeg"  # "raw": RGB pixel buffer, see distdl.image.encode
    jpeg_quality: int = 95
    max_pixels: int = 178_956_970  # decompression-bomb guard, checked on the header size

    def __post_init__(self) -> None:
        if self.image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {self.image_size}")
        if self.image_format not in _STORED_FORMATS:
            raise ValueError(f"image_format must be one of {_STORED_FORMATS}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {self.max_pixels}")

    @classmethod
    def from_config(cls, params: DownloaderParameters) -> ImageOptions:
        return cls(
            image_size=params.image_size,
            image_format=params.image_format,
            jpeg_quality=params.jpeg_quality,
            max_pixels=params.max_image_pixels,
        )


@dataclass(frozen=True, slots=True)
class ProcessedImage:
    original_size: tuple[int, int]  # (height, width) of the decoded original, as displayed
    resized_size: tuple[int, int]  # (height, width) stored
    image: bytes  # the stored bytes
    hashsum_original: str  # MD5 hex of the downloaded bytes
    hashsum_resized: str  # MD5 hex of the stored image bytes


@dataclass(frozen=True, slots=True)
class ImageFailure:
    error_code: int  # codes.UNDECODABLE or DECOMPRESSION_BOMB (INTERNAL_ERROR for a bug)
    error_msg: str


def process_image(data: bytes, options: ImageOptions) -> ProcessedImage | ImageFailure:
    """Decode ``data``, downscale it to ``options.image_size``, encode and hash it.

    Never raises for bad input: undecodable bytes give ``UNDECODABLE``, too many pixels
    ``DECOMPRESSION_BOMB``; an unexpected failure after decoding (a bug, or running out of
    memory) gives ``INTERNAL_ERROR`` so that one URL fails and the rank survives.
    """
    try:
        return _process(data, options)
    except ImageRejected as rejected:
        return ImageFailure(rejected.code, rejected.message)
    except Exception as exc:
        return ImageFailure(codes.INTERNAL_ERROR, f"image pipeline: {short_message(exc)}")


def _process(data: bytes, options: ImageOptions) -> ProcessedImage:
    decoded = decode(open_image(data, options.max_pixels), options.image_size)
    displayed_target = target_size(decoded.original_size, options.image_size)
    stored_target = oriented_size(displayed_target, decoded.orientation)
    # Transparency is flattened and orientation applied on the small image: cheaper.
    resized = flatten_on_white(resize_to(decoded.image, stored_target))
    upright = apply_orientation(resized, decoded.orientation)
    payload = encode(upright, options.image_format, options.jpeg_quality)
    return ProcessedImage(
        original_size=_height_width(decoded.original_size),
        resized_size=_height_width(upright.size),
        image=payload,
        hashsum_original=md5_hex(data),
        hashsum_resized=md5_hex(payload),
    )


def _height_width(size: tuple[int, int]) -> tuple[int, int]:
    width, height = size
    return height, width
