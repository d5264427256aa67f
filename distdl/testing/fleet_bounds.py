"""What a perfectly polite client could do on a simulated fleet: lower bounds and limits.

* A host's **limit** is its bucket's rate (as it changes over time for a limit drop), or the
  knee of an overloaded host: the fastest rate that draws no complaint.
* A host's **bound** is the time to send its requests at its limit, from its first request:
  ``requests ÷ limit``, where a rate-independent fault share ``p`` adds its retries
  (``requests ÷ (1 - p)``) and a limit drop is integrated (a client that follows the limit
  exactly). Bursts are ignored: they save at most two seconds.
* A host with rate-independent faults that send ``Retry-After`` adds one such wait: its
  last failing URL may not be retried sooner.
* A **dead** host (black hole or refused) finishes when a client can know it is dead
  (:func:`give_up_time`): one attempt at its robots.txt.

The fleet's lower bound is the largest of these over its hosts: hosts are served in parallel.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence

from distdl.testing.fleet_spec import HostSpec

Segment = tuple[float, float, float]  # (from, until, rate), seconds after the first request


def host_limit(spec: HostSpec) -> float | None:
    """The rate that draws no complaint (at full limit); None when nothing limits the host."""
    return spec.rate_limit if spec.rate_limit is not None else spec.overload_knee


def limit_segments(spec: HostSpec) -> list[Segment]:
    """The host's limit over time as pieces covering ``[0, inf)``; [] when unlimited."""
    limit = host_limit(spec)
    if limit is None:
        return []
    start, end = spec.limit_drop_start, spec.limit_drop_end
    if spec.rate_limit is None or start is None or end is None:
        return [(0.0, math.inf, limit)]
    pieces = [(0.0, start, limit), (start, end, limit * spec.limit_drop_factor)]
    return [piece for piece in pieces if piece[1] > piece[0]] + [(end, math.inf, limit)]


def serve_time(spec: HostSpec, requests: float) -> float:
    """Seconds to send ``requests`` at the host's limit, following its drops."""
    remaining = requests
    for since, until, rate in limit_segments(spec):
        room = rate * (until - since)
        if remaining <= room:
            return since + remaining / rate
        remaining -= room
    return 0.0  # unlimited


def host_bound(spec: HostSpec, requests: float) -> float:
    """The host's own bound for ``requests`` first attempts (its URLs, plus redirected-in)."""
    if spec.mode != "normal":
        return 0.0
    sending = serve_time(spec, requests / (1.0 - spec.error_rate_5xx))
    after = spec.error_retry_after_setting if 503 in spec.error_statuses else None
    wait = float(after) if spec.error_rate_5xx > 0 and isinstance(after, int | float) else 0.0
    return sending + wait


def give_up_time(mode: str, read_timeout: float) -> float:
    """The least time to learn that a dead host is dead: one request to it.

    A refused connection fails at once; a black hole accepts the connection and costs a
    read timeout. distdl gives up on a host after that one answer-less robots.txt request
    (RFC 9309: an unreachable robots.txt forbids crawling; its rows become -32, see
    ``runtime/worker.py``). The circuit breaker (``core/breaker.py``: 5 failures in a row,
    then cool-downs of 5, 10, 20 and 40 s before 4 failing probes, at least 60 s with its
    20 % jitter) only governs a host that dies after answering robots.txt, which the matrix
    does not draw.
    """
    if mode == "black_hole":
        return read_timeout
    return 0.0


def lower_bound(
    specs: Sequence[HostSpec], requests: Mapping[str, float], read_timeout: float
) -> float:
    """Max over hosts of their bounds (``requests[name]`` first attempts each)."""
    bounds = [host_bound(spec, requests.get(spec.name, 0)) for spec in specs]
    dead = [give_up_time(spec.mode, read_timeout) for spec in specs if requests.get(spec.name)]
    return max([0.0, *bounds, *dead])


def allowed_between(spec: HostSpec, start: float, end: float) -> float:
    """Requests the limit allows in ``[start, end)`` (seconds after the first request)."""
    total = 0.0
    for since, until, rate in limit_segments(spec):
        overlap = min(until, end) - max(since, start)
        total += rate * max(0.0, overlap)
    return total


# Seconds either side of a host's first complaint (a refusal or a 503 for load) that "past
# the crossing" leaves out: the overshoot builds up while the burst drains, before the
# complaint, and its answer takes a report and a latency to come back after it.
CROSSING_MARGIN = 2.0


def in_crossing(moment: float, first_complaint: float | None) -> bool:
    """Whether a window starting at ``moment`` is left out as the crossing."""
    return first_complaint is not None and abs(moment - first_complaint) < CROSSING_MARGIN


def peak_window_ratio(
    spec: HostSpec,
    times: Sequence[float],
    window: float = 1.0,
    after_drop: float = 2.0,
    *,
    first_complaint: float | None = None,
) -> float | None:
    """The most requests in any ``window`` seconds ÷ what the limit allowed in it.

    ``times`` are the host's arrival times (any clock; the first is the limit's origin).
    Windows touching the ``after_drop`` seconds after the limit drops are skipped: a client
    cannot know of a drop before it is told. With ``first_complaint`` (the time of the
    host's first refusal, or of its first 503 for load, on the clock of ``times``), windows
    starting within ``CROSSING_MARGIN`` of it are skipped too: the ramp's crossing of a
    limit that a burst allowance hid (or of a knee), which no client can see before it is
    told either (benchmarks/ramp_frontier.py). None for a host with no limit or no
    requests.
    """
    if not times or host_limit(spec) is None:
        return None
    ordered = sorted(times)
    first = ordered[0]
    drop = spec.limit_drop_start if spec.rate_limit is not None else None
    best = 0.0
    for index, moment in enumerate(ordered):
        start = moment - first
        if drop is not None and drop - window < start < drop + after_drop:
            continue
        if in_crossing(moment, first_complaint):
            continue
        count = bisect.bisect_left(ordered, moment + window) - index
        best = max(best, count / allowed_between(spec, start, start + window))
    return best
