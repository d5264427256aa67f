"""Hosts simulated in fake time, and a driver that runs a rate controller against them.

:class:`HostModel` is what a server in the wild does with the requests it receives, without
sockets or clocks: a token bucket (``limit`` req/s with ``burst`` seconds of allowance) that
refuses with 429 (or 403, as some CDNs do), faults whatever the rate (``fault_share`` of
the admitted requests fail with 503), overload (past ``knee`` req/s, latency grows and a
growing share of requests fail with 503), limits that change mid-run, and arrival jitter.
:func:`simulate` drives a controller against one host the way rank 0 and the workers do:
requests start evenly at the controller's rate (times ``pacing``), answers arrive one
latency later, and every ``report_interval`` the answers received so far are reported as
one :class:`~distdl.core.throttle.Feedback`. Tests use it to check the controller's rules
on behaviours it was not tuned on; the live fleet (``distdl.testing.fleet``) does the same
over real sockets.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from distdl.core.throttle import Feedback
from distdl.testing.fleet_bounds import in_crossing

OK = 200
REFUSED = 429
FORBIDDEN = 403
FAULT = 503  # whatever the rate
OVERLOADED = 503  # because of the rate; counted apart in SimStats


class RateController(Protocol):
    @property
    def rate(self) -> float: ...

    def observe(self, feedback: Feedback, now: float) -> float: ...

    def paused_until(self) -> float: ...


@dataclass
class HostModel:
    """One server's hidden behaviour. Only ``limit`` is required (``None``: no bucket)."""

    limit: float | None
    burst: float = 0.25  # seconds of traffic at the limit the bucket banks (>= 1 token)
    latency: float = 0.05  # mean; each answer takes 0.5–1.5 times it
    seed: int = 0
    refusal_status: int = REFUSED  # 403 for CDNs that forbid instead of throttling
    retry_after: float | None = None  # sent with every refusal
    fault_share: float = 0.0  # admitted requests failing with 503 whatever the rate
    forbidden_share: float = 0.0  # admitted requests for images it forbids (403) at any rate
    fault_retry_after: float | None = None  # sent with those 503s
    knee: float | None = None  # overload: past this rate, 503s and latency grow
    overload_slope: float = 1.0  # 503 share = slope × (rate / knee - 1), at most 0.9
    jitter: float = 0.0  # each request arrives up to this much early or late
    _rng: random.Random = field(init=False, repr=False)
    _tokens: float = field(init=False, repr=False)
    _clock: float = field(init=False, default=0.0, repr=False)
    _changes: list[tuple[float, float]] = field(init=False, default_factory=list, repr=False)
    _recent: deque[float] = field(init=False, default_factory=deque, repr=False)

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit <= 0:
            raise ValueError("limit must be positive")
        if self.burst < 0 or self.latency < 0 or self.jitter < 0:
            raise ValueError("burst, latency and jitter must be non-negative")
        if not 0 <= self.fault_share < 1:
            raise ValueError("fault_share must be in [0, 1)")
        self._rng = random.Random(self.seed)
        self._tokens = self._capacity()

    def _capacity(self) -> float:
        return max(1.0, self.burst * self.limit) if self.limit else math.inf

    def change_limit(self, at: float, limit: float) -> None:
        """From time ``at`` on, the host allows ``limit`` req/s (it got busier, or freer)."""
        bisect.insort(self._changes, (at, limit))

    def limit_at(self, time: float) -> float | None:
        limit = self.limit
        for at, new in self._changes:
            if at <= time:
                limit = new
        return limit

    def _advance(self, now: float) -> None:
        while self._changes and self._changes[0][0] <= now:
            at, limit = self._changes.pop(0)
            self._refill(at)
            self.limit = limit
            self._tokens = min(self._tokens, self._capacity())
        self._refill(now)

    def _refill(self, now: float) -> None:
        if now > self._clock:
            if self.limit:
                gained = (now - self._clock) * self.limit
                self._tokens = min(self._capacity(), self._tokens + gained)
            self._clock = now

    def offer(self, times: list[float]) -> list[tuple[int, float]]:
        """(status, latency) for requests sent at ``times`` (non-decreasing), in that order."""
        arrivals = list(times)
        if self.jitter:
            spread = [self._rng.uniform(-self.jitter, self.jitter) for _ in times]
            arrivals = [max(self._clock, t + d) for t, d in zip(times, spread, strict=True)]
        answers: list[tuple[int, float]] = [(OK, 0.0)] * len(times)
        for index in sorted(range(len(times)), key=arrivals.__getitem__):
            answers[index] = self._answer(arrivals[index])
        return answers

    def _seen_rate(self, now: float) -> float:
        """Requests that arrived in the last second: the load the back end feels."""
        self._recent.append(now)
        while self._recent and self._recent[0] <= now - 1.0:
            self._recent.popleft()
        return float(len(self._recent))

    def _answer(self, now: float) -> tuple[int, float]:
        self._advance(now)
        load = self._seen_rate(now)
        latency = self.latency * self._rng.uniform(0.5, 1.5)
        # The epsilon forgives float noise in evenly spaced arrivals at exactly the limit.
        if self._tokens < 1.0 - 1e-9:
            return self.refusal_status, latency
        self._tokens -= 1.0
        if self.knee is not None and load > self.knee:
            over = load / self.knee - 1.0
            latency *= 1.0 + 4.0 * over
            if self._rng.random() < min(0.9, self.overload_slope * over):
                return -OVERLOADED, latency  # negative: told apart from a fault in stats
        if self.fault_share and self._rng.random() < self.fault_share:
            return FAULT, latency
        if self.forbidden_share and self._rng.random() < self.forbidden_share:
            return -FORBIDDEN, latency  # negative: content, told apart from a refusal
        return OK, latency


