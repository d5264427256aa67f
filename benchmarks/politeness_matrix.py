"""Politeness on fleets distdl was never tuned on: issue 7's randomized scenario matrix.

    python benchmarks/politeness_matrix.py --seeds 20 --ranks 3              # the full matrix
    python benchmarks/politeness_matrix.py --seeds 3 --urls 2000             # a quick look
    python benchmarks/politeness_matrix.py --seeds 20 --default-rate 10 --json m10.json

Per seed, a fleet is drawn from ``distdl.testing.fleet_matrix`` (token buckets with and
without Retry-After, rate-independent 5xx, overload, a 403 CDN, a resolver redirecting to a
CDN, a limit drop, slow hosts, many tiny hosts, a dead host; every model hidden from distdl)
and served from this process on 127.0.1.x. ``distdl run CONFIG --ranks N`` runs as a
subprocess; its wall clock (planning, profiling and start-up included) is the makespan.
Every other figure comes from the servers' own request records and the stored parquet
files; see benchmarks/README.md for the figures, the bound and the targets.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import psutil
import pyarrow.parquet as pq
from download_bench import write_bench_config
from matrix_figures import (
    MIN_JUDGED_FAULT_BOUND,
    FigureSummary,
    RunFigures,
    first_attempts,
    run_figures,
    summarize,
    targets_text,
    verdict,
)

from distdl.config import load_config
from distdl.layout import SUCCESSES_FILE, Layout
from distdl.testing.fleet_bounds import lower_bound
from distdl.testing.fleet_log import RequestRecord
from distdl.testing.fleet_matrix import MatrixParameters, Scenario, draw_scenario
from distdl.testing.fleet_thread import FleetThread
from distdl.testing.fleet_workload import write_url_list

# 10 s instead of distdl's 30 s: the slowest simulated answer takes ~3 s (a slow host), and
# the default would only stretch the black hole's give-up (one read timeout, in the bound).
READ_TIMEOUT = 10.0
IMAGE_SIZE = (320, 240)  # small: the matrix is about requests, not decoding
# A run may take this many times its bound (at least MIN_TIMEOUT s) before it is killed.
TIMEOUT_FACTOR, MIN_TIMEOUT = 4.0, 300.0


def max_retries_for(urls: int, worst_fault: float) -> int:
    """Retries so that, at the worst fault share the generator draws, the chance of any URL
    failing every try is under 1 % (the config cannot know which host is faulty), plus 2
    for the refusals and overload 503s that also spend tries."""
    tries = math.ceil(math.log(0.01 / max(urls, 1)) / math.log(worst_fault))
    return tries - 1 + 2


def write_config(folder: Path, args: argparse.Namespace, urls: int) -> Path:
    return write_bench_config(
        folder,
        args.batch_size,
        default_rate_limit=args.default_rate,
        rate_multiplier=1.0,
        max_retries=max_retries_for(urls, MatrixParameters().fault_share[1]),
        read_timeout=READ_TIMEOUT,
    )


def run_distdl(
    config: Path, ranks: int, timeout: float, log: Path, started: float
) -> tuple[float, int | None, bool]:
    """(wall clock, exit code, timed out) of ``distdl run``; killed past ``timeout``.
    ``started`` is ``time.monotonic()`` taken just before."""
    command = [sys.executable, "-m", "distdl", "run", str(config)]
    if ranks > 0:
        command += ["--ranks", str(ranks)]
    with log.open("w") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code: int | None = process.wait(timeout)
        except subprocess.TimeoutExpired:
            _stop(process)
            return time.monotonic() - started, process.returncode, True
    return time.monotonic() - started, code, False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop distdl and the ranks it started (its own session: nothing else is touched)."""
    try:
        family = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        for child in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.send_signal(sig)
        try:
            process.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def stored_source_ids(config: Path) -> list[str]:
    images = Layout.from_config(load_config(config)).images
    ids: list[str] = []
    for path in sorted(images.glob(f"server_name=*/partition_id=*/{SUCCESSES_FILE}")):
        ids.extend(pq.read_table(path, columns=["source_id"]).column(0).to_pylist())
    return ids


def write_arrivals(path: Path, records: list[RequestRecord], started: float) -> None:
    with path.open("w", newline="") as out:
        table = csv.writer(out)
        table.writerow(["host", "seconds", "status", "fault", "path"])
        for record in records:
            seconds = round(record.time - started, 4)
            table.writerow([record.host, seconds, record.status, record.fault, record.path])


def run_seed(seed: int, args: argparse.Namespace, root: Path) -> tuple[Scenario, RunFigures]:
    scenario = draw_scenario(seed, args.urls)
    folder = root / f"seed-{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    bound = lower_bound(scenario.hosts, first_attempts(scenario), READ_TIMEOUT)
    timeout = args.timeout or max(MIN_TIMEOUT, TIMEOUT_FACTOR * bound)
    runner = FleetThread(scenario.hosts, seed=seed)
    with runner as fleet:
        write_url_list(fleet, folder / "urls.csv", scenario.urls, sizes=(IMAGE_SIZE,), seed=seed)
        config = write_config(folder, args, scenario.total_urls)
        started = time.monotonic()
        outcome = run_distdl(config, args.ranks, timeout, folder / "distdl.log", started)
        records = runner.snapshot()
    if args.arrivals:
        write_arrivals(args.arrivals.with_suffix(f".seed{seed}.csv"), records, started)
    figures = run_figures(
        scenario, fleet, records, stored_source_ids(config), READ_TIMEOUT, outcome, started
    )
    if figures.failed:  # keep the evidence, and show why
        tail = (folder / "distdl.log").read_text(errors="replace").strip().splitlines()[-5:]
        print(f"seed {seed}: distdl failed; its log is {folder / 'distdl.log'}:")
        print("\n".join(f"  | {line}" for line in tail))
    elif not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return scenario, figures


