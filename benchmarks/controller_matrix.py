"""The rate controller alone, against many randomized hosts in fake time (seconds to run).

Each seed draws one host model from the behaviours of ``distdl.testing.host_model`` (token
buckets of 1–100 req/s with 0–2 s of burst, with and without Retry-After; 403-refusing
CDNs; faults whatever the rate; overload past a knee; limits that drop and recover; slow
hosts; arrival jitter), a number of URLs, and a ``default_rate_limit``, and runs the
controller against it with rank 0's reporting delay. Per run it prints the time to finish
÷ the host's own bound (URLs ÷ limit, a fault share adding its retries), the share and
count of 429s, the most requests in any 1-s window ÷ the limit, and the worst and median
over all runs. "long, at reach" divides the long hosts' times by their bound at the rate a
steady sender can get served (``reach``: see REACH_*), which is below the limit for a bucket
of about a token under arrival jitter, and below the knee of a slow overloaded host: what
remains above 1 is the controller's own cost.
The live fleet benchmark (``politeness_matrix.py``) measures the same over real sockets and
MPI ranks; this one isolates the controller's rules.

    python benchmarks/controller_matrix.py --seeds 200
    python benchmarks/controller_matrix.py --family tiny --seeds 300 --long 25
    python benchmarks/controller_matrix.py --family retry-after --seeds 150
    python benchmarks/controller_matrix.py --family body --seeds 300 --long 5

``--family`` draws from one family only: ``tiny`` as the live matrix's tiny hosts (20–50
URLs, limits 1–5 req/s log-uniform; on 2k fleets those with a bound of 25 s or more set
the makespan), ``retry-after`` buckets that answer every refusal with Retry-After 1–5 s
(half of them also failing 1–10 % whatever the rate), whose bounds are 30–120 s. "kept" is
a host's rate over the middle half of its requests ÷ its limit (hosts with ≥ 300
requests), as the live matrix's ``fault_kept_rate``. ``body`` draws the Zipf body of a small
live fleet (80–800 URLs at 5–100 req/s, so a ramp is much of a host's run), with its limit
drops landing as the live fleet lands them (``late_drop``: 10 s plus a share of the host's
bound after its first request, the bound integrating the drop).
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from matrix_figures import MIN_KEPT_REQUESTS, middle_rate

from distdl.core.throttle import HostThrottle, ThrottleSettings
from distdl.testing.fleet_bounds import limit_segments, serve_time
from distdl.testing.fleet_spec import HostSpec
from distdl.testing.host_model import HostModel, simulate

REPORT = 0.25  # the workers' feedback interval
CONTROL_DELAY = 0.05  # rank 0 to the workers' gates
MAX_IN_FLIGHT = 16  # the workers' default max_in_flight_per_host
# Hosts whose bound is at least this long: the ramp from the safe start is paid off.
LONG = 30.0
# "Reach": the most a steady sender gets served by the host with at most this share of its
# requests refused or failed for load (issue 7's budget), over this long (or this many
# answers), sending at shares of the limit (or knee) from REACH_TOP down by REACH_STEP. A
# bucket of about one token refuses any two requests closer than 1/limit, so arrival jitter
# alone keeps it well under its limit; the model's overload counts the requests of the last
# second, so a knee of 1.3 req/s fails most requests sent at 1.1.
REACH_REFUSED = 0.01
REACH_SECONDS = 60.0
REACH_ANSWERS = 200
REACH_TOP = 1.03
REACH_STEP = 0.03


@dataclass
class Outcome:
    kind: str
    limit: float
    urls: int
    default: float
    bound: float  # seconds
    ratio: float  # time to finish / bound
    refused: int
    requests: int
    window_ratio: float
    window_past_crossing: float  # the same, the 2 s around the first complaint left out
    kept: float | None  # rate over the middle half of the requests ÷ limit
    reach: float  # the share of the limit a steady sender can be served (see REACH_*)


@dataclass(frozen=True)
class Drawn:
    """One host of a family: its model, its URLs and the run's default_rate_limit."""

    kind: str
    host: HostModel
    urls: int
    default: float
    own_bound: float | None = None  # when the family knows it better than bound() does


