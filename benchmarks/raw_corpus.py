"""A photo-heavy corpus for raw_bench.py: real photos from Debian packages, and Pillow-made
variants of them (crops, rescales, re-encodes at several JPEG qualities).

The photos come from ``plasma-workspace-wallpapers`` (KDE's wallpapers: photographs as
2560x1600 to 5120x2880 JPEGs) and the WebP artworks of ``gnome-backgrounds``, fetched with
``apt-get download`` and unpacked with ``dpkg-deb -x`` into the cache folder (no root
install). Variants are written once into the cache and read back on later runs.

N distinct images are served from V variants: image ``i`` is variant ``i % V`` with a JPEG
comment segment carrying ``i`` (:func:`tagged`), so every body and its MD5 differ while the
pixel work per image is that of a real photo of the variant's size and quality.
"""

from __future__ import annotations

import io
import os
import random
import struct
import subprocess
from pathlib import Path

from PIL import Image

PACKAGES = ("plasma-workspace-wallpapers", "gnome-backgrounds")
# Longer sides of the served images: museum and citizen-science photos, 640 px thumbnails
# to 2560 px originals, most near 1000-1600 px (iNaturalist's "large" is 1024 px).
LONG_SIDES = (640, 800, 1024, 1024, 1024, 1280, 1280, 1600, 1600, 2048, 2560)
QUALITIES = (75, 85, 90, 95)
_SOURCE_LONG_SIDE = 2560  # sources are scaled to this once, to keep them in memory


def default_cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "distdl-bench" / "raw"


def source_files(cache: Path) -> list[Path]:
    """The packages' photos, downloaded and unpacked into ``cache`` on first use."""
    for package in PACKAGES:
        unpacked = cache / package
        if unpacked.exists():
            continue
        debs = cache / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", package], cwd=debs, check=True)
        deb = next(debs.glob(f"{package}_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked.with_suffix(".tmp"))], check=True)
        unpacked.with_suffix(".tmp").rename(unpacked)
    photos = sorted((cache / PACKAGES[0]).rglob("*.jpg"))
    artworks = sorted((cache / PACKAGES[1]).rglob("*.webp"))
    # screenshots are previews; 256 px artworks are too small to be photos
    return [
        p for p in photos + artworks if "screenshot" not in p.name and p.stat().st_size > 50_000
    ]


def _load_source(path: Path) -> Image.Image:
    image = Image.open(path)
    image.draft("RGB", (_SOURCE_LONG_SIDE, _SOURCE_LONG_SIDE))
    image = image.convert("RGB")
    image.thumbnail((_SOURCE_LONG_SIDE, _SOURCE_LONG_SIDE), Image.Resampling.LANCZOS)
    return image


def _variant(source: Image.Image, rng: random.Random) -> bytes:
    width, height = source.size
    crop_w = int(width * rng.uniform(0.5, 1.0))
    crop_h = int(height * rng.uniform(0.5, 1.0))
    if rng.random() < 0.3:  # portrait crops, as many specimen photos are
        crop_w = min(width, int(crop_h * rng.uniform(0.6, 0.8)))
    left, top = rng.randint(0, width - crop_w), rng.randint(0, height - crop_h)
    image = source.crop((left, top, left + crop_w, top + crop_h))
    long_side = rng.choice(LONG_SIDES)
    if max(image.size) > long_side:
        image.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=rng.choice(QUALITIES), progressive=rng.random() < 0.1)
    return buffer.getvalue()


def variants_folder(cache: Path, count: int, seed: int = 0) -> Path:
    """The folder of ``count`` distinct JPEG variants of the sources (``000000.jpg``, ...),
    made on first use."""
    folder = cache / f"variants-{count}-seed{seed}"
    if folder.exists():
        return folder
    sources = [_load_source(path) for path in source_files(cache)]
    rng = random.Random(seed)
    building = folder.with_suffix(".tmp")
    building.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        data = _variant(sources[index % len(sources)], rng)
        (building / f"{index:06d}.jpg").write_bytes(data)
    building.rename(folder)
    return folder


def load_variants(folder: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted(folder.glob("*.jpg"))]


def tagged(data: bytes, image_id: int) -> bytes:
    """``data`` (a JPEG) with a comment segment naming ``image_id`` right after its SOI."""
    text = f"distdl raw_bench image {image_id}".encode()
    return data[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + data[2:]
