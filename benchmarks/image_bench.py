"""Benchmark of the image pipeline against a bare pillow-simd loop over the same bytes.

    python benchmarks/image_bench.py [--jpegs 60] [--others 12] [--rounds 5] [--threads 2]

Builds a corpus of photo-like images (see distdl.testing.image_samples): JPEGs of mixed sizes from
800x600 to 4000x3000, some portrait, some with an EXIF rotation, plus PNG and WebP images.
Then, in one run, it measures:

1. bare: the minimum a downloader must do per image: open, JPEG draft, convert to RGB,
   resize (same filter as the pipeline), encode JPEG; and the same plus the MD5s of the
   downloaded and stored bytes that the output schema requires (like-for-like);
2. pipeline: ``process_image`` on the same bytes, single-threaded (adds the pixel-limit
   check, EXIF orientation, mode handling and two MD5s);
3. threads: ``process_image`` in a ThreadPoolExecutor, to see whether threads scale
   (Pillow releases the GIL while decoding, resizing and encoding);
4. decoders: what a rank does per image since images are processed under a time limit:
   the header probe of the memory budget (:func:`distdl.image.footprint.probe`, in the
   caller), then ``process_image`` in decoder processes (:class:`DecoderPool`), with one
   process (``cpu_per_worker: 1``, against a single thread) and with ``--threads`` (against
   as many threads).

Bare and pipeline rounds alternate and the best round of each counts, so a noisy shared
machine hurts both alike. Prints the figures and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from distdl.image.decoder_pool import DecoderPool
from distdl.image.footprint import probe
from distdl.image.hashes import md5_hex
from distdl.image.pipeline import ImageFailure, ImageOptions, ProcessedImage, process_image
from distdl.image.resize import REDUCING_GAP, target_size
from distdl.testing.image_samples import make_image_bytes

JPEG_SIZES = ((800, 600), (1024, 768), (1600, 1200), (2048, 1536), (3000, 2000), (4000, 3000))
OTHER_SIZES = ((1200, 900), (2000, 1500))


def build_corpus(jpegs: int, others: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    corpus = []
    for index in range(jpegs):
        width, height = JPEG_SIZES[index % len(JPEG_SIZES)]
        if rng.random() < 0.3:
            width, height = height, width  # portrait
        orientation = 6 if rng.random() < 0.15 else None  # phone photo stored sideways
        corpus.append(
            make_image_bytes("jpeg", width, height, seed=seed + index, exif_orientation=orientation)
        )
    for index in range(others):
        fmt = ("png", "webp")[index % 2]
        mode = "RGBA" if index % 3 == 0 else "RGB"
        width, height = OTHER_SIZES[index % len(OTHER_SIZES)]
        corpus.append(make_image_bytes(fmt, width, height, seed=seed + 1000 + index, mode=mode))
    return corpus


def bare_process(data: bytes, options: ImageOptions) -> bytes:
    """The floor: what any downloader does, with no checks, orientation or hashing."""
    image = Image.open(io.BytesIO(data))
    size = target_size(image.size, options.image_size)
    if image.format == "JPEG" and min(image.width // size[0], image.height // size[1]) >= 2:
        image.draft("RGB", size)
    image = image.convert("RGB")
    if image.size != size:
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=options.jpeg_quality, optimize=False)
    return buffer.getvalue()


def bare_process_with_md5(data: bytes, options: ImageOptions) -> tuple[bytes, str, str]:
    """The floor plus the two MD5s the output schema requires: like-for-like with the pipeline."""
    stored = bare_process(data, options)
    return stored, md5_hex(data), md5_hex(stored)


def timed_round(
    work: Callable[[bytes, ImageOptions], object], corpus: Sequence[bytes], options: ImageOptions
) -> float:
    started = time.perf_counter()
    for data in corpus:
        work(data, options)
    return time.perf_counter() - started


def threaded_round(corpus: Sequence[bytes], options: ImageOptions, threads: int) -> float:
    with ThreadPoolExecutor(max_workers=threads) as pool:
        started = time.perf_counter()
        results = list(pool.map(process_image, corpus, [options] * len(corpus)))
        elapsed = time.perf_counter() - started
    assert all(isinstance(result, ProcessedImage) for result in results)
    return elapsed


def decoder_round(corpus: Sequence[bytes], options: ImageOptions, pool: DecoderPool) -> float:
    """The rank's way: probe each header (in the caller), process in decoder processes."""

    async def one(data: bytes) -> ProcessedImage | ImageFailure:
        probe(data, options.max_pixels, options.image_size)
        return await pool.process(data)

    async def everything() -> list[ProcessedImage | ImageFailure]:
        return await asyncio.gather(*(one(data) for data in corpus))

    started = time.perf_counter()
    results = asyncio.run(everything())
    elapsed = time.perf_counter() - started
    assert all(isinstance(result, ProcessedImage) for result in results)
    return elapsed