def draw(rng: random.Random) -> Drawn:
    kinds = [
        "bucket",
        "bucket_ra",
        "cdn403",
        "faults",
        "faults_ra",
        "overload",
        "drop",
        "slow",
        "tiny",
    ]
    kind = rng.choice(kinds)
    limit = round(10 ** rng.uniform(0, 2), 2)  # 1–100 req/s, log-uniform
    urls = int(10 ** rng.uniform(2.5, 4))
    options: dict[str, Any] = {
        "limit": limit,
        "burst": rng.uniform(0, 2),
        "latency": rng.uniform(0.02, 0.3),
        "seed": rng.randrange(10**9),
        "jitter": rng.choice([0.0, 0.005, 0.01]),
    }
    _add_behaviour(kind, options, rng)
    if kind == "overload":
        options.update(limit=None, knee=limit, overload_slope=rng.uniform(0.5, 3))
    elif kind == "slow":
        options["latency"] = rng.uniform(1, 3)
    elif kind == "tiny":
        options["limit"] = round(rng.uniform(1, 4), 2)
        if rng.random() < 0.5:  # as many small servers do, one in two says when to return
            options["retry_after"] = float(rng.randint(1, 5))
        urls = rng.randint(5, 50)
    host = HostModel(**options)
    if kind == "drop":
        host.change_limit(at=20.0, limit=limit / 2)
        host.change_limit(at=60.0, limit=limit)
    default = rng.choice([3.0, 10.0])
    return Drawn(kind, host, urls, default)


def _add_behaviour(kind: str, options: dict[str, Any], rng: random.Random) -> None:
    """What the bucket kinds both draws share add to a host: Retry-After, 403s, faults."""
    if kind == "bucket_ra":
        options["retry_after"] = float(rng.randint(1, 5))
    elif kind == "cdn403":
        options["refusal_status"] = 403
    elif kind in ("faults", "faults_ra"):
        options["fault_share"] = rng.uniform(0.01, 0.10)
        if kind == "faults_ra":
            options["fault_retry_after"] = float(rng.randint(1, 5))


def draw_tiny(rng: random.Random) -> Drawn:
    """A tiny host as the live matrix draws them (distdl.testing.fleet_matrix)."""
    limit = 10 ** rng.uniform(0, 0.7)  # 1–5 req/s, log-uniform
    urls = rng.randint(20, 50)
    burst = rng.uniform(0, 2)
    retry_after = float(rng.randint(1, 5)) if rng.random() < 0.5 else None
    default = rng.choice([3.0, 10.0])
    host = HostModel(
        limit,
        burst=burst,
        seed=rng.randrange(10**9),
        jitter=rng.choice([0.0, 0.005, 0.01]),
        retry_after=retry_after,
        latency=rng.uniform(0.02, 0.3),
    )
    return Drawn("tiny", host, urls, default)


def draw_retry_after(rng: random.Random) -> Drawn:
    """A bucket that pauses its clients with Retry-After on every refusal."""
    limit = 10 ** rng.uniform(0.7, 1.8)  # 5–63 req/s
    own_bound = rng.uniform(30, 120)
    fault = rng.uniform(0.01, 0.1) if rng.random() < 0.5 else 0.0
    host = HostModel(
        limit,
        burst=rng.uniform(0, 2),
        seed=rng.randrange(10**9),
        jitter=0.005,
        retry_after=float(rng.randint(1, 5)),
        fault_share=fault,
        fault_retry_after=float(rng.randint(1, 5)) if fault and rng.random() < 0.5 else None,
        latency=rng.uniform(0.02, 0.3),
    )
    kind = "ra_faults" if fault else "ra_bucket"
    return Drawn(kind, host, int(own_bound * limit * (1 - fault)), rng.choice([3.0, 10.0]))


