"""Rank 0 at GBIF scale: the real coordinator driven by virtual workers in simulated time.

The coordinator (:class:`~distdl.runtime.coordinator.Coordinator`, with its real
``LeaseScheduler``, ``HostBudgets`` and per-host ``HostThrottle``) runs on a fake clock and a
channel that only records what it sends. Virtual workers take its leases and, instead of
sending requests, report *windows*: every window a lease's counts of OK/429/5xx/latency are
drawn from its host's hidden behaviour at the rates in force
(:func:`distdl.testing.scale_fleet.window_answers`), and its partition completes when its
settled URLs (images and error rows) reach its size. Rate changes, pauses (Retry-After, start
slots), robots verdicts, dead hosts and completions travel as the real messages.

Windows are stretched so the run takes minutes: a lease reports ``windows_per_lease`` times
over its life (between ``min_window`` and ``max_window`` seconds apart) instead of every
0.25 s. The controllers see fewer, larger windows than in a real run, and their ramp-up and
probing cost more simulated time (a conservative prediction). For the cost of rank 0, a
*sample* switches the whole fleet to the real cadence for a few simulated seconds (every
lease reports every 0.25 s, its progress every second, every worker heartbeats every second,
rank 0 polls every 5 ms) and measures, in process time, what rank 0 spends unpickling those
messages and running its loop (including pickling what it sends).
"""

from __future__ import annotations

import heapq
import itertools
import math
import pickle
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distdl.core.clock import FakeClock
from distdl.core.scheduler import Lease, LeaseScheduler, PartitionRef
from distdl.core.throttle import Feedback, ThrottleSettings
from distdl.runtime.feedback import JUDGING_SECONDS, needs_action
from distdl.runtime.messages import (
    AbandonHost,
    AssignPartition,
    ChangeRate,
    Heartbeat,
    HostDeclaredDead,
    HostFeedbackReported,
    LeaseProgressed,
    Message,
    PartitionCompleted,
    PartitionStats,
    PauseHolder,
    RobotsRead,
    Shutdown,
    WorkRequested,
)
from distdl.runtime.worker import CLEAN_FEEDBACK_INTERVAL, FEEDBACK_INTERVAL
from distdl.testing.scale_cost import ProgressMirror, RankZeroCost, SampleWindow, deep_size
from distdl.testing.scale_fleet import (
    READ_TIMEOUT,
    ScaleFleet,
    scaled_answers,
    sending_rate,
    window_answers,
)
from distdl.testing.scale_rank0 import RecordingOutbox, SimCoordinator, UnsavedBudgets

REPORT_INTERVAL = FEEDBACK_INTERVAL  # a lease's window while rank 0 is sampled
POLL = 0.005  # rank 0's loop comes round this often when messages keep arriving
ERROR_ROWS_PER_SECOND = 50_000.0  # writing a dead host's rows as -32 errors


@dataclass(frozen=True)
class SimSettings:
    ranks: int  # world size: rank 0 plus ranks - 1 workers
    batch_size: int = 10_000  # URLs per partition (config batch_size)
    leases_per_worker: int = 16
    start_rate: float = 3.0  # default_rate_limit
    max_rate: float = 100.0  # max_rate_limit
    windows_per_lease: int = 8
    min_window: float = 0.5
    max_window: float = 60.0
    quantum: float = 0.5  # rank 0 handles what arrived within this long in one pass
    samples: tuple[float, ...] = (0.02, 0.3, 0.6)  # when to sample, as shares of the bound…
    # …and at these seconds: when every host has started, most leases are open.
    early_samples: tuple[float, ...] = (600.0, 3600.0)
    sample_seconds: float = 10.0
    seed: int = 0


@dataclass(frozen=True)
class _Window:
    """The answers one lease hears from ``start`` for ``seconds`` (drawn when it starts)."""

    start: float
    seconds: float
    seen: Feedback


@dataclass
class _Lease:
    lease: Lease
    rate: float
    not_before: float
    unreachable: bool
    started: float
    next_tick: float
    window: _Window | None = None
    unsent: Feedback = field(default_factory=Feedback)  # clean answers not yet reported
    last_report: float = -math.inf  # of the clean ones
    judged_until: float = -math.inf  # rate new: clean answers go out at once
    settled: int = 0
    ok: int = 0
    requests: int = 0
    throttled: int = 0

    def stats(self, seconds: float) -> PartitionStats:
        errors = self.settled - self.ok  # error rows (404s, or a dead host's -32s)
        return PartitionStats(self.ok, errors, self.requests, self.throttled, seconds=seconds)


