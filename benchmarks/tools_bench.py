"""Benchmark of the ``resize`` and ``image_verification`` tools against bare pillow-simd loops
over the same stored images, read from the same parquet files.

    python benchmarks/tools_bench.py [--images 20000] [--distinct 240] [--rounds 2]

Builds a download output folder the way ``distdl run`` leaves it (partitions of
``--partition-rows`` rows with ``successes.parquet`` and a ``completed`` marker), whose stored
images are photo-like JPEGs (distdl.testing.image_samples) at ``--stored-size`` on the longer
side, landscape and portrait. Then, alternating, in one process (one core):

1. bare resize: for each parquet file, read ``image`` and ``resized_size``; per image open,
   JPEG draft, resize (the same filter), encode JPEG at the same quality, MD5 of the bytes;
2. ``resize`` tool: ``apply_tools(..., "resize", ranks=1)``: filter, schedule, the runner
   (which also writes every partition's new parquet files and markers) and verification;
3. bare verification: per image MD5 against ``hashsum_resized``, full decode, size check;
4. ``image_verification`` tool, likewise.

Rates are images per CPU-second of this process (img/s per core: it runs on one core, and
on a shared machine its CPU time does not count the time other processes took), and the
best round of each counts. Prints the figures and one JSON line; the target is a tool at
>= 0.9x its bare loop.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from PIL import Image

from distdl import schema
from distdl.image.hashes import md5_hex
from distdl.image.resize import REDUCING_GAP, target_size
from distdl.io.markers import write_marker
from distdl.layout import SUCCESSES_FILE
from distdl.testing.image_samples import make_image_bytes
from distdl.tools.apply import apply_tools

SHAPES = ((4, 3), (3, 4), (3, 2), (1, 1), (16, 9))
JPEG_QUALITY = 95


def build_download(folder: Path, images: int, distinct: int, rows: int, stored: int) -> Path:
    """A finished download of ``images`` rows (``distinct`` different pictures)."""
    pictures = []
    for index in range(distinct):
        wide, high = SHAPES[index % len(SHAPES)]
        width, height = target_size((wide * 1000, high * 1000), stored)
        data = make_image_bytes("jpeg", width, height, seed=index)
        pictures.append((data, [height, width]))
    out = folder / "out"
    for partition, start in enumerate(range(0, images, rows)):
        batch = [pictures[i % distinct] for i in range(start, min(images, start + rows))]
        table = pa.table(
            {
                "uuid": [f"{start + i:012d}" for i in range(len(batch))],
                "identifier": [f"http://bench.invalid/{start + i}" for i in range(len(batch))],
                "original_size": [[h * 4, w * 4] for _, (h, w) in batch],
                "resized_size": [size for _, size in batch],
                "hashsum_original": [
                    f"{i % distinct:032x}" for i in range(start, start + len(batch))
                ],
                "hashsum_resized": [md5_hex(data) for data, _ in batch],
                "image": [data for data, _ in batch],
            }
        )
        full = pa.table(
            {
                f.name: table[f.name]
                if f.name in table.column_names
                else pa.nulls(len(batch), f.type)
                for f in schema.SUCCESSES
            },
            schema=schema.SUCCESSES,
        )
        partition_dir = (
            out / "downloaded_images" / "server_name=bench" / f"partition_id={partition}"
        )
        partition_dir.mkdir(parents=True)
        pq.write_table(full, partition_dir / SUCCESSES_FILE, compression="zstd")
        write_marker(partition_dir, {"successes": len(batch)})
    config = folder / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "path_to_input": "unused.csv",
                "path_to_output": "out",
                "downloader_parameters": {"jpeg_quality": JPEG_QUALITY},
                "tools_parameters": {"new_resize_size": 224},
            }
        )
    )
    return config


def _files(config: Path) -> list[Path]:
    return sorted((config.parent / "out" / "downloaded_images").rglob(SUCCESSES_FILE))


def bare_resize(config: Path, longer_side: int) -> int:
    count = 0
    for path in _files(config):
        table = pq.read_table(path, columns=["image", "resized_size"])
        for data, (height, width) in zip(
            table.column("image").to_pylist(), table.column("resized_size").to_pylist(), strict=True
        ):
            target = target_size((width, height), longer_side)
            image = Image.open(io.BytesIO(data))
            image.draft("RGB", target)
            small = image.convert("RGB").resize(
                target, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP
            )
            buffer = io.BytesIO()
            small.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=False)
            md5_hex(buffer.getvalue())
            count += 1
    return count


def bare_verification(config: Path) -> int:
    count = 0
    for path in _files(config):
        table = pq.read_table(path, columns=["image", "resized_size", "hashsum_resized"])
        columns = table.to_pydict()
        for data, size, hashsum in zip(*columns.values(), strict=True):
            assert md5_hex(data) == hashsum
            image = Image.open(io.BytesIO(data))
            image.load()
            assert [image.height, image.width] == size
            count += 1
    return count


def tool_run(config: Path, tool: str, round_index: int) -> Callable[[], int]:
    def run() -> int:
        outcome = apply_tools(config, tool, ranks=1, tool_name_override=f"{tool}_{round_index}")
        shutil.rmtree(outcome.folder)  # the next round writes its own
        return int(outcome.totals["input_rows"])

    return run


def timed(action: Callable[[], int]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds of this process (all its threads), and the row count."""
    wall, cpu = time.perf_counter(), time.process_time()
    count = action()
    return time.perf_counter() - wall, time.process_time() - cpu, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--distinct", type=int, default=240)
    parser.add_argument("--partition-rows", type=int, default=1000)
    parser.add_argument("--stored-size", type=int, default=720)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--folder", type=Path, default=None, help="keep the dataset here")
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="tools-bench-"))
    started = time.perf_counter()
    config = build_download(
        folder, args.images, args.distinct, args.partition_rows, args.stored_size
    )
    print(
        f"dataset: {args.images} stored JPEGs (longer side {args.stored_size}) in {folder}, "
        f"built in {time.perf_counter() - started:.0f} s"
    )
    runs: dict[str, list[float]] = {
        k: [] for k in ("bare_resize", "resize", "bare_verify", "verify")
    }
    for index in range(args.rounds):
        for name, action in (
            ("bare_resize", lambda: bare_resize(config, 224)),
            ("resize", tool_run(config, "resize", index)),
            ("bare_verify", lambda: bare_verification(config)),
            ("verify", tool_run(config, "image_verification", index)),
        ):
            wall, cpu, count = timed(action)
            assert count == args.images, (name, count)
            runs[name].append(args.images / cpu)
            print(
                f"round {index + 1} {name:<12} {args.images / cpu:8.1f} img/s per core "
                f"({cpu:.1f} s CPU, {wall:.1f} s wall)"
            )
    best = {name: max(rates) for name, rates in runs.items()}
    figures = {
        "images": args.images,
        "stored_size": args.stored_size,
        "new_resize_size": 224,
        **{f"{name}_img_s": round(rate, 1) for name, rate in best.items()},
        "resize_ratio": round(best["resize"] / best["bare_resize"], 3),
        "verify_ratio": round(best["verify"] / best["bare_verify"], 3),
    }
    print(
        f"resize:             {best['resize']:.1f} img/s vs bare {best['bare_resize']:.1f} "
        f"= {figures['resize_ratio']:.2f}x (one core)"
    )
    print(
        f"image_verification: {best['verify']:.1f} img/s vs bare {best['bare_verify']:.1f} "
        f"= {figures['verify_ratio']:.2f}x (one core)"
    )
    print(json.dumps(figures))
    if args.folder is None:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