def draw_body(rng: random.Random) -> Drawn:
    """A host of a small live fleet's Zipf body (distdl.testing.fleet_matrix): a few hundred
    URLs at 5–100 req/s, done within seconds at its limit, so its ramp is most of its run;
    a drop lands as the live fleet lands it, 10 s plus a share of its bound in."""
    kind = rng.choice(["bucket", "bucket_ra", "faults", "faults_ra", "late_drop", "cdn403"])
    limit = 10 ** rng.uniform(0.7, 2)
    urls = int(10 ** rng.uniform(1.9, 2.9))  # 80–800
    options: dict[str, Any] = {
        "limit": limit,
        "burst": rng.uniform(0, 2),
        "latency": rng.uniform(0.02, 0.3),
        "seed": rng.randrange(10**9),
        "jitter": 0.005,
    }
    _add_behaviour(kind, options, rng)
    host = HostModel(**options)
    own_bound = None
    if kind == "late_drop":
        start = 10.0 + rng.uniform(0.1, 0.4) * urls / limit
        length = max(2.0, rng.uniform(0.2, 0.4) * urls / limit)
        drop = HostSpec(
            kind,
            rate_limit=limit,
            limit_drop_start=start,
            limit_drop_end=start + length,
            limit_drop_factor=rng.uniform(0.3, 0.7),
        )
        for since, _, rate in limit_segments(drop)[1:]:
            host.change_limit(at=since, limit=rate)
        own_bound = serve_time(drop, urls)  # the live matrix's bound of the same drop
    return Drawn(kind, host, urls, rng.choice([3.0, 10.0]), own_bound)


FAMILIES = {
    "matrix": draw,
    "tiny": draw_tiny,
    "retry-after": draw_retry_after,
    "body": draw_body,
}


def bound(kind: str, host: HostModel, limit: float, urls: int) -> float:
    if kind == "drop":
        # 20 s at the limit, 40 s at half, then the limit again.
        if urls <= 20 * limit:
            return urls / limit
        if urls <= 40 * limit:
            return 20 + (urls - 20 * limit) / (limit / 2)
        return 60 + (urls - 40 * limit) / limit
    return urls / (1 - host.fault_share) / usable_rate(host, limit)


def usable_rate(host: HostModel, limit: float) -> float:
    """The most a lease can send: a lease keeps at most MAX_IN_FLIGHT requests waiting, so
    a slow host cannot go faster than its latency allows, whatever its limit."""
    return min(limit, MAX_IN_FLIGHT / host.latency) if host.latency else limit


class _Steady:
    """A sender at one fixed rate that never listens: the reach's yardstick."""

    def __init__(self, rate: float) -> None:
        self.rate = rate

    def observe(self, feedback: object, now: float) -> float:
        return self.rate

    def paused_until(self) -> float:
        return -math.inf


def reach(host: HostModel) -> float:
    """The share of ``host``'s limit (or knee) a steady sender with its arrival jitter gets
    served with at most REACH_REFUSED of its requests refused or failed for load (1 for a
    host with neither)."""
    base = host.limit or host.knee
    if base is None:
        return 1.0
    # Long enough for a slow host to answer a few hundred requests.
    seconds = max(REACH_SECONDS, REACH_ANSWERS / base)
    banked = max(1.0, host.burst * host.limit) if host.limit else 0.0  # served at once
    share = REACH_TOP
    while share > REACH_STEP:
        steady = HostModel(
            host.limit,
            burst=host.burst,
            latency=host.latency,
            seed=host.seed,
            jitter=host.jitter,
            knee=host.knee,
            overload_slope=host.overload_slope,
        )
        stats = simulate(_Steady(share * base), steady, duration=seconds)
        if stats.refused + stats.overloaded <= REACH_REFUSED * stats.requests:
            return min(1.0, max(0.0, stats.served - banked) / seconds / base)
        share -= REACH_STEP
    return REACH_STEP


