"""What a simulated host serves: image requests parsed from URLs, each image's fate, and
the bodies (real images from :func:`distdl.testing.image_samples.make_image_bytes`, cached; HTML
posing as an image; corrupt bytes).

URL scheme: ``/img/{image_id}.{ext}?w=640&h=480[&mode=RGB][&exif=6][&frames=3]`` where
``ext`` is a format name (``jpeg png gif bmp tiff webp``, or ``jpg``/``tif``).
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace

from distdl.testing.fleet_limits import pick_band, roll
from distdl.testing.fleet_spec import PERMANENT_RATES, HostSpec
from distdl.testing.image_samples import make_image_bytes

CONTENT_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
    "webp": "image/webp",
}
_EXTENSIONS = {**{fmt: fmt for fmt in CONTENT_TYPES}, "jpg": "jpeg", "tif": "tiff"}
MAX_SIDE = 10_000
MAX_PIXELS = 50_000_000
MAX_FRAMES = 16
NOT_AN_IMAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head>"
    b"<body><p>Please sign in to view this image.</p></body></html>\n"
)
_NOT_FOUND_STATUSES = ((404, 0.6), (410, 0.2), (403, 0.2))


@dataclass(frozen=True)
class ImageRequest:
    image_id: int
    fmt: str
    width: int = 640
    height: int = 480
    mode: str = "RGB"
    exif_orientation: int | None = None
    frames: int = 1

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.fmt]


def parse_image_request(name: str, query: Mapping[str, str]) -> ImageRequest:
    """``name`` is the last path segment (``"17.jpeg"``). Raises ValueError when malformed."""
    stem, dot, ext = name.partition(".")
    fmt = _EXTENSIONS.get(ext.lower()) if dot else None
    if fmt is None or not stem.isdigit():
        raise ValueError(f"expected /img/<digits>.<format>, got {name!r}")
    exif = query.get("exif")
    request = ImageRequest(
        image_id=int(stem),
        fmt=fmt,
        width=int(query.get("w", 640)),
        height=int(query.get("h", 480)),
        mode=query.get("mode", "RGB"),
        exif_orientation=int(exif) if exif else None,
        frames=int(query.get("frames", 1)),
    )
    if not (1 <= request.width <= MAX_SIDE and 1 <= request.height <= MAX_SIDE):
        raise ValueError(f"width and height must be in 1..{MAX_SIDE}")
    if request.width * request.height > MAX_PIXELS or not 1 <= request.frames <= MAX_FRAMES:
        raise ValueError("image too large for the simulated fleet")
    return request


@dataclass(frozen=True)
class ImageFate:
    """How a host answers every request for one image id (transient faults aside).

    ``kind``: "ok", "not_found", "not_image", "corrupt", "oversize", "opt_out", or the host
    mode ("black_hole", "refused"). ``status`` is the final HTTP status (0 when none).
    ``robots_tag`` is the X-Robots-Tag sent (opt_out only); ``redirects`` the 302 hops
    before the image.
    """

    kind: str
    status: int
    robots_tag: str | None = None
    redirects: int = 0


def image_fate(spec: HostSpec, seed: int, image_id: int) -> ImageFate:
    if spec.mode != "normal":
        return ImageFate(spec.mode, 0)
    bands = [(name.removesuffix("_rate"), getattr(spec, name)) for name in PERMANENT_RATES]
    kind = pick_band(roll(seed, spec.name, image_id, "fate"), bands) or "ok"
    redirected = roll(seed, spec.name, image_id, "redirect") < spec.redirect_rate
    redirects = spec.redirect_hops if redirected else 0
    if kind == "not_found":
        statuses = [(str(status), share) for status, share in _NOT_FOUND_STATUSES]
        status = int(pick_band(roll(seed, spec.name, image_id, "status"), statuses) or 404)
        return ImageFate(kind, status, None, redirects)
    if kind == "opt_out":
        index = int(roll(seed, spec.name, image_id, "tag") * len(spec.opt_out_tags))
        return ImageFate(kind, 200, spec.opt_out_tags[index], redirects)
    return ImageFate(kind, 200, None, redirects)


def corrupt_bytes(image: bytes, seed: int) -> bytes:
    """The format's magic bytes, then garbage: identified as the format, never decodable."""
    garbage = random.Random(seed).randbytes(max(1024, len(image) - 8))
    return image[:8] + garbage


class ImageCache:
    """Encoded images by request, ``variants`` distinct pictures per (format, size, ...).

    Image ids share pictures modulo ``variants`` because encoding costs 10-150 ms: a fleet
    serving hundreds of requests per second must mostly hit the cache. Misses are encoded
    in a worker thread so the event loop keeps stamping and answering other requests, and
    concurrent misses for one key share one encoding.
    """

    def __init__(self, variants: int = 8, max_bytes: int = 256 * 1024 * 1024) -> None:
        if variants < 1:
            raise ValueError("variants must be >= 1")
        self.variants = variants
        self.max_bytes = max_bytes
        self._done: OrderedDict[ImageRequest, bytes] = OrderedDict()
        self._pending: dict[ImageRequest, asyncio.Future[bytes]] = {}
        self._size = 0

    async def get(self, request: ImageRequest) -> bytes:
        """The image's bytes; ValueError when the format cannot store the requested mode."""
        key = replace(request, image_id=request.image_id % self.variants)
        cached = self._done.get(key)
        if cached is not None:
            self._done.move_to_end(key)
            return cached
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.get_running_loop().run_in_executor(None, _encode, key)
            self._pending[key] = pending
            pending.add_done_callback(functools.partial(self._finished, key))
        # shield: one waiter cancelled (server shutdown) must not cancel the others' image
        return await asyncio.shield(pending)

    def _finished(self, key: ImageRequest, future: asyncio.Future[bytes]) -> None:
        del self._pending[key]
        if future.cancelled() or future.exception() is not None:
            return
        data = future.result()
        self._done[key] = data
        self._size += len(data)
        while self._size > self.max_bytes and len(self._done) > 1:
            _, evicted = self._done.popitem(last=False)
            self._size -= len(evicted)


def _encode(key: ImageRequest) -> bytes:
    return make_image_bytes(
        key.fmt,
        key.width,
        key.height,
        seed=key.image_id,
        mode=key.mode,
        exif_orientation=key.exif_orientation,
        frames=key.frames,
    )