@dataclass
class SimStats:
    requests: int = 0
    refused: int = 0  # 429 (or 403 from a forbidding CDN)
    faults: int = 0  # 503 whatever the rate
    overloaded: int = 0  # 503 because of the rate
    forbidden: int = 0  # 403 for content forbidden at any rate
    served: int = 0
    time_to_finish: float | None = None  # when the last URL was served; None if not all were
    rate_trace: list[tuple[float, float]] = field(default_factory=list)  # (time, rate)
    arrivals: list[float] = field(default_factory=list)  # send times, as the host counts
    first_complaint: float | None = None  # its first refusal or load 503, as it counts

    @property
    def refused_share(self) -> float:
        return self.refused / self.requests if self.requests else 0.0

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

    def max_in_window(
        self,
        start: float = 0.0,
        end: float = math.inf,
        window: float = 1.0,
        *,
        past_crossing: bool = False,
    ) -> int:
        """The most requests in any ``window`` seconds, counting those sent in [start, end).

        ``past_crossing``: windows starting within ``CROSSING_MARGIN`` of the host's first
        complaint are left out, as ``fleet_bounds.peak_window_ratio`` leaves them out.
        """
        times = [t for t in self.arrivals if start <= t < end]
        return busiest_count(times, window, self.first_complaint if past_crossing else None)


def busiest_count(
    times: Sequence[float], window: float = 1.0, first_complaint: float | None = None
) -> int:
    """The most of ``times`` in any ``window`` seconds; with ``first_complaint``, windows
    starting in its crossing (:func:`~distdl.testing.fleet_bounds.in_crossing`) left out."""
    ordered = sorted(times)
    best = 0
    for low, time in enumerate(ordered):
        if not in_crossing(time, first_complaint):
            best = max(best, bisect.bisect_left(ordered, time + window) - low)
    return best


@dataclass(order=True)
class _Answer:
    done_at: float
    status: int
    latency: float


