"""img2dataset (its defaults) vs distdl on the same simulated fleet, in one run.

    # img2dataset lives in its own virtualenv (its dependencies would clash with pillow-simd)
    python3 -m venv /tmp/i2d-venv && /tmp/i2d-venv/bin/pip install img2dataset
    python benchmarks/img2dataset_compare.py --img2dataset /tmp/i2d-venv/bin/img2dataset \
        [--images 6000] [--ranks 3] [--folder /tmp/cmp]

The fleet is the one of ``download_bench.py --hidden --flaky --hosts 24 --max-limit 60
--black-holes 1 --refused 1``: 24 Zipf-shaped hosts (limits 2..60 req/s, hidden from both
tools, 429 with Retry-After: 1), one black hole, one refused host, every 5th host answering
3 % 5xx. Each tool meets its own fleet (same specs, same seed: fresh token buckets and fresh
fault counters) and its own copy of the URL list (same rows; only the ports differ).

img2dataset runs with its defaults (1 process, 256 threads, no retries, 10 s timeout,
256 px border resize) except what running here needs: csv input with ``identifier`` as the
URL column, ``files`` output into a fresh folder, and the environment variables that keep
its imports off the internet (albumentations checks PyPI for updates on import; wandb).
distdl runs as download_bench.py does in ``--hidden`` mode: planning and profiling untimed
(``--until profiled --ranks 1``), then ``distdl run CONFIG --ranks N`` timed. img2dataset
has no separate planning stage, so all of its run is timed (start-up included for both).

Prints one table and one JSON line. The lower bound is max over fetchable hosts of
(URLs ÷ hidden limit); fetchable images are the rows on normal-mode hosts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from download_bench import bench_fleet, run_distdl, write_bench_config

from distdl.config import load_config
from distdl.layout import Layout
from distdl.summary import dataset_totals
from distdl.testing.fleet import HostSpec, RequestRecord
from distdl.testing.fleet_thread import FleetThread
from distdl.testing.fleet_workload import write_url_list, zipf_rows

HOSTS = 24
IMAGE_SIZE = (320, 240)
# Keeps img2dataset's imports from phoning home; neither changes what it downloads.
OFFLINE_ENV = {"NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "disabled", "no_proxy": "*"}


@dataclass
class ToolResult:
    tool: str
    makespan_s: float
    requests: int
    answered_429: int
    fetched: int

    @property
    def share_429(self) -> float:
        return self.answered_429 / max(self.requests, 1)


def fleet_specs(seed: int) -> list[HostSpec]:
    """download_bench.py's `--hidden --flaky --black-holes 1 --refused 1` fleet."""
    return bench_fleet(
        HOSTS, seed=seed, limits=(2.0, 60.0), hidden=True, flaky=True, black_holes=1, refused=1
    )


def _tally(tool: str, seconds: float, records: Sequence[RequestRecord], fetched: int) -> ToolResult:
    throttled = sum(1 for r in records if r.status == 429)
    return ToolResult(tool, seconds, len(records), throttled, fetched)


def _img2dataset_successes(output: Path) -> int:
    stats = [json.loads(p.read_text()) for p in output.glob("*_stats.json")]
    if not stats:
        sys.exit(f"img2dataset wrote no *_stats.json under {output}")
    return sum(int(s["successes"]) for s in stats)


def run_img2dataset(specs: list[HostSpec], args: argparse.Namespace, root: Path) -> ToolResult:
    folder = root / "img2dataset"
    with FleetThread(specs, seed=args.seed) as fleet:
        rows = zipf_rows(fleet.host_names, args.images, exponent=0.9)
        write_url_list(fleet, folder / "urls.csv", rows, sizes=(IMAGE_SIZE,), seed=args.seed)
        command = [
            str(args.img2dataset),
            "--url_list", str(folder / "urls.csv"),
            "--input_format", "csv",
            "--url_col", "identifier",
            "--output_format", "files",
            "--output_folder", str(folder / "out"),
        ]  # fmt: skip
        before = len(fleet.requests)
        started = time.monotonic()
        with (folder / "img2dataset.log").open("w") as log:
            done = subprocess.run(
                command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **OFFLINE_ENV}
            )
        makespan = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"img2dataset failed ({done.returncode}); see {folder / 'img2dataset.log'}")
    fetched = _img2dataset_successes(folder / "out")
    return _tally("img2dataset", makespan, fleet.requests[before:], fetched)


