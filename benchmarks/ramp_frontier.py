"""How fast a ramp may grow while every 1-s window stays within 2× the host's limit, and
what that speed costs a small host's finish: the trade-off issue 7's targets sit on.

    python benchmarks/ramp_frontier.py [--seeds 400] [--body-seeds 300]

**Part 1, any sender (no controller).** A token bucket of limit L and a burst allowance of
B seconds serves everything until its burst is spent, so a sender learns nothing about L
before its first refusal. The sender here is the best any controller could be: it grows
its rate as ``e^(k t)`` from ``safe_start`` and stops ``delay`` seconds after the first
refusal (the answer's way back; 0 = told at once). Printed: the busiest 1-s window ÷ L,
the worst over limits of 10–80 req/s, for growth rates k (per second), and what a
ramp of that speed costs a host: seconds from 1 req/s to its limit, and a 5 %-fault host
of 25 req/s with 250 URLs (own bound 10.5 s) ramping so and then running at its limit:
its finish ÷ own bound at best; and the shortest own bound a host of 25 req/s needs to
finish within 1.25× of it after such a ramp.

**Part 2, this controller in fake time** (:mod:`controller_matrix`): its slow-start growth
factors swept (per window of at least 0.5 s); hosts of the matrix with a window over 2×
their limit, the worst window, the hosts still over 2× past the crossing (the 2 s either
side of their first complaint left out, ``fleet_bounds.CROSSING_MARGIN``), the matrix's long
hosts' finish ÷ bound, small fleets' body hosts' finish (bound ≥ 5 s) and their fault hosts'
finish alone (issue 7's "within 1.25× its own bound"), and the 429 share.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Sequence

from controller_matrix import Outcome, run_one

from distdl.testing.host_model import busiest_count

SAFE_START = 1.0  # req/s: core/throttle.py's safe_start
LIMITS = (10.0, 15.0, 20.0, 30.0, 50.0, 80.0)
GROWTH_RATES = (0.1, 0.15, 0.2, 0.3, 0.52, 0.8)  # per second; 0.52 is ×1.3 per 0.5 s
BURSTS = (1.0, 2.0)
DELAYS = (0.0, 0.4)
# (fast_growth, careful_growth, small_host_growth): the shipped values first.
GROWTHS = ((1.5, 1.3, 1.2), (1.3, 1.3, 1.2), (1.2, 1.2, 1.1), (1.1, 1.1, 1.05), (1.05,) * 3)
FAULT_KINDS = ("faults", "faults_ra")


def ideal_arrivals(k: float, limit: float, burst: float, delay: float) -> list[float]:
    """Request times of an exponential ramp that stops ``delay`` s after its first 429."""
    tokens, stamp, refused_at = max(burst * limit, 1.0), 0.0, math.inf
    times: list[float] = []
    index = 0
    while True:
        # The i-th request of a rate e^(k t) from SAFE_START: its integral reaches i.
        moment = math.log(1 + k * index / SAFE_START) / k
        if moment > refused_at + delay:
            return times
        tokens = min(max(burst * limit, 1.0), tokens + (moment - stamp) * limit)
        stamp = moment
        times.append(moment)
        if tokens >= 1:
            tokens -= 1
        elif math.isinf(refused_at):
            refused_at = moment
        index += 1


def print_ideal() -> None:
    print("Part 1: the best sender, an exponential ramp from 1 req/s (no controller)")
    head = "".join(f"  B={b:g} d={d:g}" for b in BURSTS for d in DELAYS)
    print(
        f"{'k /s':>6s} {'x per s':>7s}{head}  {'1->25 s':>7s}  {'fault host':>10s}"
        f"  {'1.25x from':>10s}"
    )
    for k in GROWTH_RATES:
        worst = [
            max(busiest_count(ideal_arrivals(k, limit, b, d)) / limit for limit in LIMITS)
            for b in BURSTS
            for d in DELAYS
        ]
        cells = "".join(f"{w:11.2f}" for w in worst)
        to_limit = math.log(25 / SAFE_START) / k
        # The ramp's cost in seconds at 25 req/s: a host finishes within 1.25x its own bound
        # only if that bound is at least four times it.
        lost = ramped_finish(k, 10**6, 25.0) - 10**6 / 25.0
        print(
            f"{k:6.2f} {math.exp(k):7.2f}{cells}  {to_limit:7.1f}  "
            f"{ramped_finish(k, 250 / 0.95, 25.0) / (250 / 0.95 / 25):9.2f}x  {4 * lost:9.1f}"
        )


def ramped_finish(k: float, requests: float, limit: float) -> float:
    """Seconds to send ``requests`` ramping as e^(k t) from SAFE_START up to ``limit``."""
    sent_on_ramp = (limit - SAFE_START) / k
    if requests <= sent_on_ramp:
        return math.log(1 + k * requests / SAFE_START) / k
    return math.log(limit / SAFE_START) / k + (requests - sent_on_ramp) / limit


def _quantile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[int(share * (len(ordered) - 1))] if ordered else math.nan


def print_controller(seeds: int, body_seeds: int) -> None:
    print()
    print("Part 2: the controller in fake time, slow-start growth swept")
    print(
        f"{'growth fast/careful/small':>26s} {'window>2':>9s} {'worst':>6s} {'past>2':>6s}"
        f"  {'matrix long med/p90/worst':>25s}  {'body med/p90':>12s}"
        f"  {'fault med/worst':>15s}  {'429 matrix/body':>15s}"
    )
    for fast, careful, small in GROWTHS:
        overrides = {
            "fast_growth": fast,
            "careful_growth": careful,
            "small_host_growth": small,
        }
        matrix = [run_one(seed, "matrix", overrides) for seed in range(seeds)]
        body = [run_one(seed, "body", overrides) for seed in range(body_seeds)]
        long = [o.ratio for o in matrix if o.bound >= 30]
        body_long = [o.ratio for o in body if o.bound >= 5]
        faults = [o.ratio for o in body if o.bound >= 5 and o.kind in FAULT_KINDS]
        print(
            f"{f'{fast:g}/{careful:g}/{small:g}':>26s} "
            f"{sum(o.window_ratio > 2 for o in matrix):4d}/{len(matrix):<4d} "
            f"{max(o.window_ratio for o in matrix):6.2f} "
            f"{sum(o.window_past_crossing > 2 for o in matrix):6d}  "
            f"{statistics.median(long):9.2f} / {_quantile(long, 0.9):4.2f} / {max(long):4.2f}"
            f"  {statistics.median(body_long):5.2f} / {_quantile(body_long, 0.9):4.2f}"
            f"  {statistics.median(faults):6.2f} / {max(faults):5.2f}"
            f"  {_share(matrix):6.2f}% / {_share(body):4.2f}%"
        )


def _share(outcomes: Sequence[Outcome]) -> float:
    return 100 * sum(o.refused for o in outcomes) / max(1, sum(o.requests for o in outcomes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=400, help="matrix hosts per setting")
    parser.add_argument("--body-seeds", type=int, default=300, help="body hosts per setting")
    parser.add_argument("--ideal-only", action="store_true", help="part 1 only")
    args = parser.parse_args()
    print_ideal()
    if not args.ideal_only:
        print_controller(args.seeds, args.body_seeds)


if __name__ == "__main__":
    main()