def run_one(
    seed: int, family: str = "matrix", overrides: Mapping[str, Any] | None = None
) -> Outcome:
    """One drawn host under the controller; ``overrides`` replace ThrottleSettings'
    defaults (a sweep's knob; ``benchmarks/ramp_frontier.py``)."""
    rng = random.Random(seed)
    drawn = FAMILIES[family](rng)
    kind, host, urls, default = drawn.kind, drawn.host, drawn.urls, drawn.default
    limit = host.limit or host.knee or 1.0
    settings = ThrottleSettings(**{**(overrides or {}), "start_rate": default})
    throttle = HostThrottle(settings, now=0.0)
    throttle.set_remaining(urls)  # rank 0 knows each host's URLs from the plan
    ideal = drawn.own_bound or bound(kind, host, limit, urls)
    # Only a bucket that binds counts: a slow host's in-flight cap may bind before it.
    reachable = min(1.0, reach(host) * limit / usable_rate(host, limit))
    stats = simulate(
        throttle,
        host,
        duration=10 * ideal + 60,
        report_interval=REPORT,
        urls=urls,
        control_delay=CONTROL_DELAY,
    )
    finish = stats.time_to_finish or float("inf")
    return Outcome(
        kind,
        limit,
        urls,
        default,
        ideal,
        finish / ideal,
        stats.refused,
        stats.requests,
        stats.max_in_window() / limit,
        stats.max_in_window(past_crossing=True) / limit,
        _kept(stats.arrivals, limit),
        reachable,
    )


def _kept(arrivals: list[float], limit: float) -> float | None:
    rate = middle_rate(arrivals, MIN_KEPT_REQUESTS)
    return None if rate is None else rate / limit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--family", choices=sorted(FAMILIES), default="matrix")
    parser.add_argument(
        "--long", type=float, default=LONG, help="'long bound' columns: hosts of this bound, s"
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    outcomes = [run_one(seed, args.family) for seed in range(args.seeds)]
    if args.verbose:
        for seed, o in enumerate(outcomes):
            print(
                f"{seed:4d} {o.kind:10s} limit {o.limit:6.2f} urls {o.urls:5d} default "
                f"{o.default:4.0f}  finish/bound {o.ratio:5.2f}  429 {o.refused:4d}/"
                f"{o.requests:5d}  window/limit {o.window_ratio:4.2f}  reach {o.reach:4.2f}"
            )
    print(
        f"{'kind':10s} {'runs':>4s} {'finish/bound':>13s} {'long bound':>17s} {'429 share':>9s}"
        f" {'hosts > allowance':>17s} {'window/limit':>13s} {'kept':>17s}"
        f" {'long, at reach':>14s}"
    )
    under = "med  worst   med   p90 worst" + " " * 44 + "worst  worst   med <0.8    med worst"
    print(f"{'':17s}{under}")
    kinds = sorted({o.kind for o in outcomes})
    for kind in [*kinds, "ALL"]:
        print(_row([o for o in outcomes if kind in (o.kind, "ALL")], kind, args.long))


def _row(group: list[Outcome], kind: str, long_bound: float) -> str:
    """One kind's figures; "long bound" counts only hosts whose bound is >= long_bound s."""
    share = sum(o.refused for o in group) / max(1, sum(o.requests for o in group))
    # The allowance: 10% of a host's requests when it got >= 50, else 2 answers.
    over = sum(
        1
        for o in group
        if (o.requests >= 50 and o.refused > 0.1 * o.requests)
        or (o.requests < 50 and o.refused > 2)
    )
    long = sorted(o.ratio for o in group if o.bound >= long_bound) or [math.nan]
    # Finish ÷ the bound at the host's reach: what is left is the controller's own cost.
    at_reach = sorted(o.ratio * o.reach for o in group if o.bound >= long_bound) or [math.nan]
    ratios = [o.ratio for o in group]
    kept = sorted(o.kept for o in group if o.kept is not None)
    kept_text = (
        f"{kept[0]:6.2f} {statistics.median(kept):5.2f} {sum(k < 0.8 for k in kept):4d}"
        if kept
        else f"{'-':>6s} {'-':>5s} {'-':>4s}"
    )
    return (
        f"{kind:10s} {len(group):4d} {statistics.median(ratios):6.2f} {max(ratios):6.2f} "
        f"{statistics.median(long):5.2f} {long[int(0.9 * (len(long) - 1))]:5.2f} "
        f"{long[-1]:5.2f} {100 * share:8.2f}% {over:9d} of {len(group):<4d} "
        f"{max(o.window_ratio for o in group):13.2f} {kept_text} "
        f"{statistics.median(at_reach):6.2f} {at_reach[-1]:5.2f}"
    )


if __name__ == "__main__":
    main()