def _distdl(config: Path, *extra: str) -> None:
    done = run_distdl(config, *extra)
    if done.returncode != 0:
        sys.exit(f"distdl run {config} {' '.join(extra)} failed:\n{done.stdout}{done.stderr}")


def run_distdl_bench(specs: list[HostSpec], args: argparse.Namespace, root: Path) -> ToolResult:
    folder = root / "distdl"
    with FleetThread(specs, seed=args.seed) as fleet:
        rows = zipf_rows(fleet.host_names, args.images, exponent=0.9)
        write_url_list(fleet, folder / "urls.csv", rows, sizes=(IMAGE_SIZE,), seed=args.seed)
        config = write_bench_config(folder)
        _distdl(config, "--until", "profiled", "--ranks", "1")
        before = len(fleet.requests)
        started = time.monotonic()
        _distdl(config, "--ranks", str(args.ranks))
        makespan = time.monotonic() - started
    fetched = dataset_totals(Layout.from_config(load_config(config))).successes
    return _tally("distdl", makespan, fleet.requests[before:], fetched)


def lower_bound(specs: list[HostSpec], rows: dict[str, int]) -> float:
    return max(rows[s.name] / s.rate_limit for s in specs if s.mode == "normal" and s.rate_limit)


def print_report(results: list[ToolResult], bound: float, fetchable: int, images: int) -> None:
    header = f"{'tool':<12} {'makespan s':>10} {'bound s':>8} {'ratio':>6} "
    header += f"{'requests':>9} {'429 share':>9} {'fetched/fetchable':>20}"
    print(header)
    for r in results:
        fetched = f"{r.fetched}/{fetchable} ({100 * r.fetched / fetchable:.1f}%)"
        print(
            f"{r.tool:<12} {r.makespan_s:>10.1f} {bound:>8.1f} {r.makespan_s / bound:>6.2f} "
            f"{r.requests:>9} {100 * r.share_429:>8.2f}% {fetched:>20}"
        )
    print("(the bound assumes every fetchable image is fetched: a tool that gives up can beat it)")
    figures = {
        "hosts": HOSTS,
        "images": images,
        "fetchable": fetchable,
        "lower_bound_s": round(bound, 2),
        "tools": {
            r.tool: {
                **asdict(r),
                "makespan_s": round(r.makespan_s, 2),
                "makespan_ratio": round(r.makespan_s / bound, 3),
                "share_429": round(r.share_429, 4),
            }
            for r in results
        },
    }
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--img2dataset", type=Path, default=Path("/tmp/i2d-venv/bin/img2dataset"))
    parser.add_argument("--images", type=int, default=6000)
    parser.add_argument("--ranks", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--folder", type=Path, default=None, help="default: a new /tmp folder")
    args = parser.parse_args()
    if not args.img2dataset.exists():
        sys.exit(f"{args.img2dataset} not found; install img2dataset in its own venv (see above)")
    if args.folder is not None and args.folder.exists() and any(args.folder.iterdir()):
        sys.exit(f"{args.folder} is not empty: each tool needs a fresh output folder")
    root = args.folder or Path(tempfile.mkdtemp(prefix="i2d-compare-"))
    specs = fleet_specs(args.seed)
    rows = zipf_rows([s.name for s in specs], args.images, exponent=0.9)
    fetchable = sum(rows[s.name] for s in specs if s.mode == "normal")
    print(f"output under {root}", flush=True)
    results = [run_img2dataset(specs, args, root), run_distdl_bench(specs, args, root)]
    print_report(results, lower_bound(specs, rows), fetchable, args.images)


if __name__ == "__main__":
    main()