@dataclass
class SimResult:
    makespan: float
    bound: float
    completed: Counter[tuple[str, int]]  # (host, partition) -> completions seen
    urls_completed: int
    finish_by_host: dict[str, float]
    cost: RankZeroCost = field(default_factory=RankZeroCost)

    @property
    def ratio(self) -> float:
        return self.makespan / self.bound if self.bound else math.inf


class ScaleSim:
    def __init__(self, fleet: ScaleFleet, settings: SimSettings, workdir: Path) -> None:
        self.fleet = fleet
        self.s = settings
        self.rng = random.Random(settings.seed)
        self.clock = FakeClock()
        self.outbox = RecordingOutbox()
        self.workers = list(range(1, settings.ranks))
        partitions = [
            PartitionRef(host, index, min(settings.batch_size, urls - index * settings.batch_size))
            for host, urls in fleet.urls.items()
            for index in range(math.ceil(urls / settings.batch_size))
        ]
        base = ThrottleSettings(start_rate=settings.start_rate, max_rate=settings.max_rate)
        self.budgets = UnsavedBudgets(workdir / "profiles.csv", {}, base, fleet.hosts, 0.0)
        self.scheduler = LeaseScheduler(
            partitions,
            self.budgets.initial_budgets(),
            default_budget=settings.start_rate,
            n_workers=len(self.workers),
            unverified=fleet.hosts,
        )
        self.coordinator = SimCoordinator(
            self.outbox,
            self.workers,
            self.scheduler,
            self.budgets,
            silence_limit=math.inf,  # virtual workers never die; they report in windows
            clock=self.clock,
        )
        self.leases: dict[int, _Lease] = {}
        self.lease_host: dict[int, str] = {}
        self.by_host: dict[str, dict[int, _Lease]] = {host: {} for host in fleet.hosts}
        self.first_request: dict[str, float] = {}
        self.events: list[tuple[float, int, str, Any]] = []
        self.seq = itertools.count()
        self.completed: Counter[tuple[str, int]] = Counter()
        self.finish_by_host: dict[str, float] = {}
        self.done_at: float | None = None
        self.sample: SampleWindow | None = None
        self.cost = RankZeroCost()

    # ------------------------------------------------------------------ the loop
    def run(self) -> SimResult:
        bound = self.fleet.bound()
        for worker in self.workers:
            self._arrive(0.0, worker, WorkRequested(self.s.leases_per_worker))
        sample_at = sorted(share * bound for share in self.s.samples)
        if self.s.samples:
            sample_at = sorted([*self.s.early_samples, *sample_at])
        while self.events and self.done_at is None:
            now = self.events[0][0]
            if sample_at and now >= sample_at[0]:
                sample_at.pop(0)
                if self.sample is None:  # not two at once
                    self._start_sample(now)
            self.clock.advance(now - self.clock.now())
            inbox: list[tuple[int, Any]] = []
            while self.events and self.events[0][0] <= now:
                _, _, kind, payload = heapq.heappop(self.events)
                if kind == "arrive":
                    inbox.append(payload)
                elif kind == "tick":
                    self._tick(payload, now)
                elif kind == "beat":
                    self._beat(now)
            self._rank_zero(inbox, now)
        makespan = self.done_at if self.done_at is not None else math.inf
        urls = sum(self._n_urls(key) for key in self.completed)
        self.cost.peak_bytes = max(self.cost.peak_bytes, deep_size(self.coordinator))
        self.cost.save_cpu = self.budgets.measured_save()
        return SimResult(makespan, bound, self.completed, urls, self.finish_by_host, self.cost)

    def _n_urls(self, key: tuple[str, int]) -> int:
        host, index = key
        return min(self.s.batch_size, self.fleet.urls[host] - index * self.s.batch_size)

    def _push(self, at: float, kind: str, payload: Any) -> None:
        heapq.heappush(self.events, (at, next(self.seq), kind, payload))

    def _arrive(self, at: float, source: int, message: Message) -> None:
        """A message on its way to rank 0, handled in the pass after ``at``."""
        sampling = self.sample is not None and at <= self.sample.end
        quantum = POLL if sampling else self.s.quantum
        due = math.ceil(at / quantum) * quantum
        data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL) if sampling else message
        self._push(due, "arrive", (source, data))

    def _rank_zero(self, inbox: list[tuple[int, Any]], now: float) -> None:
        sample = self.sample
        if sample is not None and now <= sample.end:
            # Sent before the sample began: pickled here, as its worker would have.
            inbox = [(source, _pickled(data)) for source, data in inbox]
            started = time.process_time()
            batch = [(source, pickle.loads(data)) for source, data in inbox]
            self.coordinator.step(batch)
            spent = time.process_time() - started
            sample.add(len(batch), sum(len(data) for _, data in inbox), spent)
            sample.progress.mirror(batch, self, now)
        else:
            batch = [
                (source, pickle.loads(data) if isinstance(data, bytes) else data)
                for source, data in inbox
            ]
            self.coordinator.step(batch)
            if sample is not None:
                self._end_sample()
        for dest, message in self.outbox.sent:
            self._deliver(dest, message, now)
        self.outbox.sent.clear()

    # ---------------------------------------------------------------- sampling
    def _start_sample(self, now: float) -> None:
        mirror = ProgressMirror(self.fleet.urls, len(self.workers))
        self.sample = SampleWindow(now, now + self.s.sample_seconds, mirror)
        self.outbox.pickling = True
        self.coordinator.measuring = True
        self._push(now, "beat", None)
        for state in list(self.leases.values()):  # every lease reports at the real cadence
            self._restart(state, now)

    def _end_sample(self) -> None:
        assert self.sample is not None
        size = deep_size(self.coordinator) + self.sample.progress.size()
        self.cost.peak_bytes = max(self.cost.peak_bytes, size)
        self.cost.add(self.sample, self.outbox.count, self.outbox.bytes, len(self.leases))
        self.outbox.pickling = False
        self.coordinator.measuring = False
        self.outbox.bytes = self.outbox.count = 0
        self.sample = None

    def _beat(self, now: float) -> None:
        """Once a second while sampling: each lease's progress, idle workers' heartbeats."""
        if self.sample is None or now > self.sample.end:
            return
        busy = set()
        for state in self.leases.values():
            stats = state.stats(now - state.started)
            self._arrive(now, state.lease.worker, LeaseProgressed(state.lease.lease_id, stats))
            busy.add(state.lease.worker)
        for worker in self.workers:
            if worker not in busy:  # a worker that reported progress sends no heartbeat
                self._arrive(now, worker, Heartbeat())
        self._push(now + 1.0, "beat", None)

    # ------------------------------------------------------------ virtual workers
    def _deliver(self, worker: int, message: Message, now: float) -> None:
        if isinstance(message, AssignPartition):
            lease = message.lease
            start = now + message.start_after
            state = _Lease(lease, lease.rate, start, message.host_unreachable, start, start)
            state.judged_until = start + JUDGING_SECONDS
            self.lease_host[lease.lease_id] = lease.server_name
            self.leases[lease.lease_id] = self.by_host[lease.server_name][lease.lease_id] = state
            self._push(start, "tick", lease.lease_id)
        elif isinstance(message, ChangeRate) and message.lease_id in self.leases:
            state = self.leases[message.lease_id]
            self._restart(state, now)
            state.rate = message.rate
            state.judged_until = now + JUDGING_SECONDS
        elif isinstance(message, PauseHolder) and message.lease_id in self.leases:
            state = self.leases[message.lease_id]
            self._restart(state, now)
            state.not_before = max(state.not_before, now + message.seconds)
        elif isinstance(message, AbandonHost):
            for state in self.by_host[message.server_name].values():
                state.unreachable = True
        elif isinstance(message, Shutdown):
            self.done_at = now

    def _tick(self, lease_id: int, now: float) -> None:
        state = self.leases.get(lease_id)
        if state is None or state.next_tick != now:
            return  # closed, or superseded (its window was cut short)
        if state.window is not None and self._close_window(state, now, 1.0):
            return
        if now < state.not_before:
            self._schedule(state, state.not_before)
            return
        host = state.lease.server_name
        spec = self.fleet.hosts[host]
        if state.unreachable:
            state.settled = state.lease.n_urls  # every row an error row, nothing fetched
            self._complete(state, now + state.lease.n_urls / ERROR_ROWS_PER_SECOND)
        elif spec.mode != "normal":
            # Its robots.txt gets no answer: the lease gives the host up, its rows become -32.
            given_up = now + (READ_TIMEOUT if spec.mode == "black_hole" else 0.0)
            self._arrive(given_up, state.lease.worker, HostDeclaredDead(host))
            state.settled = state.lease.n_urls
            self._complete(state, given_up)
        else:
            self._open_window(state, now)

    def _restart(self, state: _Lease, now: float) -> None:
        """A new rate or a pause reaches the worker: the window under way ends now (its
        answers are reported), the next one starts at the new rate."""
        window = state.window
        if window is not None:
            elapsed = now - window.start
            if self._close_window(state, now, elapsed / window.seconds if elapsed > 0 else 0):
                return
        self._schedule(state, max(now, state.not_before))

    def _open_window(self, state: _Lease, now: float) -> None:
        host = state.lease.server_name
        spec = self.fleet.hosts[host]
        if host not in self.first_request:
            self.first_request[host] = now
            robots = RobotsRead(host, None, None)
            self._arrive(now + spec.latency, state.lease.worker, robots)
        rate = sending_rate(spec, state.rate)
        left = state.lease.n_urls - state.settled
        seconds = REPORT_INTERVAL
        if self.sample is None or now > self.sample.end:
            spread = left / max(rate, 1e-9) / self.s.windows_per_lease
            seconds = min(self.s.max_window, max(self.s.min_window, spread))
        host_rate = sum(
            sending_rate(spec, other.rate)
            for other in self.by_host[host].values()
            if other.not_before <= now
        )
        since = now - self.first_request[host]
        seen = window_answers(spec, host_rate, rate, seconds, since, self.rng)
        settled = seen.ok + seen.other_errors
        if settled >= left > 0:  # its last URLs settle within this window
            share = left / settled
            seen = scaled_answers(seen, share, left)
            seconds *= share
        state.window = _Window(now, seconds, seen)
        self._schedule(state, now + seconds)

    def _close_window(self, state: _Lease, now: float, share: float) -> bool:
        """Report ``share`` of the window under way; True when its partition completed."""
        window = state.window
        assert window is not None
        state.window = None
        seen = window.seen
        if share < 1.0:
            settled = window.seen.ok + window.seen.other_errors
            seen = scaled_answers(seen, share, math.floor(settled * share))
        state.settled += seen.ok + seen.other_errors
        state.ok += seen.ok
        state.requests += seen.total
        state.throttled += seen.throttled
        self._report(state, seen, now)
        if state.settled >= state.lease.n_urls:
            self._report(state, Feedback(), now, force=True)  # the worker's last report
            self._complete(state, now)
            return True
        return False

    def _report(self, state: _Lease, seen: Feedback, now: float, *, force: bool = False) -> None:
        """As the workers do: answers that need action at once, clean ones at most every
        CLEAN_FEEDBACK_INTERVAL (they add up meanwhile) unless the rate is new."""
        state.unsent = state.unsent.merged(seen)
        clean_due = now - state.last_report >= CLEAN_FEEDBACK_INTERVAL or now < state.judged_until
        if not state.unsent.total or not (force or clean_due or needs_action(state.unsent)):
            return
        host = state.lease.server_name
        self._arrive(now, state.lease.worker, HostFeedbackReported(host, state.unsent))
        state.unsent = Feedback()
        if force or clean_due:
            state.last_report = now

    def _schedule(self, state: _Lease, at: float) -> None:
        state.next_tick = at
        self._push(at, "tick", state.lease.lease_id)

    def _complete(self, state: _Lease, at: float) -> None:
        lease = state.lease
        del self.leases[lease.lease_id]
        del self.by_host[lease.server_name][lease.lease_id]
        self.completed[(lease.server_name, lease.partition_id)] += 1
        self.finish_by_host[lease.server_name] = at
        stats = state.stats(at - state.started)
        self._arrive(at, lease.worker, PartitionCompleted(lease.lease_id, stats))
        self._arrive(at, lease.worker, WorkRequested(1))


def _pickled(data: Any) -> bytes:
    return data if isinstance(data, bytes) else pickle.dumps(data, pickle.HIGHEST_PROTOCOL)


def simulate_fleet(fleet: ScaleFleet, settings: SimSettings) -> SimResult:
    with tempfile.TemporaryDirectory(prefix="distdl-scale-") as workdir:
        return ScaleSim(fleet, settings, Path(workdir)).run()
