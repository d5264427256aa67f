"""How long the rest of a run takes, from each host's rows left and request budget (pure).

A host cannot be downloaded faster than its budget allows: ``rows_left × requests_per_row
÷ rate`` seconds, whatever the rank count. The ranks bound the run as a whole: they hold
``slots`` leases at once (workers × ``leases_per_worker``), each serving one host, so the
run lasts at least the sum of the hosts' times spread over the slots. The makespan is the
larger of the two bounds.

Before a host's limit is learned its budget is a starting guess and it may end far faster
(up to its ceiling: ``max_rate_limit``, a hand-set budget, robots.txt). So the estimate is a
range: ``low`` with every host at its best rate, ``high`` at its current budget. The range
tightens as rates are learned (a learned host's best rate is its budget). The hosts whose
time at the current budget comes closest to the makespan are the critical path: raising
their ceiling (``max_rate_limit``, or their row in the profiles table) is what would
shorten the run, when they are at it.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Any

# What holds a host's rate, and what a user could change about it.
LEARNING = "learning"
HINTS = {
    LEARNING: "still learning its limit",
    "max_rate_limit": "at max_rate_limit: raising it would help",
    "profile": "at its hand-set rate_limit in the profiles table",
    "robots": "at the rate its robots.txt asks for",
    "server": "at the limit the server enforces (429s)",
    "unreachable": "unreachable",
}


@dataclass(frozen=True)
class HostLoad:
    server_name: str
    rows_left: int
    rate: float  # the budget now, req/s
    best_rate: float  # the most it may get (its ceiling), req/s; == rate once learned
    limited_by: str = LEARNING  # what holds its rate where it is (one of HINTS)


@dataclass(frozen=True)
class CriticalHost:
    server_name: str
    rows_left: int
    rate: float
    best_rate: float
    seconds_low: float
    seconds_high: float
    limited_by: str = LEARNING


@dataclass(frozen=True)
class Eta:
    low: float  # seconds, every host at its best rate
    high: float  # seconds, every host at its budget now
    critical: tuple[CriticalHost, ...] = ()

    @property
    def settled(self) -> bool:
        return self.high <= self.low * 1.05


def _host_seconds(rows: int, rate: float, requests_per_row: float) -> float:
    if rows <= 0:
        return 0.0
    return rows * requests_per_row / rate if rate > 0 else math.inf


def _makespan(times: list[float], slots: int) -> float:
    if not times:
        return 0.0
    return max(max(times), sum(times) / max(1, slots))


def estimate(
    hosts: list[HostLoad],
    slots: int,
    *,
    requests_per_row: float = 1.0,
    top: int = 5,
    rows_per_s: float | None = None,
) -> Eta:
    """The makespan range of ``hosts`` on ``slots`` concurrent leases, and the ``top`` hosts
    of the critical path (longest at their budget now, first).

    ``rows_per_s``: the pace a running download keeps (over the last minute). The ranks
    themselves may be what holds it (decoding, disk), which no budget shows: the high end
    is then at least the rows left at that pace."""
    loaded = [h for h in hosts if h.rows_left > 0]
    highs = [_host_seconds(h.rows_left, h.rate, requests_per_row) for h in loaded]
    lows = [_host_seconds(h.rows_left, max(h.rate, h.best_rate), requests_per_row) for h in loaded]
    ranked = heapq.nlargest(top, zip(loaded, lows, highs, strict=True), key=lambda item: item[2])
    critical = tuple(
        CriticalHost(
            host.server_name, host.rows_left, host.rate, host.best_rate, low, high, host.limited_by
        )
        for host, low, high in ranked
    )
    high = _makespan(highs, slots)
    if rows_per_s:
        high = max(high, sum(h.rows_left for h in loaded) / rows_per_s)
    return Eta(_makespan(lows, slots), high, critical)


def _finite(seconds: float) -> float | None:
    return None if math.isinf(seconds) else round(seconds, 1)


def _seconds(value: object) -> float:
    return math.inf if value is None else float(value)  # type: ignore[arg-type]


def eta_to_json(eta: Eta) -> dict[str, object]:
    """The estimate as JSON values (an infinite time is null)."""
    return {
        "low_s": _finite(eta.low),
        "high_s": _finite(eta.high),
        "critical": [
            {
                "server_name": host.server_name,
                "rows_left": host.rows_left,
                "rate": round(host.rate, 3),
                "best_rate": round(host.best_rate, 3),
                "seconds_low": _finite(host.seconds_low),
                "seconds_high": _finite(host.seconds_high),
                "limited_by": host.limited_by,
            }
            for host in eta.critical
        ],
    }


def eta_from_json(data: dict[str, Any]) -> Eta:
    critical = tuple(
        CriticalHost(
            host["server_name"],
            int(host["rows_left"]),
            float(host["rate"]),
            float(host["best_rate"]),
            _seconds(host["seconds_low"]),
            _seconds(host["seconds_high"]),
            str(host.get("limited_by", LEARNING)),
        )
        for host in data.get("critical", [])
    )
    return Eta(_seconds(data.get("low_s")), _seconds(data.get("high_s")), critical)


def format_duration(seconds: float) -> str:
    """``23 d 4 h``, ``5 h 12 min``, ``7 min 3 s``, ``42 s``: two units at most."""
    if math.isinf(seconds) or math.isnan(seconds):
        return "never"
    whole = max(0, round(seconds))
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def format_range(eta: Eta) -> str:
    if eta.settled:
        return format_duration(eta.high)
    return f"{format_duration(eta.low)} to {format_duration(eta.high)}"


def render_critical(eta: Eta) -> list[str]:
    """One line per critical host: what it needs, and which change would help."""
    lines = []
    for host in eta.critical:
        lines.append(
            f"  {host.server_name:<32} {host.rows_left:>9} rows at {host.rate:.3g} req/s"
            f" (up to {host.best_rate:.3g}): {format_duration(host.seconds_high)}"
            f"  [{HINTS.get(host.limited_by, host.limited_by)}]"
        )
    return lines
