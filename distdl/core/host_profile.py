"""Judging a host from its profiling probes: pure, so it is tested without sockets.

A host is *unreachable* when no probe got any HTTP answer (or, with no probe allowed by
robots.txt, when robots.txt got none), *erroring* when every probe got a
non-2xx answer, *slow* when its median latency exceeds ``SLOW_LATENCY``, else *healthy*.
Erroring and slow hosts start at half the default rate: they are already struggling.
Every start rate and ceiling is capped by what robots.txt asks (Crawl-delay/Request-rate).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from distdl.core.robots import RobotsRules

HostStatus = Literal["healthy", "slow", "erroring", "unreachable"]
SLOW_LATENCY = 2.0  # seconds: an image server this slow is overloaded or far away
STRUGGLING_SHARE = 0.5  # start rate of slow and erroring hosts, as a share of the default


@dataclass(frozen=True)
class ProbeOutcome:
    error_code: int  # 0 = a 2xx answer; HTTP status; or a negative distdl code
    latency: float


@dataclass(frozen=True)
class HostVerdict:
    status: HostStatus
    start_rate: float
    max_rate: float
    crawl_delay: float | None
    latency_ms: float | None


def judge_host(
    rules: RobotsRules,
    probes: Sequence[ProbeOutcome],
    user_agent: str,
    *,
    default_rate: float,
    max_rate: float,
) -> HostVerdict:
    answered = [p for p in probes if p.error_code >= 0]
    latency = statistics.median(p.latency for p in answered) if answered else None
    status: HostStatus
    if not answered and (probes or rules.status is None):
        status = "unreachable"
    elif not answered:
        status = "healthy"  # robots.txt answered and forbids every sample: nothing to probe
    elif all(p.error_code != 0 for p in answered):
        status = "erroring"
    elif latency is not None and latency > SLOW_LATENCY:
        status = "slow"
    else:
        status = "healthy"
    start = default_rate if status == "healthy" else default_rate * STRUGGLING_SHARE
    cap = rules.rate_cap(user_agent)
    ceiling = max_rate if cap is None else min(max_rate, cap)
    return HostVerdict(
        status=status,
        start_rate=min(start, ceiling),
        max_rate=ceiling,
        crawl_delay=rules.crawl_delay(user_agent),
        latency_ms=None if latency is None else round(latency * 1000, 1),
    )