@dataclass
class _Run:
    controller: RateController
    host: HostModel
    urls: int | None
    control_delay: float
    pacing: float
    max_in_flight: int
    stats: SimStats = field(default_factory=SimStats)
    in_flight: list[_Answer] = field(default_factory=list)
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
        self.next_start = max(self.next_start, self.controller.paused_until())
        while self.next_start < end and self.wants_more():
            waiting = [a.done_at for a in self.in_flight if a.done_at > self.next_start]
            if len(waiting) >= self.max_in_flight:
                # Every slot is taken: the next request starts when an answer comes back.
                self.next_start = min(waiting)
                continue
            start = self.next_start
            self.pending_urls += 1
            self.stats.arrivals.append(start)
            ((status, latency),) = self.host.offer([start])
            bisect.insort(self.in_flight, _Answer(start + latency, status, latency))
            # Like the workers' gates: a rate change applies to the spacing from the last
            # start, so a cut is not followed by one last start at the old spacing.
            guess = start + 1.0 / self.rate_in_force(start)
            self.next_start = start + 1.0 / self.rate_in_force(guess)

    def collect_until(self, now: float) -> Feedback:
        counts = {OK: 0, REFUSED: 0, FORBIDDEN: 0, FAULT: 0}
        latency_sum = 0.0
        done = 0
        while done < len(self.in_flight) and self.in_flight[done].done_at <= now:
            answer = self.in_flight[done]
            done += 1
            latency_sum += answer.latency
            if answer.status == OK:
                self._served(answer.done_at)
            elif answer.status == -OVERLOADED:
                self.stats.overloaded += 1
                self._complained(answer)
            elif answer.status == FAULT:
                self.stats.faults += 1
            elif answer.status == -FORBIDDEN:
                self.stats.forbidden += 1
            else:
                self.stats.refused += 1
                self._complained(answer)
            counts[abs(answer.status)] += 1
        del self.in_flight[:done]
        self.pending_urls -= done
        self.stats.requests += done
        refused = counts[REFUSED]
        return Feedback(
            ok=counts[OK],
            rate_limited=refused,
            forbidden=counts[FORBIDDEN],
            server_errors=counts[FAULT],
            latency_sum=latency_sum,
            latency_count=done,
            retry_after=self.host.retry_after if refused else None,
            server_retry_after=self.host.fault_retry_after if counts[FAULT] else None,
        )

    def _served(self, at: float) -> None:
        self.stats.served += 1
        if self.urls is not None and self.stats.served == self.urls:
            self.stats.time_to_finish = at

    def _complained(self, answer: _Answer) -> None:
        """A refusal or a 503 for load: the first says where the limit (or knee) was."""
        if self.stats.first_complaint is None:
            self.stats.first_complaint = answer.done_at - answer.latency


def simulate(
    controller: RateController,
    host: HostModel,
    duration: float,
    report_interval: float = 0.25,
    urls: int | None = None,
    control_delay: float = 0.0,
    pacing: float = 0.97,
    max_in_flight: int = 16,
) -> SimStats:
    """Drive ``controller`` against ``host`` for ``duration`` simulated seconds.

    With ``urls`` set, the run stops once that many URLs were served (a failed request puts
    its URL back in the queue) and ``time_to_finish`` says when; ``duration`` is then a cap.
    ``control_delay`` is how long a new rate takes to reach the senders (rank 0's message
    to the workers). ``pacing`` is the share of the rate the senders use (the workers'
    ``PACING_MARGIN``). ``max_in_flight`` caps the requests awaiting an answer, as the
    workers' gates do.
    """
    run = _Run(controller, host, urls, control_delay, pacing, max_in_flight)
    run.stats.rate_trace.append((0.0, controller.rate))
    now = 0.0
    while now < duration and (urls is None or run.stats.time_to_finish is None):
        end = min(now + report_interval, duration)
        run.send_until(end)
        now = end
        controller.observe(run.collect_until(now), now)
        run.stats.rate_trace.append((now, controller.rate))
    return run.stats
