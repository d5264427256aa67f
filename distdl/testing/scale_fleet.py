"""A GBIF-sized fleet for the coordinator simulation, and what its hosts answer per window.

:func:`gbif_fleet` draws ~545 hosts whose sizes fall like GBIF's publishers (Zipf: a few
hosts with tens of millions of URLs, a long tail of small museum servers), each a
:class:`~distdl.testing.fleet_spec.HostSpec` with a hidden limit and a behaviour: plain
token buckets (half say Retry-After), faults whatever the rate (flaky back ends), overload
past a knee, 403-refusing CDNs, limits that drop for a while, slow hosts (1-3 s per answer)
and dead ones. Its bound is :mod:`distdl.testing.fleet_bounds`' (the politeness matrix's).

:func:`window_answers` is the same behaviour seen a window at a time instead of a request at
a time: given the rate the host receives and one lease's rate over ``seconds``, the counts
of OK/429/5xx and the latency that lease's worker would report, drawn around their expected
values. Requests are not simulated one by one, so 200 million URLs take minutes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

from distdl.core.throttle import Feedback
from distdl.testing.fleet_bounds import give_up_time, host_bound, limit_segments
from distdl.testing.fleet_spec import AS_429, HostSpec
from distdl.testing.fleet_workload import zipf_rows

# Requests one lease keeps waiting for an answer (the workers' max_in_flight_per_host):
# a slow host cannot serve one lease faster than this many per latency.
MAX_IN_FLIGHT = 16
# The share of a lease's rate its worker actually uses (the gates' pacing margin).
PACING = 0.97
READ_TIMEOUT = 30.0  # config read_timeout: what a black hole costs before it is given up


@dataclass(frozen=True)
class GbifParameters:
    """The ranges hosts are drawn from, and why."""

    zipf_exponent: float = 1.3  # 200M URLs on 545 hosts: the first ~57M, the fourth ~10M
    min_urls: int = 20
    big_hosts: int = 3
    big_limit: tuple[float, float] = (40.0, 100.0)  # CDNs; max_rate_limit is 100 by default
    body_limit: tuple[float, float] = (2.0, 60.0)  # nginx limit_req settings seen in the wild
    tiny_urls: int = 2_000  # hosts below this are small museum servers…
    tiny_limit: tuple[float, float] = (1.0, 5.0)  # …with low limits
    retry_after_share: float = 0.5
    # Shares of the hosts (below the biggest) given each behaviour; the rest are buckets.
    role_shares: tuple[tuple[str, float], ...] = (
        ("fault", 0.06),
        ("overload", 0.03),
        ("cdn403", 0.03),
        ("drop", 0.03),
        ("slow", 0.04),
        ("dead", 0.03),
    )
    fault_share: tuple[float, float] = (0.01, 0.10)
    overload_slope: tuple[float, float] = (0.5, 2.0)
    slow_latency: tuple[float, float] = (1.0, 3.0)
    latency: tuple[float, float] = (0.02, 0.3)
    not_found_share: float = 0.01


@dataclass(frozen=True)
class ScaleFleet:
    hosts: dict[str, HostSpec]
    urls: dict[str, int]
    roles: dict[str, str]

    @property
    def total_urls(self) -> int:
        return sum(self.urls.values())

    def bound(self) -> float:
        """Max over hosts of URLs ÷ limit (fault retries and drops included; a dead host
        costs one read timeout), as ``benchmarks/politeness_matrix.py`` defines it."""
        bounds = [host_bound(spec, self.urls[name]) for name, spec in self.hosts.items()]
        dead = [give_up_time(spec.mode, READ_TIMEOUT) for spec in self.hosts.values()]
        return max([0.0, *bounds, *dead])

    def critical_host(self) -> str:
        return max(self.hosts, key=lambda name: host_bound(self.hosts[name], self.urls[name]))


def gbif_fleet(
    total_urls: int, n_hosts: int, seed: int = 0, params: GbifParameters | None = None
) -> ScaleFleet:
    p = params or GbifParameters()
    rng = random.Random(f"scale-fleet:{seed}")
    names = [f"host-{index:03d}" for index in range(n_hosts)]
    urls = zipf_rows(names, total_urls, exponent=p.zipf_exponent, min_rows=p.min_urls)
    roles = dict.fromkeys(names, "bucket")
    spare = names[p.big_hosts :]
    for role, share in p.role_shares:
        for name in rng.sample(spare, min(len(spare), round(share * n_hosts))):
            roles[name] = role
            spare.remove(name)
    hosts = {name: _host(rng, p, name, roles[name], urls[name], i) for i, name in enumerate(names)}
    return ScaleFleet(hosts, urls, roles)


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _host(
    rng: random.Random, p: GbifParameters, name: str, role: str, urls: int, rank: int
) -> HostSpec:
    if role == "dead":
        return HostSpec(name, mode=rng.choice(("black_hole", "refused")))
    limits = p.big_limit if rank < p.big_hosts else p.body_limit
    limits = p.tiny_limit if urls < p.tiny_urls else limits
    latency = rng.uniform(*p.latency)
    says_when = rng.random() < p.retry_after_share
    spec = HostSpec(
        name,
        rate_limit=round(_log_uniform(rng, *limits), 2),
        retry_after=float(rng.randint(1, 5)) if says_when else None,
        latency=latency,
        not_found_rate=p.not_found_share,
    )
    if role == "fault":
        return replace(spec, error_rate_5xx=round(rng.uniform(*p.fault_share), 3))
    if role == "overload":
        knee = spec.rate_limit
        slope = round(rng.uniform(*p.overload_slope), 2)
        return replace(spec, rate_limit=None, retry_after=None, overload_knee=knee,
                       overload_slope=slope)  # fmt: skip
    if role == "cdn403":
        return replace(spec, limited_status=403, retry_after=None)
    if role == "drop":
        assert spec.rate_limit is not None
        bound = urls / spec.rate_limit
        start = rng.uniform(0.1, 0.4) * bound
        return replace(spec, limit_drop_start=start, limit_drop_end=start + 0.3 * bound,
                       limit_drop_factor=round(rng.uniform(0.3, 0.7), 2))  # fmt: skip
    if role == "slow":
        slow = rng.uniform(*p.slow_latency)
        limit = min(spec.rate_limit or 1.0, (MAX_IN_FLIGHT - 1) / slow)
        return replace(spec, latency=slow, rate_limit=round(limit, 2))
    return spec


def limit_at(spec: HostSpec, since_first: float) -> float | None:
    """The host's limit ``since_first`` seconds after its first request (None: no bucket)."""
    for start, end, rate in limit_segments(spec):
        if start <= since_first < end and spec.rate_limit is not None:
            return rate
    return None


