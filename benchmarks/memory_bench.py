"""Memory per rank against a fast host with large bodies and a slow image pipeline.

    python benchmarks/memory_bench.py [--images 600] [--body-mib 5] [--rate 100]
                                      [--budget 512MiB] [--ranks 2]

One simulated host answers ``--rate`` req/s (hand-set budget) with ``--body-mib`` MiB bodies:
real 4000x3000 JPEGs padded to that size, which one decoder process (``cpu_per_worker: 1``)
turns into 720 px images at a fraction of that rate, so bodies arrive much faster than the
pipeline takes them: the case where an unbounded queue grows (issue 8: 100 req/s of 5 MiB
bodies against 20 img/s peaked at 780 MiB of queued bodies).

distdl runs as ``distdl run`` over mpiexec; every 0.1 s the RSS of each rank is sampled, a
rank counting its own process plus its image decoder processes. A rank's start RSS is its
last sample before the fleet saw the first image request; the check is
``peak <= start + memory_per_rank`` for each worker rank. Prints the figures and one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil
import yaml

from distdl.core.byte_size import format_byte_size, parse_byte_size
from distdl.testing.fleet import HostSpec
from distdl.testing.fleet_thread import FleetThread

MIB = 1024 * 1024
DECODER_MARK = "decoder_child"


class RankSampler(threading.Thread):
    """Timestamped RSS of every rank under a launcher, each with its decoder processes."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.samples: dict[int, list[tuple[float, int]]] = {}  # rank pid -> (time, bytes)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                processes = psutil.Process(self.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                return
            now = time.monotonic()
            totals: dict[int, int] = {}
            for process in processes:
                try:
                    cmdline = " ".join(process.cmdline())
                    rss = process.memory_info().rss
                    parent = process.ppid()
                except psutil.NoSuchProcess:
                    continue
                if DECODER_MARK in cmdline:
                    totals[parent] = totals.get(parent, 0) + rss
                elif "distdl" in cmdline and "python" in process.name():
                    totals[process.pid] = totals.get(process.pid, 0) + rss
            for rank, rss in totals.items():
                self.samples.setdefault(rank, []).append((now, rss))


def write_inputs(folder: Path, urls: list[str], budget: int, params: dict[str, object]) -> Path:
    with (folder / "urls.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uuid", "identifier", "source_id", "license", "source", "title"])
        for index, url in enumerate(urls):
            writer.writerow([uuid.uuid4(), url, f"s{index}", "CC0", "bench", f"image {index}"])
    config = folder / "config.yaml"
    body = {
        "path_to_input": "urls.csv",
        "path_to_output": "out",
        "downloader_parameters": {"memory_per_rank": budget, **params},
    }
    config.write_text(yaml.safe_dump(body))
    return config


def distdl_run(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "distdl", "run", str(config), *extra]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--body-mib", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=100.0, help="the host's req/s")
    parser.add_argument("--budget", default="512MiB", help="memory_per_rank")
    parser.add_argument("--ranks", type=int, default=2, help="rank 0 coordinates")
    parser.add_argument("--max-image-pixels", type=int, default=40_000_000)
    parser.add_argument("--folder", type=Path, default=None)
    args = parser.parse_args()
    budget = parse_byte_size(args.budget)
    body = int(args.body_mib * MIB)
    root = args.folder or Path(tempfile.mkdtemp(prefix="distdl-memory-"))
    host = HostSpec("fast", oversize_rate=1.0, oversize_bytes=body)
    params = {
        "batch_size": 100,
        "image_size": 720,
        "cpu_per_worker": 1,
        "max_image_bytes": body + MIB,
        "max_image_pixels": args.max_image_pixels,
        "max_in_flight_per_host": 16,
        "logger_level": "WARNING",
    }
    with FleetThread([host], seed=8) as fleet:
        urls = [fleet.image_url("fast", i, "jpeg", 4000, 3000) for i in range(args.images)]
        config = write_inputs(root, urls, budget, params)
        (root / "out").mkdir(parents=True, exist_ok=True)
        (root / "out" / "servers_profiles.csv").write_text(
            f"server_name,rate_limit\n{fleet.server_name('fast')},{args.rate}\n"
        )
        plan = subprocess.run(
            distdl_run(config, "--until", "profiled", "--ranks", "1"),
            capture_output=True,
            text=True,
        )
        if plan.returncode != 0:
            sys.exit(plan.stdout + plan.stderr)
        planned = len(fleet.requests)
        started = time.monotonic()
        process = subprocess.Popen(
            distdl_run(config, "--ranks", str(args.ranks)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        sampler = RankSampler(process.pid)
        sampler.start()
        output, _ = process.communicate()
        makespan = time.monotonic() - started
        sampler.stop.set()
        sampler.join()
        images = [r for r in fleet.requests[planned:] if r.path.startswith("/img")]
    if process.returncode != 0:
        sys.exit(output)
    first_request = min(r.time for r in images)
    # The fleet's record times and ours are both time.monotonic() of this process.
    ranks = []
    for pid, samples in sampler.samples.items():
        before = [rss for at, rss in samples if at <= first_request]
        start_rss = before[-1] if before else samples[0][1]
        peak_rss = max(rss for _, rss in samples)
        ranks.append((pid, start_rss, peak_rss))
    # Rank 0 coordinates and fetches nothing: the worker ranks are those with decoders,
    # i.e. those that grew; report every rank, check the largest growth.
    ranks.sort(key=lambda rank: rank[2] - rank[1], reverse=True)
    figures = {
        "images": args.images,
        "body_mib": args.body_mib,
        "host_rate": args.rate,
        "ranks": args.ranks,
        "memory_per_rank": budget,
        "makespan_s": round(makespan, 1),
        "pipeline_img_s": round(args.images / makespan, 1),
        "downloaded_mib": round(args.images * body / MIB),
        "per_rank": [
            {
                "start_mib": round(start / MIB, 1),
                "peak_mib": round(peak / MIB, 1),
                "growth_mib": round((peak - start) / MIB, 1),
                "growth_vs_budget": round((peak - start) / budget, 3),
            }
            for _, start, peak in ranks
        ],
    }
    worst = figures["per_rank"][0]
    print(
        f"{args.images} images of {args.body_mib} MiB from a {args.rate:g} req/s host in "
        f"{makespan:.1f} s ({figures['pipeline_img_s']} img/s through the pipeline)"
    )
    for rank in figures["per_rank"]:
        print(
            f"rank: start RSS {rank['start_mib']} MiB, peak {rank['peak_mib']} MiB, "
            f"growth {rank['growth_mib']} MiB = {rank['growth_vs_budget']:.2f}x "
            f"memory_per_rank ({format_byte_size(budget)})"
        )
    verdict = "within" if worst["growth_vs_budget"] <= 1 else "OVER"
    print(f"worst rank: peak <= start + budget? {verdict}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
