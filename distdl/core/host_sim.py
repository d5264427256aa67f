"""A host with a hidden request-rate limit, simulated without sockets or clocks.

:class:`SimulatedHost` is a token bucket like the ones real servers put in front of their
images (nginx ``limit_req``, CDN rate rules): ``limit`` tokens per second, at most
``burst`` seconds' worth of them banked, one token per request, a 429 when the bucket is
empty. :func:`simulate` drives a rate controller against it in fake time the way rank 0
and the workers do for real: requests start evenly at the controller's current rate,
answers arrive one latency later, and every ``report_interval`` the answers received so far
are reported as one :class:`~distdl.core.throttle.Feedback`. Tests and benchmarks use it to
measure how fast a controller converges and how many 429s it causes.

Real arrivals are not evenly spaced: the senders' event loops and the network shift each
request by milliseconds (on the benchmark fleet, inter-arrival times deviate by -6..+8 ms
between the 5th and 95th percentile, with rare outliers of tens of ms), so a one-token
bucket paced just under its limit still refuses a request now and then. ``jitter`` models
that, ``pacing`` the share of the rate the workers actually use, and ``unavailable_share``
a flaky server's 503s.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from distdl.core.throttle import Feedback

OK = 200
THROTTLED = 429
UNAVAILABLE = 503


class RateController(Protocol):
    @property
    def rate(self) -> float: ...

    def observe(self, feedback: Feedback, now: float) -> float: ...

    def paused_until(self) -> float: ...


class SimulatedHost:
    """A token bucket with a hidden ``limit`` (req/s) and a ``burst`` allowance.

    ``burst`` is in seconds of traffic at the current limit, so the bucket holds
    ``max(1, burst * limit)`` tokens and keeps that meaning when the limit changes.
    ``latency`` is the mean response time; each answer takes 0.5–1.5 times that.
    ``retry_after`` (seconds), when set, is what the host sends with its 429s and 503s.
    ``jitter`` (seconds): each request arrives up to that much early or late (the sender's
    event loop, the network), so a client pacing just under the limit still gets an
    occasional 429 from a small bucket. ``unavailable_share`` of the requests the bucket
    admits are answered 503 all the same, their token spent (a flaky server, like the
    benchmark fleet's; workers report 503s as throttled).
    """

    def __init__(
        self,
        limit: float,
        burst: float = 0.25,
        latency: float = 0.05,
        seed: int = 0,
        *,
        retry_after: float | None = None,
        jitter: float = 0.0,
        unavailable_share: float = 0.0,
    ) -> None:
        if limit <= 0 or burst < 0 or latency < 0 or jitter < 0:
            raise ValueError("limit must be positive; burst, latency, jitter non-negative")
        if not 0 <= unavailable_share < 1:
            raise ValueError("unavailable_share must be in [0, 1)")
        self.limit = limit
        self.burst = burst
        self.latency = latency
        self.retry_after = retry_after
        self.jitter = jitter
        self.unavailable_share = unavailable_share
        self._rng = random.Random(seed)
        self._tokens = self._capacity()
        self._clock = 0.0
        self._changes: list[tuple[float, float]] = []  # (time, new limit), sorted

    def _capacity(self) -> float:
        return max(1.0, self.burst * self.limit)

    def change_limit(self, at: float, limit: float) -> None:
        """From time ``at`` on, the host allows ``limit`` req/s (it got busier, or freer)."""
        bisect.insort(self._changes, (at, limit))

    def _advance(self, now: float) -> None:
        while self._changes and self._changes[0][0] <= now:
            at, limit = self._changes.pop(0)
            self._refill(at)
            self.limit = limit
            self._tokens = min(self._tokens, self._capacity())
        self._refill(now)

    def _refill(self, now: float) -> None:
        if now > self._clock:
            self._tokens = min(self._capacity(), self._tokens + (now - self._clock) * self.limit)
            self._clock = now

    def offer(self, times: list[float]) -> list[int]:
        """The status the host answers to requests sent at ``times`` (non-decreasing).

        With ``jitter``, each request arrives at its send time plus a uniform offset in
        ``[-jitter, jitter]``; the statuses are still listed in the order of ``times``.
        Arrivals reorder within a batch; one that would overtake the previous batch's last
        arrival comes with it instead (only where requests are spaced under ``2 * jitter``,
        i.e. fast hosts, whose buckets hold many tokens).
        """
        arrivals = list(times)
        if self.jitter:
            spread = [self._rng.uniform(-self.jitter, self.jitter) for _ in times]
            arrivals = [max(self._clock, t + d) for t, d in zip(times, spread, strict=True)]
        statuses = [OK] * len(times)
        for index in sorted(range(len(times)), key=arrivals.__getitem__):
            statuses[index] = self._answer(arrivals[index])
        return statuses

    def _answer(self, now: float) -> int:
        self._advance(now)
        # The epsilon forgives float noise in evenly spaced arrivals at exactly the limit.
        if self._tokens < 1.0 - 1e-9:
            return THROTTLED
        self._tokens -= 1.0
        if self.unavailable_share and self._rng.random() < self.unavailable_share:
            return UNAVAILABLE  # admitted by the bucket, then failed
        return OK

    def draw_latency(self) -> float:
        return self.latency * self._rng.uniform(0.5, 1.5)


@dataclass
class SimStats:
    requests: int = 0
    throttled: int = 0  # answered 429
    unavailable: int = 0  # answered 503
    served: int = 0
    time_to_finish: float | None = None  # when the last URL was served; None if not all were
    rate_trace: list[tuple[float, float]] = field(default_factory=list)  # (time, rate)

    @property
    def throttled_share(self) -> float:
        return self.throttled / self.requests if self.requests else 0.0

    def rate_at(self, time: float) -> float:
        """The controller's rate in force at ``time`` (after the last report before it)."""
        index = bisect.bisect_right(self.rate_trace, (time, math.inf)) - 1
        return self.rate_trace[max(index, 0)][1]

    def mean_rate(self, start: float, end: float) -> float:
        """The controller's rate averaged over the time in ``[start, end)``."""
        if end <= start:
            raise ValueError("need start < end")
        total = 0.0
        changes = [*self.rate_trace, (math.inf, 0.0)]
        for (since, rate), (until, _) in itertools.pairwise(changes):
            overlap = min(until, end) - max(since, start)
            total += rate * max(0.0, overlap)
        return total / (end - start)


@dataclass
class _Answer:
    done_at: float
    status: int
    latency: float


@dataclass
class _Run:
    controller: RateController
    host: SimulatedHost
    urls: int | None
    control_delay: float = 0.0
    pacing: float = 1.0
    stats: SimStats = field(default_factory=SimStats)
    in_flight: deque[_Answer] = field(default_factory=deque)
    next_start: float = 0.0
    pending_urls: int = 0  # sent and not yet answered

    def wants_more(self) -> bool:
        if self.urls is None:
            return True
        return self.stats.served + self.pending_urls < self.urls

    def rate_in_force(self, time: float) -> float:
        if self.control_delay <= 0:
            return self.pacing * self.controller.rate
        return self.pacing * self.stats.rate_at(time - self.control_delay)

    def send_until(self, end: float) -> None:
        """Start requests evenly at the controller's rate during ``[next_start, end)``."""
        times: list[float] = []
        self.next_start = max(self.next_start, self.controller.paused_until())
        while self.next_start < end and self.wants_more():
            times.append(self.next_start)
            self.pending_urls += 1
            self.next_start += 1.0 / self.rate_in_force(self.next_start)
        for start, status in zip(times, self.host.offer(times), strict=True):
            latency = self.host.draw_latency()
            self.in_flight.append(_Answer(start + latency, status, latency))
        # Answers can overtake each other by a few milliseconds; report in arrival order.
        self.in_flight = deque(sorted(self.in_flight, key=lambda answer: answer.done_at))

    def collect_until(self, now: float) -> Feedback:
        ok = throttled = unavailable = 0
        latency_sum = 0.0
        while self.in_flight and self.in_flight[0].done_at <= now:
            answer = self.in_flight.popleft()
            self.pending_urls -= 1
            latency_sum += answer.latency
            if answer.status == OK:
                ok += 1
                self._served(answer.done_at)
            elif answer.status == THROTTLED:
                throttled += 1
            else:
                unavailable += 1
        self.stats.requests += ok + throttled + unavailable
        self.stats.throttled += throttled
        self.stats.unavailable += unavailable
        # Like the workers' reports: a 503 counts as throttled, and carries the Retry-After.
        throttled += unavailable
        retry_after = self.host.retry_after if throttled else None
        return Feedback(
            ok=ok,
            rate_limited=throttled,
            latency_sum=latency_sum,
            latency_count=ok + throttled,
            retry_after=retry_after,
        )

    def _served(self, at: float) -> None:
        self.stats.served += 1
        if self.urls is not None and self.stats.served == self.urls:
            self.stats.time_to_finish = at


def simulate(
    controller: RateController,
    host: SimulatedHost,
    duration: float,
    report_interval: float,
    urls: int | None = None,
    control_delay: float = 0.0,
    pacing: float = 1.0,
) -> SimStats:
    """Drive ``controller`` against ``host`` for ``duration`` simulated seconds.

    With ``urls`` set, the run stops once that many URLs were served (a 429 puts its URL
    back in the queue) and ``time_to_finish`` says when; ``duration`` is then a cap.
    ``control_delay`` is how long a new rate takes to reach the senders (rank 0's message
    to the workers); answers are reported as soon as they arrive. ``pacing`` is the share of
    the rate the senders actually use (the workers' ``PACING_MARGIN``).
    """
    run = _Run(controller, host, urls, control_delay, pacing)
    run.stats.rate_trace.append((0.0, controller.rate))
    now = 0.0
    while now < duration and (urls is None or run.stats.time_to_finish is None):
        end = min(now + report_interval, duration)
        run.send_until(end)
        now = end
        feedback = run.collect_until(now)
        controller.observe(feedback, now)
        run.stats.rate_trace.append((now, controller.rate))
    return run.stats
