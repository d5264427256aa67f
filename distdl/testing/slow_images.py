"""Image work functions for tests and benchmarks that need a slow pipeline.

They run inside decoder processes (:mod:`distdl.image.decoder_pool`), which import them by
name, so they live in the package rather than in the tests.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time

from distdl.core import codes
from distdl.image.pipeline import ImageFailure, ImageOptions, ProcessedImage, process_image

GIF_SIGNATURE = b"GIF8"
SLOW_SECONDS_ENV = "DISTDL_TEST_IMAGE_SECONDS"  # read in the decoder process


def slow_process_image(data: bytes, options: ImageOptions) -> ProcessedImage | ImageFailure:
    """``process_image`` that takes at least ``$DISTDL_TEST_IMAGE_SECONDS`` (0.05 s by
    default) per image: a pipeline slower than a fast host."""
    time.sleep(float(os.environ.get(SLOW_SECONDS_ENV, "0.05")))
    return process_image(data, options)


def gif_never_ends(data: bytes, options: ImageOptions) -> ProcessedImage | ImageFailure:
    """``process_image``, except that a GIF never finishes: a pathological image that only
    the time limit can stop."""
    if data.startswith(GIF_SIGNATURE):
        while True:
            time.sleep(3600)
    return process_image(data, options)


def crash_on_gif(data: bytes, options: ImageOptions) -> ProcessedImage | ImageFailure:
    """``process_image``, except that a GIF kills the process, as a codec crash would."""
    if data.startswith(GIF_SIGNATURE):
        os.abort()
    return process_image(data, options)


NOISE_LINE = b"TIFFFillStrip: a codec's complaint, written in C"
LOUD_BYTES = 256 * 1024


def noisy_on_gif(data: bytes, options: ImageOptions) -> ProcessedImage | ImageFailure:
    """``process_image``, except that a GIF writes a line to the process's stderr (as
    libtiff does) and fails at once: its answer races that line to the rank."""
    if data.startswith(GIF_SIGNATURE):
        os.write(2, NOISE_LINE + b"\n")
        return ImageFailure(codes.UNDECODABLE, "noisy GIF")
    return process_image(data, options)


def noisy_crash_on_gif(data: bytes, options: ImageOptions) -> ProcessedImage | ImageFailure:
    """``process_image``, except that a GIF writes a line to stderr and kills the process:
    a codec that complains, then crashes."""
    if data.startswith(GIF_SIGNATURE):
        os.write(2, NOISE_LINE + b"\n")
        os.abort()
    return process_image(data, options)


def loud_on_gif(data: bytes, options: ImageOptions) -> ProcessedImage | ImageFailure:
    """``process_image``, except that a GIF writes ``LOUD_BYTES`` of complaints to stderr
    (in lines of 100 bytes) before it fails; a line that cannot be written is dropped, as
    C's stdio drops it."""
    if data.startswith(GIF_SIGNATURE):
        line = NOISE_LINE[:99].ljust(99) + b"\n"
        for _ in range(LOUD_BYTES // len(line)):
            with contextlib.suppress(OSError):
                os.write(2, line)
        return ImageFailure(codes.UNDECODABLE, "loud GIF")
    return process_image(data, options)


def body_digest(data: bytes, options: ImageOptions) -> ProcessedImage | ImageFailure:
    """No image work: the MD5 and length of the body as the decoder received it, to check
    that every body reaches its decoder whole, whichever way it was passed."""
    digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
    return ProcessedImage((len(data), 0), (0, 0), b"", digest, "")
