"""Rank 0 at GBIF scale: the real coordinator, scheduler and host controllers in simulated time.

Virtual workers take the coordinator's leases and report each lease's answers a window at a
time, drawn from its host's hidden behaviour at the rates in force (see
``distdl/testing/scale_model.py``); the fleet is GBIF-like (``distdl/testing/scale_fleet.py``).
Prints the predicted makespan ÷ the bound (max over hosts of URLs ÷ limit), the messages per
second rank 0 must handle and its CPU per message, measured in process time while the whole
fleet talks at the real cadence, so the share of one core rank 0 needs; and rank 0's peak
memory (its object graph). ``--sweep`` adds how these grow with the URLs and the ranks.

    nice -n 19 python benchmarks/scale_sim.py --urls 200000000 --hosts 545 --ranks 400 --sweep

The last line reads ``makespan/bound X.XX  rank0-core-share Y.YY  rank0-peak-MB Z``.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from distdl.testing.fleet_bounds import host_bound
from distdl.testing.scale_fleet import ScaleFleet, gbif_fleet
from distdl.testing.scale_model import SimResult, SimSettings, simulate_fleet

SWEEP_URLS = (10_000_000, 50_000_000, 200_000_000)
SWEEP_RANKS = (50, 100, 200, 400)
PROBE = Path(__file__).with_name("scale_mpi_probe.py")
PROBE_MESSAGES = 20_000
PROBE_RUNS = 3
# Seconds of MPI per message received and sent (pickling aside), once measured.
MPI_COSTS = {"receive": 0.0, "send": 0.0}


def measure_mpi() -> str:
    """Measure what MPI itself costs rank 0 per message, with two real ranks."""
    mpiexec = shutil.which("mpiexec") or str(Path(sys.executable).with_name("mpiexec"))
    command = [mpiexec, "-n", "2", sys.executable, str(PROBE), str(PROBE_MESSAGES)]
    runs: list[dict[str, float]] = []
    try:
        for _ in range(PROBE_RUNS):
            out = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        return f"MPI per-message cost not measured ({exc}); not included"
    # The least of a few runs: on a shared machine the others only add other processes' noise.
    figures = {key: min(run[key] for run in runs) for key in runs[0]}
    MPI_COSTS["receive"] = figures["receive_us"] / 1e6
    MPI_COSTS["send"] = figures["send_us"] / 1e6
    return (
        f"MPI itself (MpiChannel over mpiexec -n 2, pickling aside, least of {PROBE_RUNS} runs): "
        f"{figures['receive_us']:.1f} us per message received, "
        f"{figures['send_us']:.1f} us per message sent; included below"
    )


def run(
    urls: int, hosts: int, ranks: int, seed: int, **windows: float
) -> tuple[ScaleFleet, SimResult, float]:
    fleet = gbif_fleet(urls, hosts, seed)
    started = time.monotonic()
    result = simulate_fleet(fleet, SimSettings(ranks=ranks, seed=seed, **windows))  # type: ignore[arg-type]
    result.cost.mpi_receive = MPI_COSTS["receive"]
    result.cost.mpi_send = MPI_COSTS["send"]
    return fleet, result, time.monotonic() - started


def _duration(seconds: float) -> str:
    days, rest = divmod(seconds, 86400)
    return f"{days:.0f} d {rest / 3600:.1f} h" if days else f"{seconds / 3600:.1f} h"


def describe(fleet: ScaleFleet, result: SimResult, wall: float, ranks: int) -> None:
    roles = Counter(fleet.roles.values())
    biggest = sorted(fleet.urls.values(), reverse=True)[:4]
    critical = fleet.critical_host()
    print(
        f"fleet: {fleet.total_urls:,} URLs on {len(fleet.hosts)} hosts "
        f"({', '.join(f'{n} {role}' for role, n in roles.most_common())}); "
        f"biggest {', '.join(f'{n / 1e6:.1f}M' for n in biggest)}; "
        f"{len(result.completed):,} partitions; {ranks - 1} worker ranks"
    )
    spec = fleet.hosts[critical]
    print(
        f"bound {_duration(result.bound)}: {critical} ({fleet.roles[critical]}), "
        f"{fleet.urls[critical]:,} URLs at {spec.rate_limit or spec.overload_knee} req/s"
    )
    print(
        f"predicted makespan {_duration(result.makespan)} = {result.ratio:.2f} x bound; "
        f"simulated in {wall:.0f} s"
    )
    late = sorted(result.finish_by_host.items(), key=lambda item: -item[1])[:3]
    print(
        "last hosts to finish: "
        + "; ".join(
            f"{name} ({fleet.roles[name]}) at {finish / max(result.bound, 1e-9):.2f} x bound, "
            f"its own bound {host_bound(fleet.hosts[name], fleet.urls[name]) / result.bound:.2f}"
            for name, finish in late
        )
    )
    cost = result.cost
    for sample in cost.samples:
        print(
            f"rank 0 at {_duration(sample.at)} ({sample.at / result.bound:.3f} x bound): "
            f"{sample.open_leases} leases "
            f"open, {sample.messages_per_second:,.0f} msg/s in "
            f"({sample.bytes_per_message_in:.0f} B pickled each), "
            f"{sample.messages_out_per_second:,.0f} msg/s out "
            f"({sample.bytes_per_second_out / 1e3:.0f} kB/s), "
            f"{sample.cpu_per_message * 1e6:.1f} us CPU per message in the loop: "
            f"{cost.core_share(sample):.3f} of a core"
        )
    print(
        f"rank 0 memory: {cost.peak_bytes / 1e6:.1f} MB of objects "
        f"({cost.peak_bytes / len(result.completed):,.0f} B per partition); "
        f"one save of the learned rates {cost.save_cpu * 1e3:.0f} ms CPU (every minute); "
        f"this process's max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB"
    )


def sweep_row(urls: int, hosts: int, ranks: int, seed: int) -> str:
    _, result, wall = run(urls, hosts, ranks, seed)
    worst = result.cost.worst
    assert worst is not None
    return (
        f"| {urls / 1e6:>5.0f}M | {ranks:>5d} | {len(result.completed):>10,} "
        f"| {result.ratio:>14.2f} "
        f"| {worst.messages_per_second:>7,.0f} | {worst.cpu_per_message * 1e6:>10.1f} "
        f"| {result.cost.core_share(worst):>10.3f} | {result.cost.peak_bytes / 1e6:>7.1f} "
        f"| {wall:>6.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=200_000_000)
    parser.add_argument("--hosts", type=int, default=545)
    parser.add_argument("--ranks", type=int, default=400, help="world size (rank 0 included)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sweep", action="store_true", help="also the growth table")
    parser.add_argument(
        "--max-window",
        type=float,
        default=SimSettings.max_window,
        help="longest report window, s (0.25 with --windows-per-lease 100000: the real cadence)",
    )
    parser.add_argument("--min-window", type=float, default=SimSettings.min_window)
    parser.add_argument("--windows-per-lease", type=int, default=SimSettings.windows_per_lease)
    args = parser.parse_args()
    windows = {
        "max_window": args.max_window,
        "min_window": min(args.min_window, args.max_window),
        "windows_per_lease": args.windows_per_lease,
    }
    logging.getLogger("distdl").setLevel(logging.ERROR)  # dead hosts are expected here
    print(measure_mpi(), flush=True)
    if args.sweep:
        print(
            "| URLs | ranks | partitions | makespan/bound | msg/s | us per msg | core share "
            "| peak MB | sim s |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for urls in SWEEP_URLS:
            if urls != args.urls:
                print(sweep_row(urls, args.hosts, args.ranks, args.seed), flush=True)
        for ranks in SWEEP_RANKS:
            if ranks != args.ranks:
                print(sweep_row(args.urls, args.hosts, ranks, args.seed), flush=True)
    fleet, result, wall = run(args.urls, args.hosts, args.ranks, args.seed, **windows)
    describe(fleet, result, wall, args.ranks)
    worst = result.cost.worst
    share = result.cost.core_share(worst) if worst is not None else float("nan")
    print(
        f"makespan/bound {result.ratio:.2f}  rank0-core-share {share:.2f}  "
        f"rank0-peak-MB {result.cost.peak_bytes / 1e6:.0f}"
    )


if __name__ == "__main__":
    main()
