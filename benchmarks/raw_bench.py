"""Throughput near the CPU limit (issue 13): distdl against a bare decode-resize-encode loop
on the same cores, from one unthrottled host on loopback serving real photos.

    python benchmarks/raw_bench.py [--images 5000] [--ranks N] [--batch-size 500]
        [--server nginx|fleet] [--img2dataset /tmp/i2d-venv/bin/img2dataset]
        [--no-profile] [--folder DIR] [--keep] [--param KEY=VALUE ...]

In one run, on the same corpus (raw_corpus.py: photos of two Debian wallpaper packages and
Pillow-made variants, 640-2560 px JPEGs at qualities 75-95, cached under
~/.cache/distdl-bench/raw):

1. **bare**: one process per core, images already in memory: MD5, pillow-simd decode with
   ``draft``, resize to ``image_size`` (224), JPEG encode (q95), MD5: image_bench.py's
   ``bare_process_with_md5``, the settings of distdl's pipeline. Run before and after
   distdl; the faster of the two counts (the machine is shared).
2. **distdl**: ``distdl run CONFIG [--ranks N]`` end to end (planning, profiling, start-up
   and the ranks' exit included) against one host with no rate limit, whose budget is set
   high by hand (profiles table and ``max_rate_limit``). The download stage alone is
   distdl's own figure (its ``this run: ... in X s`` line).
3. **profile**: the same run again under ``py-spy record --subprocesses`` (every rank and
   decoder process), each process's CPU time (psutil) split by what its samples were doing
   (raw_profile.py): decode, resize, encode, hashing, parquet, network, event loop, ...
4. **img2dataset**, when installed in its own virtualenv (see img2dataset_compare.py): same
   URL list, ``processes_count`` = cores, 224 px longest side, parquet output, MD5.

The host (raw_server.py) is nginx when it is installed (as a real image server: C, sendfile,
a few percent of a core), else the simulated fleet's host in this process (about 1 ms of
CPU a request, on the cores distdl is measured on). Its CPU time is reported. distdl's
bytecode is compiled first and kept (``PYTHONDONTWRITEBYTECODE`` is dropped for its runs),
as in an installed package. Prints the figures and one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yaml
from download_bench import write_bench_config
from image_bench import bare_process_with_md5
from raw_corpus import default_cache, load_variants, tagged, variants_folder
from raw_profile import CpuSampler, aggregate, render
from raw_server import FleetHost, NginxHost

import distdl
from distdl.config import load_config
from distdl.core.urls import classify_url
from distdl.image.pipeline import ImageOptions
from distdl.layout import Layout
from distdl.summary import dataset_totals

BUDGET = 100_000.0  # req/s, hand-set: far above what 2 cores can fetch and process
IMAGE_SIZE = 224
PROFILE_RATE = 50  # py-spy samples per second (at 100 py-spy took as much CPU as distdl)
_THIS_RUN = re.compile(r"this run: .*? in ([\d.]+) s")
OFFLINE_ENV = {"NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "disabled", "no_proxy": "*"}


class Host(Protocol):
    def url(self, image_id: int) -> str: ...

    def cpu_seconds(self) -> float: ...


# -- the bare loop ------------------------------------------------------------------------

_BARE: tuple[list[bytes], ImageOptions] | None = None  # set before the pool forks


def _bare_share(share: tuple[int, int, int]) -> tuple[str, float]:
    assert _BARE is not None
    variants, options = _BARE
    first, step, count = share
    digest = hashlib.md5()
    started = time.process_time()
    for image_id in range(first, count, step):
        data = tagged(variants[image_id % len(variants)], image_id)
        digest.update(bare_process_with_md5(data, options)[2].encode())
    return digest.hexdigest(), time.process_time() - started


def bare_run(
    variants: list[bytes], count: int, cores: int, options: ImageOptions
) -> tuple[float, float]:
    """Wall time and CPU time of ``cores`` forked processes processing ``count`` images."""
    global _BARE
    _BARE = (variants, options)
    with multiprocessing.get_context("fork").Pool(cores) as pool:
        pool.map(_bare_share, [(0, 1, 1)] * cores)  # the processes are up and warm
        started = time.perf_counter()
        shares = pool.map(_bare_share, [(k, cores, count) for k in range(cores)])
        return time.perf_counter() - started, sum(cpu for _, cpu in shares)


# -- distdl -----------------------------------------------------------------------------


@dataclass
class DistdlRun:
    end_to_end_s: float
    download_s: float
    stored: int
    cpu_s: float  # every process of the run (launcher, ranks, decoders)
    server_cpu_s: float


def write_urls(path: Path, host: Host, count: int) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["uuid", "identifier", "source_id"])
        for image_id in range(count):
            url = host.url(image_id)
            writer.writerow([uuid.uuid5(uuid.NAMESPACE_URL, url), url, f"raw/{image_id}"])


def prepare(
    folder: Path, host: Host, count: int, batch_size: int, params: dict[str, object]
) -> Path:
    """URL list, config and the hand-set profiles table of one distdl run."""
    folder.mkdir(parents=True)
    write_urls(folder / "urls.csv", host, count)
    config = write_bench_config(
        folder,
        batch_size,
        image_size=IMAGE_SIZE,
        max_rate_limit=BUDGET,
        logger_level="WARNING",
        **params,
    )
    (folder / "out").mkdir()
    server_name = classify_url(host.url(0)).server_name
    profiles = f"server_name,rate_limit\n{server_name},{BUDGET}\n"
    (folder / "out" / "servers_profiles.csv").write_text(profiles)
    return config


def distdl_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_distdl(
    config: Path,
    ranks: int | None,
    host: Host,
    prefix: Sequence[str] = (),
    sampler: CpuSampler | None = None,
) -> DistdlRun:
    command = [*prefix, sys.executable, "-m", "distdl", "run", str(config)]
    if ranks is not None:
        command += ["--ranks", str(ranks)]
    server_before = host.cpu_seconds()
    children_before = os.times()
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=distdl_env()
    )
    if sampler is not None:
        sampler.watch(process.pid)
    output, _ = process.communicate()
    elapsed = time.perf_counter() - started
    children = os.times()
    server_cpu = host.cpu_seconds() - server_before
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({process.returncode}):\n{output}")
    found = _THIS_RUN.search(output)
    if found is None:
        sys.exit(f"no 'this run:' line in distdl's output:\n{output}")
    stored = dataset_totals(Layout.from_config(load_config(config))).successes
    cpu = (children.children_user - children_before.children_user) + (
        children.children_system - children_before.children_system
    )
    return DistdlRun(elapsed, float(found.group(1)), stored, cpu, server_cpu)


# -- img2dataset --------------------------------------------------------------------------


def run_img2dataset(binary: Path, urls: Path, folder: Path, cores: int) -> tuple[float, int]:
    command = [
        str(binary),
        "--url_list", str(urls),
        "--input_format", "csv",
        "--url_col", "identifier",
        "--output_format", "parquet",
        "--output_folder", str(folder / "out"),
        "--processes_count", str(cores),
        "--image_size", str(IMAGE_SIZE),
        "--resize_mode", "keep_ratio_largest",
        "--encode_quality", "95",
        "--compute_hash", "md5",
    ]  # fmt: skip
    started = time.perf_counter()
    with (folder / "img2dataset.log").open("w") as log:
        done = subprocess.run(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **OFFLINE_ENV}
        )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"img2dataset failed ({done.returncode}); see {folder / 'img2dataset.log'}")
    stats = [json.loads(p.read_text()) for p in (folder / "out").glob("*_stats.json")]
    return elapsed, sum(int(s["successes"]) for s in stats)


# -- the run ----------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--ranks", type=int, default=None, help="default: distdl's own")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--variants", type=int, default=400, help="distinct photos made")
    default_server = "nginx" if shutil.which("nginx") else "fleet"
    parser.add_argument("--server", choices=("nginx", "fleet"), default=default_server)
    parser.add_argument("--img2dataset", type=Path, default=Path("/tmp/i2d-venv/bin/img2dataset"))
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy run")
    parser.add_argument(
        "--distdl-only",
        action="store_true",
        help="only the timed distdl run (for pairing two configs from outside, A B A B ...)",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a downloader_parameters value for distdl's runs (YAML), e.g. cpu_per_worker=2",
    )
    parser.add_argument("--folder", type=Path, default=None, help="default: a new /tmp folder")
    parser.add_argument("--keep", action="store_true", help="keep the output folders")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cores = os.cpu_count() or 1
    root = args.folder or Path(tempfile.mkdtemp(prefix="raw-bench-"))
    folder = variants_folder(default_cache(), args.variants)
    variants = load_variants(folder)
    options = ImageOptions(image_size=IMAGE_SIZE)
    params = {k: yaml.safe_load(v) for k, v in (p.split("=", 1) for p in args.param)}
    figures: dict[str, object] = {
        "images": args.images,
        "cores": cores,
        "ranks": args.ranks,
        "server": args.server,
        "params": params,
    }
    print(f"{args.images} images from {len(variants)} photo variants ({args.server}); {root}")
    package = Path(distdl.__file__).parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)

    if args.distdl_only:
        args.no_profile, args.img2dataset = True, Path("/nonexistent")
        bare, bare_cpu = 0.0, 0.0
    else:
        bare, bare_cpu = bare_run(variants, args.images, cores, options)
    host: FleetHost | NginxHost = (
        NginxHost(folder) if args.server == "nginx" else FleetHost(variants)
    )
    with host:
        config = prepare(root / "distdl", host, args.images, args.batch_size, params)
        timed = run_distdl(config, args.ranks, host)
        profiled, breakdown = None, None
        if not args.no_profile:
            raw = root / "profile.txt"
            spy = [
                shutil.which("py-spy") or "py-spy", "record", "--subprocesses", "--nonblocking",
                "--rate", str(PROFILE_RATE), "--format", "raw", "--output", str(raw), "--",
            ]  # fmt: skip
            config = prepare(root / "profiled", host, args.images, args.batch_size, params)
            sampler = CpuSampler()
            profiled = run_distdl(config, args.ranks, host, spy, sampler)
            breakdown = aggregate(raw, sampler.cpu_by_pid())
        i2d = None
        if args.img2dataset.exists():
            i2d_folder = root / "img2dataset"
            i2d_folder.mkdir()
            urls = root / "distdl" / "urls.csv"
            i2d = run_img2dataset(args.img2dataset, urls, i2d_folder, cores)
    if not args.distdl_only:
        bare_again, bare_cpu_again = bare_run(variants, args.images, cores, options)
        bare, bare_cpu = min(bare, bare_again), min(bare_cpu, bare_cpu_again)
    report(args, figures, bare, bare_cpu, timed, i2d, profiled, breakdown)
    if not args.keep and args.folder is None:
        shutil.rmtree(root, ignore_errors=True)


def report(
    args: argparse.Namespace,
    figures: dict[str, object],
    bare: float,
    bare_cpu: float,
    timed: DistdlRun,
    i2d: tuple[float, int] | None,
    profiled: DistdlRun | None,
    breakdown: object,
) -> None:
    cores = int(str(figures["cores"]))
    if timed.stored != args.images:
        sys.exit(f"distdl stored {timed.stored} of {args.images} images")
    e2e_rate = args.images / timed.end_to_end_s
    dl_rate = args.images / timed.download_s
    bare_rate = args.images / bare if bare else 0.0  # 0: --distdl-only, no bare loop

    def versus(rate: float) -> str:
        return f"  {rate / bare_rate:.2f}x bare" if bare_rate else ""

    ms = 1000 / args.images
    if bare_rate:
        print(
            f"bare loop ({cores} processes):   {bare:6.1f} s  {bare_rate:7.1f} img/s  "
            f"CPU {bare_cpu * ms:.2f} ms/img"
        )
        figures.update(
            bare_s=round(bare, 2),
            bare_cpu_ms_per_image=round(bare_cpu * ms, 3),
            end_to_end_ratio=round(e2e_rate / bare_rate, 3),
            download_ratio=round(dl_rate / bare_rate, 3),
        )
    print(
        f"distdl end to end:           {timed.end_to_end_s:6.1f} s  {e2e_rate:7.1f} img/s"
        f"{versus(e2e_rate)}  CPU {timed.cpu_s * ms:.2f} ms/img "
        f"(+ server {timed.server_cpu_s * ms:.2f})"
    )
    print(
        f"distdl download stage:       {timed.download_s:6.1f} s  {dl_rate:7.1f} img/s"
        f"{versus(dl_rate)}"
    )
    figures.update(
        distdl_end_to_end_s=round(timed.end_to_end_s, 2),
        distdl_download_s=round(timed.download_s, 2),
        distdl_cpu_ms_per_image=round(timed.cpu_s * ms, 3),
        server_cpu_ms_per_image=round(timed.server_cpu_s * ms, 3),
    )
    if i2d is not None:
        seconds, fetched = i2d
        rate = fetched / seconds
        print(
            f"img2dataset ({cores} processes): {seconds:6.1f} s  {rate:7.1f} img/s  "
            f"{rate / bare_rate:.2f}x bare ({fetched} images); distdl end to end "
            f"{e2e_rate / rate:.2f}x img2dataset"
        )
        figures.update(img2dataset_s=round(seconds, 2), img2dataset_fetched=fetched)
        figures["distdl_vs_img2dataset"] = round(e2e_rate / rate, 3)
    elif not args.distdl_only:
        print(f"img2dataset: not found at {args.img2dataset} (see img2dataset_compare.py)")
    if profiled is not None and breakdown is not None:
        print(
            f"profiled run (py-spy {PROFILE_RATE} Hz): end to end {profiled.end_to_end_s:.1f} s,"
            f" download stage {profiled.download_s:.1f} s"
        )
        print(render(breakdown, args.images, profiled.server_cpu_s))  # type: ignore[arg-type]
        figures["profile_cpu_ms_per_image"] = {
            k: round(v * ms, 3)
            for k, v in breakdown.seconds.most_common()  # type: ignore[attr-defined]
        }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