# -- printing ------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_run(run: RunFigures, scenario: Scenario) -> None:
    state = "TIMED OUT" if run.timed_out else f"exit {run.exit_code}"
    print(
        f"\nseed {run.seed}: {run.urls} URLs on {len(run.hosts)} hosts; makespan "
        f"{run.makespan_s:.1f} s, bound {run.bound_s:.1f} s ({state})"
    )
    print(
        f"  {'host':<9} {'role':<8} {'urls':>5} {'limit':>6} {'bound':>6} {'req':>6} "
        f"{'refused':>8} {'503load':>7} {'5xx':>5} {'win/lim':>7} {'fin/bnd':>7} {'kept':>5} "
        f"{'first':>6} {'last':>6} {'stored':>11}"
    )
    specs = {spec.name: spec for spec in scenario.hosts}
    for host in run.hosts:
        finish = _num(host.finish_ratio)
        if host.finish_ratio is not None and host.bound_s < MIN_JUDGED_FAULT_BOUND:
            finish = f"({finish})"  # too small a host to be judged on it
        refused = (
            f"{100 * host.refused / host.requests:.1f}%"
            if host.requests >= 50
            else str(host.refused)
        )
        mode = specs[host.name].mode
        role = host.role if mode == "normal" else mode[:8]
        print(
            f"  {host.name:<9} {role:<8} {host.urls:>5} {_num(host.limit, 1):>6} "
            f"{_num(host.bound_s, 1):>6} {host.requests:>6} {refused:>8} {host.load_503:>7} "
            f"{host.fault_5xx:>5} {_num(host.window_ratio):>7} {finish:>7} "
            f"{_num(host.kept_ratio):>5} "
            f"{_num(host.first_s, 1):>6} {_num(host.last_s, 1):>6} "
            f"{host.stored:>5}/{host.fetchable:<5}"
        )
    last = run.last_host
    if last is not None:
        print(
            f"  first request {run.first_request_s:.1f} s after start; last host {last.name} "
            f"(bound {last.bound_s:.1f} s) ended at {_num(last.last_s, 1)} s"
        )
    print("  " + "; ".join(f"{k} {v:.4g}" for k, v in run.headline().items()))


def print_summary(runs: list[RunFigures], summaries: list[FigureSummary]) -> None:
    targets = targets_text()
    print(f"\n{len(runs)} seeds; worst seed and median of each figure:")
    print(f"  {'figure':<20} {'worst':>9} {'seed':>5} {'median':>9}  target")
    for s in summaries:
        mark = {True: "pass", False: "FAIL", None: ""}[s.passed]
        target = targets.get(s.figure, "(reported)")
        print(
            f"  {s.figure:<20} {s.worst:>9.4g} {s.worst_seed:>5} {s.median:>9.4g}  {target} {mark}"
        )
    failed = [run.seed for run in runs if run.failed]
    if failed:
        print(f"  runs that failed or timed out: seeds {failed}")
    print("PASS" if verdict(runs, summaries) else "FAIL")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--seed-offset", type=int, default=0, help="first seed")
    parser.add_argument("--urls", type=int, default=None, help="fix every fleet's size")
    parser.add_argument("--ranks", type=int, default=3, help="0: distdl's own default")
    parser.add_argument("--default-rate", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=None, help="seconds per run")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep each seed's output folder")
    parser.add_argument(
        "--arrivals",
        type=Path,
        default=None,
        help="write every request the fleet saw (host, s after start, status, fault) to "
        "FILE.seedN.csv: where one host's time went",
    )
    args = parser.parse_args()
    root = args.folder or Path(tempfile.mkdtemp(prefix="distdl-matrix-"))
    print(
        f"politeness matrix: seeds {args.seed_offset}..{args.seed_offset + args.seeds - 1}, "
        f"--ranks {args.ranks or 'distdl default'}, default_rate_limit {args.default_rate:g}, "
        f"URLs {args.urls or 'drawn'}; folder {root}"
    )
    runs = []
    for seed in range(args.seed_offset, args.seed_offset + args.seeds):
        scenario, run = run_seed(seed, args, root)
        print_run(run, scenario)
        runs.append(run)
    summaries = summarize(runs)
    print_summary(runs, summaries)
    if args.json:
        body = {
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "runs": [run.as_json() for run in runs],
            "summary": [asdict(s) for s in summaries],
            "passed": verdict(runs, summaries),
        }
        args.json.write_text(json.dumps(body, indent=1))


if __name__ == "__main__":
    main()
