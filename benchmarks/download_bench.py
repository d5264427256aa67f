"""Download benchmark: makespan vs the lower bound, 429 share, and peak RSS per rank.

    # budgets = the hosts' true limits
    python benchmarks/download_bench.py --hosts 12 --images 3000 --ranks 3
    # limits hidden from distdl
    python benchmarks/download_bench.py --hidden --hosts 24 --images 6000 --ranks 3
    # peak RSS per rank with big partitions
    python benchmarks/download_bench.py --memory --images 20000 --batch-size 10000 --size 1024 768

The fleet runs in this process (a background thread); distdl runs as `distdl run` over
mpiexec, exactly as a user starts it. Planning is done first and not timed: the makespan is
the download stage alone, compared with max over hosts of (URLs ÷ true limit).
Prints figures and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import psutil
import yaml

from distdl.testing.fleet import HostSpec
from distdl.testing.fleet_thread import FleetThread
from distdl.testing.fleet_workload import make_zipf_fleet, write_url_list, zipf_rows


def bench_fleet(
    hosts: int,
    *,
    seed: int,
    limits: tuple[float, float],
    hidden: bool,
    flaky: bool,
    black_holes: int = 0,
    refused: int = 0,
) -> list[HostSpec]:
    """The simulated fleet of every download benchmark (img2dataset_compare.py uses it too)."""
    template = HostSpec("template", latency=0.02, latency_jitter=0.01)
    if hidden:
        template = replace(template, retry_after=1.0)
    specs = make_zipf_fleet(
        hosts,
        seed=seed,
        limits=limits,
        template=template,
        black_holes=black_holes,
        refused=refused,
    )
    if flaky:
        specs = [
            replace(h, error_rate_5xx=0.03, retry_after=1.0) if i % 5 == 2 else h
            for i, h in enumerate(specs)
        ]
    return specs


class RssSampler(threading.Thread):
    """Peak RSS of every python rank under a process, sampled every 0.2 s."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak: dict[int, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            try:
                children = psutil.Process(self.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                return
            for child in children:
                try:
                    if "python" in child.name():
                        rss = child.memory_info().rss
                        self.peak[child.pid] = max(self.peak.get(child.pid, 0), rss)
                except psutil.NoSuchProcess:
                    continue


def _distdl(config: Path, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "distdl", "run", str(config), *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def write_bench_config(folder: Path, batch_size: int = 100, **overrides: object) -> Path:
    """The distdl config every download benchmark uses (URL list at folder/urls.csv);
    ``overrides`` replace or add ``downloader_parameters`` keys."""
    params: dict[str, object] = {
        "batch_size": batch_size,
        "image_size": 224,
        "default_rate_limit": 3,
        "max_rate_limit": 100,
        "logger_level": "INFO",
        **overrides,
    }
    config = folder / "config.yaml"
    body = {"path_to_input": "urls.csv", "path_to_output": "out", "downloader_parameters": params}
    config.write_text(yaml.safe_dump(body))
    return config


def run_distdl(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "distdl", "run", str(config), *extra]
    return subprocess.run(command, capture_output=True, text=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=12)
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--ranks", type=int, default=3)
    parser.add_argument("--min-limit", type=float, default=2.0)
    parser.add_argument("--max-limit", type=float, default=40.0)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--hidden", action="store_true", help="do not tell distdl the limits")
    parser.add_argument("--flaky", action="store_true", help="every 5th host answers some 503s")
    parser.add_argument("--black-holes", type=int, default=0)
    parser.add_argument("--refused", type=int, default=0)
    parser.add_argument("--memory", action="store_true", help="peak-RSS run: 2 fast hosts")
    parser.add_argument("--size", type=int, nargs=2, default=(320, 240), metavar=("W", "H"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--folder", type=Path, default=None)
    args = parser.parse_args()
    if args.memory:
        args.hosts, args.min_limit, args.max_limit = 2, 150.0, 200.0
    root = args.folder or Path(tempfile.mkdtemp(prefix="distdl-bench-"))
    specs = bench_fleet(
        args.hosts,
        seed=args.seed,
        limits=(args.min_limit, args.max_limit),
        hidden=args.hidden,
        flaky=args.flaky,
        black_holes=args.black_holes,
        refused=args.refused,
    )
    with FleetThread(specs, seed=args.seed) as fleet:
        rows = zipf_rows(fleet.host_names, args.images, exponent=0.9)
        write_url_list(fleet, root / "urls.csv", rows, sizes=(tuple(args.size),), seed=args.seed)
        config = write_bench_config(root, args.batch_size)
        if not args.hidden:
            profile = ["server_name,rate_limit"] + [
                f"{fleet.server_name(s.name)},{s.rate_limit}" for s in specs
            ]
            (root / "out").mkdir(parents=True, exist_ok=True)
            (root / "out" / "servers_profiles.csv").write_text("\n".join(profile) + "\n")
        plan = run_distdl(config, "--until", "profiled", "--ranks", "1")
        if plan.returncode != 0:
            sys.exit(plan.stdout + plan.stderr)
        planned_requests = len(fleet.requests)
        started = time.monotonic()
        process = _distdl(config, "--ranks", str(args.ranks))
        sampler = RssSampler(process.pid)
        sampler.start()
        output, _ = process.communicate()
        makespan = time.monotonic() - started
        sampler.stop.set()
        records = fleet.requests[planned_requests:]
    if process.returncode != 0:
        sys.exit(output)
    fetchable = {s.name for s in specs if s.mode == "normal"}
    bound = max(rows[s.name] / s.rate_limit for s in specs if s.name in fetchable and s.rate_limit)
    throttled = sum(1 for r in records if r.status == 429)
    figures = {
        "mode": "memory" if args.memory else ("hidden" if args.hidden else "known"),
        "hosts": args.hosts,
        "images": args.images,
        "ranks": args.ranks,
        "makespan_s": round(makespan, 2),
        "lower_bound_s": round(bound, 2),
        "makespan_ratio": round(makespan / bound, 3),
        "requests": len(records),
        "answered_429": throttled,
        "share_429": round(throttled / max(len(records), 1), 4),
        "peak_rss_mb_per_rank": sorted(round(v / 2**20) for v in sampler.peak.values()),
    }
    print(output.strip().splitlines()[-1] if output.strip() else "")
    summary = [line for line in output.splitlines() if line.startswith(("this run", "dataset"))]
    print("\n".join(summary))
    print(
        f"makespan {makespan:.1f} s vs lower bound {bound:.1f} s: {makespan / bound:.3f}x; "
        f"{throttled}/{len(records)} requests answered 429 ({100 * figures['share_429']:.2f}%); "
        f"peak RSS per rank (MB): {figures['peak_rss_mb_per_rank']}"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