def sending_rate(spec: HostSpec, lease_rate: float) -> float:
    """What one lease sends: its rate (paced), unless its answers are too slow to keep up."""
    return min(PACING * lease_rate, MAX_IN_FLIGHT / max(spec.latency, 1e-3))


def window_answers(
    spec: HostSpec,
    host_rate: float,
    lease_rate: float,
    seconds: float,
    since_first: float,
    rng: random.Random,
) -> Feedback:
    """What one lease sending ``lease_rate`` for ``seconds`` hears while the host receives
    ``host_rate`` in all (its bucket and its back end see the sum)."""
    sent = _rounded(lease_rate * seconds, rng)
    if not sent:
        return Feedback()
    limit = limit_at(spec, since_first)
    admitted_share = 1.0 if limit is None or host_rate <= limit else limit / host_rate
    admitted = _binomial(sent, admitted_share, rng)
    refused = sent - admitted
    latency = spec.latency
    shed = 0
    if spec.overload_knee is not None and host_rate > spec.overload_knee:
        over = host_rate / spec.overload_knee - 1.0
        latency *= 1.0 + 4.0 * over
        shed = _binomial(admitted, min(0.9, spec.overload_slope * over), rng)
    faults = _binomial(admitted - shed, spec.error_rate_5xx, rng)
    missing = _binomial(admitted - shed - faults, spec.not_found_rate, rng)
    forbidden = spec.limited_status == 403
    fault_after = spec.retry_after if spec.error_retry_after == AS_429 else None
    if isinstance(spec.error_retry_after, float | int):
        fault_after = float(spec.error_retry_after)
    return Feedback(
        ok=admitted - shed - faults - missing,
        rate_limited=0 if forbidden else refused,
        forbidden=refused if forbidden else 0,
        server_errors=shed + faults,
        other_errors=missing,
        latency_sum=latency * sent,
        latency_count=sent,
        retry_after=spec.retry_after if refused and not forbidden else None,
        server_retry_after=fault_after if shed + faults else None,
    )


def _rounded(expected: float, rng: random.Random) -> int:
    whole = math.floor(expected)
    return whole + (rng.random() < expected - whole)


def _binomial(n: int, p: float, rng: random.Random) -> int:
    if n <= 0 or p <= 0:
        return 0
    if p >= 1:
        return n
    if n < 40:
        return sum(rng.random() < p for _ in range(n))
    draw = round(rng.gauss(n * p, math.sqrt(n * p * (1 - p))))
    return min(n, max(0, draw))


def scaled_answers(seen: Feedback, share: float, ok_and_missing: int) -> Feedback:
    """The part of a window's answers that came before its lease's last URL settled."""
    missing = min(ok_and_missing, round(seen.other_errors * share))
    count = max(1, round(seen.latency_count * share))
    return Feedback(
        ok=ok_and_missing - missing,
        rate_limited=round(seen.rate_limited * share),
        forbidden=round(seen.forbidden * share),
        server_errors=round(seen.server_errors * share),
        other_errors=missing,
        latency_sum=seen.latency_sum / max(seen.latency_count, 1) * count,
        latency_count=count,
        retry_after=seen.retry_after,
        server_retry_after=seen.server_retry_after,
    )