def best_rates(
    corpus: Sequence[bytes],
    options: ImageOptions,
    rounds: int,
    threads: int,
    pools: dict[int, DecoderPool],
) -> dict[str, float]:
    """img/s of the best round of each variant; variants alternate within every round."""
    variants: dict[str, Callable[[], float]] = {
        "bare": lambda: timed_round(bare_process, corpus, options),
        "bare_md5": lambda: timed_round(bare_process_with_md5, corpus, options),
        "pipeline": lambda: timed_round(process_image, corpus, options),
        "threaded": lambda: threaded_round(corpus, options, threads),
        "decoders_1": lambda: decoder_round(corpus, options, pools[1]),
        "decoders_n": lambda: decoder_round(corpus, options, pools[threads]),
    }
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for name, measure in variants.items():
            best[name] = min(best[name], measure())
    return {name: len(corpus) / seconds for name, seconds in best.items()}


def run(args: argparse.Namespace) -> dict[str, object]:
    started = time.perf_counter()
    corpus = build_corpus(args.jpegs, args.others, args.seed)
    build_s = time.perf_counter() - started
    options = ImageOptions(image_size=args.image_size, jpeg_quality=args.quality)
    # Warm-up (allocator, codec tables), and a check that every image is accepted.
    results = [process_image(data, options) for data in corpus]
    timed_round(bare_process, corpus, options)
    # Decoder processes start once (as in a rank) and warm up before the timed rounds.
    pools = {n: DecoderPool(n, options, timeout=600) for n in {1, args.threads}}
    try:
        for pool in pools.values():
            decoder_round(corpus, options, pool)
        rates = best_rates(corpus, options, args.rounds, args.threads, pools)
    finally:
        for pool in pools.values():
            pool.close()
    probe_s = timed_round(lambda data, o: probe(data, o.max_pixels, o.image_size), corpus, options)
    return {
        "images": len(corpus),
        "jpegs": args.jpegs,
        "others": args.others,
        "corpus_mb": round(sum(map(len, corpus)) / 1e6, 1),
        "megapixels": round(sum(_pixels(data) for data in corpus) / 1e6, 1),
        "image_size": args.image_size,
        "rounds": args.rounds,
        "build_s": round(build_s, 2),
        "bare_img_s": round(rates["bare"], 1),
        "bare_md5_img_s": round(rates["bare_md5"], 1),
        "pipeline_img_s": round(rates["pipeline"], 1),
        "pipeline_vs_bare": round(rates["pipeline"] / rates["bare"], 3),
        "pipeline_vs_bare_md5": round(rates["pipeline"] / rates["bare_md5"], 3),
        "threads": args.threads,
        "threaded_img_s": round(rates["threaded"], 1),
        "thread_speedup": round(rates["threaded"] / rates["pipeline"], 2),
        "decoders_1_img_s": round(rates["decoders_1"], 1),
        "decoders_1_vs_pipeline": round(rates["decoders_1"] / rates["pipeline"], 3),
        "decoders_n_img_s": round(rates["decoders_n"], 1),
        "decoders_n_vs_threaded": round(rates["decoders_n"] / rates["threaded"], 3),
        "probe_us_per_image": round(1e6 * probe_s / len(corpus), 1),
        "cpus": os.cpu_count(),
        "failures": sum(isinstance(result, ImageFailure) for result in results),
    }


def _pixels(data: bytes) -> int:
    width, height = Image.open(io.BytesIO(data)).size
    return width * height


def main() -> None:
    parser = argparse.ArgumentParser(description="image pipeline benchmark")
    parser.add_argument("--jpegs", type=int, default=60)
    parser.add_argument("--others", type=int, default=12, help="PNG and WebP images")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=720)
    parser.add_argument("--quality", type=int, default=95)
    parser.add_argument("--seed", type=int, default=0)
    record = run(parser.parse_args())
    print(
        f"corpus: {record['images']} images, {record['corpus_mb']} MB, "
        f"{record['megapixels']} Mpx (built in {record['build_s']} s)"
    )
    print(f"bare pillow-simd loop : {record['bare_img_s']:8.1f} img/s")
    print(f"bare loop + 2 MD5s    : {record['bare_md5_img_s']:8.1f} img/s")
    print(
        f"process_image         : {record['pipeline_img_s']:8.1f} img/s "
        f"({record['pipeline_vs_bare']:.2f}x bare, target >= 0.9x; "
        f"{record['pipeline_vs_bare_md5']:.2f}x bare + MD5s)"
    )
    print(
        f"process_image x{record['threads']} thr  : {record['threaded_img_s']:8.1f} img/s "
        f"({record['thread_speedup']:.2f}x single thread, {record['cpus']} CPUs)"
    )
    print(
        f"probe + 1 decoder     : {record['decoders_1_img_s']:8.1f} img/s "
        f"({record['decoders_1_vs_pipeline']:.2f}x process_image in the caller; header probe "
        f"{record['probe_us_per_image']} us/image)"
    )
    print(
        f"probe + {record['threads']} decoders    : {record['decoders_n_img_s']:8.1f} img/s "
        f"({record['decoders_n_vs_threaded']:.2f}x {record['threads']} threads)"
    )
    print(json.dumps(record))


if __name__ == "__main__":
    main()
