"""Rank 0's live tally of a run, from request-level counters (pure: time is an argument).

Partition completions are too coarse for a weeks-long run: a slow host's partition may take
hours, and a count that moves only when one completes looks like a hang. So the workers
report, about once a second, how many rows each open lease has settled so far (a running
total per lease: a lost or repeated report changes nothing), and rank 0 already hears every
answer's kind through the hosts' feedback. :class:`ProgressBook` folds both:

* rows of completed partitions count in full (carried-over rows included); rows of an open
  lease count as its last report says; a lease that failed or whose rank died counts
  nothing (its partition is leased again and settled from scratch);
* requests, 429s, 5xx and timeouts count as the answers arrive.

:class:`Throughput` keeps a short window of totals to turn them into rates.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

from distdl.core.throttle import Feedback

RATE_WINDOW = 60.0  # seconds of history behind the rates shown


@dataclass(frozen=True)
class RowCounts:
    """What a lease (or a host, or the run) settled: rows written, bytes downloaded."""

    successes: int = 0
    errors: int = 0
    bytes: int = 0

    @property
    def rows(self) -> int:
        return self.successes + self.errors

    def plus(self, other: RowCounts) -> RowCounts:
        return RowCounts(
            self.successes + other.successes, self.errors + other.errors, self.bytes + other.bytes
        )

    def minus(self, other: RowCounts) -> RowCounts:
        return RowCounts(
            self.successes - other.successes, self.errors - other.errors, self.bytes - other.bytes
        )


@dataclass
class HostTotals:
    """One host's share of the run so far."""

    rows_planned: int = 0  # rows this run has to settle on the host
    rows_done: int = 0  # rows of its completed partitions (carried-over ones included)
    open_rows: int = 0  # rows its open leases settled so far
    settled: RowCounts = field(default_factory=RowCounts)  # completed + open leases
    answers: Feedback = field(default_factory=Feedback)

    @property
    def rows_left(self) -> int:
        return max(0, self.rows_planned - self.rows_settled)

    @property
    def rows_settled(self) -> int:
        return self.rows_done + self.open_rows


class ProgressBook:
    def __init__(self, rows_by_host: dict[str, int]) -> None:
        self._hosts: dict[str, HostTotals] = {
            host: HostTotals(rows_planned=rows) for host, rows in rows_by_host.items()
        }
        # The run's totals, kept as they change: summing 100k hosts every tick costs.
        self._total = HostTotals(rows_planned=sum(rows_by_host.values()))
        self._open: dict[int, tuple[str, RowCounts]] = {}  # lease id -> (host, last report)

    def host(self, server_name: str) -> HostTotals:
        return self._hosts.setdefault(server_name, HostTotals())

    def lease_reported(self, lease_id: int, server_name: str, counts: RowCounts) -> None:
        self._close(lease_id)
        self._open[lease_id] = (server_name, counts)
        self._shift(server_name, counts, +1)

    def lease_completed(
        self, lease_id: int, server_name: str, planned_rows: int, counts: RowCounts
    ) -> None:
        """The partition is done: all its ``planned_rows`` are settled, ``counts`` of them
        by this lease (the rest were carried over from an earlier run)."""
        self._close(lease_id)
        for totals in (self.host(server_name), self._total):
            totals.settled = totals.settled.plus(counts)
            totals.rows_done += planned_rows

    def lease_dropped(self, lease_id: int) -> None:
        """Failed, or its rank died, or a stop left it unfinished: it counts for nothing."""
        self._close(lease_id)

    def answers_seen(self, server_name: str, feedback: Feedback) -> None:
        for totals in (self.host(server_name), self._total):
            totals.answers = totals.answers.merged(feedback)

    def _close(self, lease_id: int) -> None:
        """Take a lease's last report back out of its host's totals."""
        closed = self._open.pop(lease_id, None)
        if closed is not None:
            self._shift(closed[0], closed[1], -1)

    def _shift(self, server_name: str, counts: RowCounts, sign: int) -> None:
        # Kept up to date report by report: rank 0 hears ~one per open lease per second.
        for totals in (self.host(server_name), self._total):
            change = totals.settled.plus if sign > 0 else totals.settled.minus
            totals.settled = change(counts)
            totals.open_rows += sign * counts.rows

    @property
    def hosts(self) -> dict[str, HostTotals]:
        """Every host's totals (the book's own: read, do not change them)."""
        return self._hosts

    def totals(self) -> HostTotals:
        """The run as a whole, in the same shape as one host."""
        return replace(self._total)


@dataclass(frozen=True)
class Sample:
    """Running totals at one instant."""

    at: float
    rows: int = 0
    images: int = 0
    bytes: int = 0
    requests: int = 0
    rate_limited: int = 0

    @classmethod
    def of(cls, totals: HostTotals, at: float) -> Sample:
        return cls(
            at,
            totals.rows_settled,
            totals.settled.successes,
            totals.settled.bytes,
            totals.answers.total,
            totals.answers.rate_limited,
        )


@dataclass(frozen=True)
class Rates:
    rows_per_s: float = 0.0
    images_per_s: float = 0.0
    bytes_per_s: float = 0.0
    requests_per_s: float = 0.0
    rate_limited_share: float = 0.0  # of the requests in the window


class Throughput:
    """Rates over the last ``window`` seconds of samples."""

    def __init__(self, window: float = RATE_WINDOW) -> None:
        self._window = window
        self._samples: deque[Sample] = deque()

    def add(self, sample: Sample) -> None:
        self._samples.append(sample)
        while len(self._samples) > 2 and sample.at - self._samples[1].at >= self._window:
            self._samples.popleft()

    def rates(self) -> Rates:
        if len(self._samples) < 2:
            return Rates()
        first, last = self._samples[0], self._samples[-1]
        span = last.at - first.at
        if span <= 0:
            return Rates()
        requests = last.requests - first.requests
        return Rates(
            rows_per_s=(last.rows - first.rows) / span,
            images_per_s=(last.images - first.images) / span,
            bytes_per_s=(last.bytes - first.bytes) / span,
            requests_per_s=requests / span,
            rate_limited_share=(last.rate_limited - first.rate_limited) / requests
            if requests
            else 0.0,
        )
