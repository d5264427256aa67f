"""Rank 0: leases server partitions to workers and owns every host's request budget.

The budget of a host is split among the leases open on it by the `LeaseScheduler`; the
workers only report what they saw, and rank 0 turns those reports into budgets (through
`HostBudgets`) and sends the resulting rate changes and pauses back out.

Two more things spend a host's budget, and rank 0 accounts for both:

* A worker redirected to a host asks for a share of its budget (``HostShareRequested``,
  answered by ``GrantShare``; a host never seen gets a budget here, learned like any);
  the share counts in the scheduler's invariant until ``HostShareReleased``.
* The first lease on a host reads its robots.txt; the worker reports the verdict
  (``RobotsRead``), which caps the budget (Crawl-delay, Request-rate) and ends the
  one-lease-at-a-time rule for a host whose robots.txt rank 0 had not heard yet.

A pause (Retry-After), or a refusal while several leases and shares hold a host, gives each
of them its own start slot, one budget interval apart (:mod:`distdl.core.start_slots`), so
they never come back to the host all at once; a holder opened meanwhile takes the next slot.

Rank 0 also watches the workers (:mod:`distdl.core.liveness`). It heartbeats each of them
and hears from each at least every second; a worker silent for ``silence_limit`` seconds,
or one that reports it stalled, is declared dead: its leases and shares go back to the
scheduler and are leased to the survivors, it is told to shut down (should it wake up), and
nothing it sends afterwards counts. Rank 0 never waits for a dead worker to stop. A run
with a dead rank fails (naming it) even when the survivors finished its work.

A signal stops the run (:mod:`distdl.core.stopping`): :meth:`Coordinator.request_stop`, on
rank 0's own signal or a worker's ``StopRequested``, stops the leasing and sends every
worker ``Stop``; rank 0 then waits for their reports until the plan's wait deadline.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from distdl.core.breaker import HostCause
from distdl.core.clock import Clock, MonotonicClock
from distdl.core.liveness import DEFAULT_SILENCE_LIMIT, HEARTBEAT_INTERVAL, Silence
from distdl.core.scheduler import Lease, LeaseScheduler, RateChange
from distdl.core.start_slots import HolderStart, StartSlots
from distdl.core.stopping import DEFAULT_GRACE, StopPlan, signal_name
from distdl.errors import RankFailure
from distdl.runtime.budgets import HostBudgets
from distdl.runtime.channel import Channel, receive
from distdl.runtime.messages import (
    AbandonHost,
    AssignPartition,
    ChangeRate,
    Dismiss,
    GrantShare,
    Heartbeat,
    HostDeclaredDead,
    HostFeedbackReported,
    HostShareReleased,
    HostShareRequested,
    LeaseProgressed,
    Message,
    PartitionCompleted,
    PartitionFailed,
    PartitionStats,
    PauseHolder,
    RobotsRead,
    Shutdown,
    Stop,
    StopRequested,
    WorkerCrashed,
    WorkerStalled,
    WorkerStopped,
    WorkRequested,
)
from distdl.runtime.progress import RunProgress
from distdl.testing import faults

log = logging.getLogger("distdl.coordinator")

SAVE_INTERVAL = 60.0  # seconds between writes of the learned rates: a crash loses little
SHUTDOWN_GRACE = 30.0  # seconds to wait for workers to stop after an abort
# The frequent messages that never make room for a lease (a feedback report that raises a
# budget says so itself).
_FREES_NOTHING = (Heartbeat, LeaseProgressed, HostFeedbackReported)


@dataclass
class HostTally:
    partitions: int = 0
    successes: int = 0
    errors: int = 0
    requests: int = 0
    throttled: int = 0
    first_start: float | None = None
    last_finish: float | None = None


@dataclass
class RunReport:
    partitions_completed: int = 0
    successes: int = 0
    errors: int = 0
    requests: int = 0
    throttled: int = 0
    bytes_downloaded: int = 0
    errors_by_code: Counter[int] = field(default_factory=Counter)
    hosts: dict[str, HostTally] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stopped_by: int | None = None  # the signal that stopped the run, if one did
    dead_ranks: dict[int, str] = field(default_factory=dict)  # rank -> why it was declared dead
    unreachable: dict[str, str] = field(default_factory=dict)  # host given up on -> why

    def add(self, server_name: str, stats: PartitionStats, now: float) -> None:
        self.partitions_completed += 1
        self.successes += stats.successes
        self.errors += stats.errors
        self.requests += stats.requests
        self.throttled += stats.throttled
        self.bytes_downloaded += stats.bytes_downloaded
        self.errors_by_code.update(stats.errors_by_code)
        host = self.hosts.setdefault(server_name, HostTally())
        host.partitions += 1
        host.successes += stats.successes
        host.errors += stats.errors
        host.requests += stats.requests
        host.throttled += stats.throttled
        host.last_finish = now


class Coordinator:
    def __init__(
        self,
        channel: Channel,
        workers: list[int],
        scheduler: LeaseScheduler,
        budgets: HostBudgets,
        *,
        silence_limit: float = DEFAULT_SILENCE_LIMIT,
        grace: float = DEFAULT_GRACE,
        progress: RunProgress | None = None,
        clock: Clock | None = None,
    ) -> None:
        """``progress``: where the live tally goes (state file, terminal); None: nowhere.
        ``clock``: the time rank 0 decides by (a simulated one in benchmarks/scale_sim.py)."""
        self._clock = clock or MonotonicClock()
        self._channel = channel
        self._progress = progress
        self._workers = list(workers)
        self._scheduler = scheduler
        self._budgets = budgets
        self._slots = StartSlots()
        self._wanted: Counter[int] = Counter()
        self._report = RunReport()
        self._lease_hosts: dict[int, str] = {}
        self._dead_hosts: dict[str, HostCause | None] = {}  # host -> why, when known
        self._started = self._clock.now()
        self._alive = set(workers)  # neither stopped nor declared dead
        self._silence = Silence(workers, self._started)
        self._silence_limit = silence_limit
        self._grace = grace
        self._stop: StopPlan | None = None
        self._stop_sent: StopPlan | None = None
        self._own_stop_signals = 0  # signals to this rank (workers count their own)
        self._shutdown_sent = False
        self._abort_deadline: float | None = None
        self._next_save = self._started + SAVE_INTERVAL
        self._next_heartbeat = self._started
        # Dealing leases scans every host: it is done only after an event that may have made
        # room (a request for work, a lease closed, a budget raised, a pause over), never
        # merely because workers still want leases no host can give.
        self._grant_due = True
        self._grant_wakeup: float | None = None

    @property
    def report(self) -> RunReport:
        return self._report

    @property
    def budgets(self) -> HostBudgets:
        return self._budgets

    def request_stop(self, signum: int, *, again: bool | None = None) -> None:
        """A stop signal: stop leasing. A second signal hurries the stop: ``again`` says
        whether this is one (by default, for a signal to this rank: whether this rank had
        one before). Not whether a stop is under way: one ``kill`` or ``scancel`` reaches
        every rank, and a worker's report of it may arrive before rank 0's own copy."""
        if again is None:
            self._own_stop_signals += 1
            again = self._own_stop_signals > 1
        now = self._clock.now()
        if self._stop is None:
            log.warning("%s: stopping; requests in flight may finish", signal_name(signum))
            self._stop = StopPlan.begin(signum, now, self._grace)
            self._report.stopped_by = signum
        elif again:
            log.warning("%s again: requests in flight are dropped", signal_name(signum))
            self._stop = self._stop.hurried(now)

    async def run(self) -> RunReport:
        """Lease until every partition is done, then shut the workers down.

        Raises RankFailure when a worker crashed or was declared dead, or partitions had to
        be given up: such a run never looks successful. A stopped run returns its report
        (``stopped_by`` set) once the workers reported or the grace is spent.
        """
        while self._alive:
            messages = await receive(self._channel, timeout=0.02)
            if not self.step(messages):
                break
        return self._finish()

    def step(self, messages: list[tuple[int, Message]]) -> bool:
        """One pass of rank 0's loop: handle ``messages`` (source, message), then do what is
        due (heartbeats, leases, stop, saves). False when the loop must end early (a stop or
        an abort waited long enough)."""
        self._silence.tick(self._clock.now())
        for source, message in messages:
            self._silence.heard(source)
            if source not in self._alive:
                continue  # declared dead: nothing it says counts any more
            if isinstance(message, WorkerStopped):
                self._alive.discard(source)
                self._silence.forget(source)
                self._channel.send(source, Dismiss())  # the last message it gets
            else:
                self._handle(source, message)
        now = self._clock.now()
        if now >= self._next_heartbeat:
            self._send_heartbeats()
            self._declare_silent_dead()
            self._next_heartbeat = now + HEARTBEAT_INTERVAL
        if self._stop is not None:
            self._send_stop(now)
            if now >= self._stop.wait_deadline:
                log.error("ranks %s did not stop in time", sorted(self._alive))
                return False
        else:
            if self._report.failures and self._abort_deadline is None:
                self._abort_deadline = now + SHUTDOWN_GRACE
                self._broadcast(Shutdown("abort"))
                self._shutdown_sent = True
            if self._abort_deadline is not None and now > self._abort_deadline:
                return False
            if not self._shutdown_sent:
                self._grant()
                if self._scheduler.finished:
                    self._broadcast(Shutdown())
                    self._shutdown_sent = True
        if self._progress is not None:
            self._progress.tick(now, self._budgets, self._scheduler, len(self._lease_hosts))
        if now >= self._next_save:
            self._budgets.save()
            self._next_save = now + SAVE_INTERVAL
        return True
        return self._finish()

    def _finish(self) -> RunReport:
        self._report.seconds = self._clock.now() - self._started
        self._report.failures.extend(
            f"partition {ref.server_name}/{ref.partition_id} given up after repeated failures"
            for ref in self._scheduler.given_up
        )
        self._report.failures.extend(self._report.dead_ranks.values())
        if self._report.dead_ranks and not self._scheduler.finished and self._stop is None:
            self._report.failures.append("no live worker rank is left to do the rest")
        if self._progress is not None:
            ended = "stopped" if self._report.stopped_by is not None else "finished"
            ended = "failed" if self._report.failures else ended
            self._progress.finish(self._clock.now(), self._budgets, self._scheduler, ended)
        if self._report.failures:
            raise RankFailure("; ".join(self._report.failures))
        return self._report

    def _broadcast(self, message: Shutdown) -> None:
        for worker in sorted(self._alive):
            self._channel.send(worker, message)

    def _send_heartbeats(self) -> None:
        for worker in sorted(self._alive):
            self._channel.send(worker, Heartbeat())

    def _send_stop(self, now: float) -> None:
        """Tell the workers to stop, once, and again if a second signal hurried the stop."""
        assert self._stop is not None
        if self._stop_sent is not None and self._stop_sent.settle_deadline <= (
            self._stop.settle_deadline
        ):
            return
        self._stop_sent = self._stop
        stop = Stop(self._stop.signum, self._stop.settle_seconds(now))
        for worker in sorted(self._alive):
            self._channel.send(worker, stop)

    def _declare_silent_dead(self) -> None:
        for worker in self._silence.silent_beyond(self._silence_limit):
            silent = self._silence.silent_for(worker)
            self._declare_dead(worker, f"rank {worker} sent nothing for {silent:.0f} s")

    def _declare_dead(self, worker: int, why: str) -> None:
        """Take back everything the worker held; the survivors get it."""
        released = self._scheduler.release_worker(worker)
        for lease in released:
            self._lease_hosts.pop(lease.lease_id, None)
            if self._progress is not None:
                self._progress.lease_dropped(lease.lease_id)
        self._alive.discard(worker)
        self._silence.forget(worker)
        self._wanted.pop(worker, None)
        self._grant_due = True
        self._channel.send(worker, Shutdown("declared dead"))  # should it wake up
        message = f"{why}: declared dead, its {len(released)} partitions leased to other ranks"
        log.error("%s", message)
        self._report.dead_ranks[worker] = message

    def _grant(self) -> None:
        """Deal leases one per worker per round, so the critical hosts (and the load) are
        spread over the ranks instead of all landing on the first one that asked."""
        now = self._clock.now()
        wakeup = self._grant_wakeup
        if not self._grant_due and (wakeup is None or now < wakeup):
            return
        self._grant_due = False
        wanted = {worker: self._wanted[worker] for worker in self._workers}
        for lease in self._scheduler.deal(wanted, now):
            self._assign(lease.worker, lease, now)
        self._grant_wakeup = self._scheduler.next_wakeup(now)

    def _assign(self, worker: int, lease: Lease, now: float) -> None:
        self._wanted[worker] -= 1
        self._lease_hosts[lease.lease_id] = lease.server_name
        tally = self._report.hosts.setdefault(lease.server_name, HostTally())
        if tally.first_start is None:
            tally.first_start = now - self._started
        log.debug(
            "lease %d: %s/%d -> rank %d at %.2f req/s",
            lease.lease_id,
            lease.server_name,
            lease.partition_id,
            worker,
            lease.rate,
        )
        dead = lease.server_name in self._dead_hosts
        faults.hit("lease.granted")
        start_after = self._join(lease, now)
        cause = self._dead_hosts.get(lease.server_name)
        self._channel.send(worker, AssignPartition(lease, dead, start_after, cause))

    def _join(self, holder: Lease, now: float) -> float:
        """Start slots once ``holder`` (a lease or share) opened: the others' new slots are
        sent; its own is returned, as the seconds it waits for it (0: it may start at once)."""
        host = holder.server_name
        holders = self._scheduler.holders(host)
        starts = self._slots.join(host, holder, holders, self._scheduler.budget(host), now)
        others = [start for start in starts if start.lease_id != holder.lease_id]
        self._send_starts(host, others, now)
        own = [start.at - now for start in starts if start.lease_id == holder.lease_id]
        return own[0] if own else 0.0

    def _send_starts(self, host: str, starts: list[HolderStart], now: float) -> None:
        for start in starts:
            pause = PauseHolder(host, start.lease_id, start.at - now)
            self._channel.send(start.worker, pause)

    def _send_rate_changes(self, changes: list[RateChange]) -> None:
        for change in changes:
            self._channel.send(change.worker, ChangeRate(change.lease_id, change.rate))

    def _handle(self, source: int, message: object) -> None:
        now = self._clock.now()
        if not isinstance(message, _FREES_NOTHING):
            self._grant_due = True  # it may have made room for a lease: deal again
        if isinstance(message, WorkRequested):
            self._wanted[source] += message.free_slots
        elif isinstance(message, HostFeedbackReported):
            self._apply_feedback(message, now)
        elif isinstance(message, LeaseProgressed):
            host = self._lease_hosts.get(message.lease_id)
            if host is not None and self._progress is not None:
                self._progress.lease_reported(message.lease_id, host, message.stats)
        elif isinstance(message, PartitionCompleted):
            host = self._lease_hosts.pop(message.lease_id)
            self._report.add(host, message.stats, now - self._started)
            lease = self._scheduler.lease(message.lease_id)
            if self._progress is not None and lease is not None:
                self._progress.lease_completed(lease.lease_id, host, lease.n_urls, message.stats)
            self._send_rate_changes(self._scheduler.complete(message.lease_id))
        elif isinstance(message, PartitionFailed):
            host = self._lease_hosts.pop(message.lease_id)
            log.error("rank %d: partition on %s failed: %s", source, host, message.cause)
            if self._progress is not None:
                self._progress.lease_dropped(message.lease_id)
            requeued, changes = self._scheduler.fail(message.lease_id, now)
            self._send_rate_changes(changes)
            if not requeued:
                self._report.failures.append(f"{host}: {message.cause}")
        elif isinstance(message, HostDeclaredDead):
            self._abandon(message.server_name, source, message.cause)
        elif isinstance(message, HostShareRequested):
            self._grant_share(source, message.server_name, now)
        elif isinstance(message, HostShareReleased):
            self._send_rate_changes(self._scheduler.close_share(message.lease_id))
        elif isinstance(message, RobotsRead):
            self._apply_robots(message, now)
        elif isinstance(message, Heartbeat):
            pass  # hearing it is all it is for
        elif isinstance(message, StopRequested):
            self.request_stop(message.signum, again=message.again)
        elif isinstance(message, WorkerStalled):
            why = f"rank {source} was stalled for {message.seconds:.0f} s and dropped its leases"
            self._declare_dead(source, why)
        elif isinstance(message, WorkerCrashed):
            log.error("rank %d crashed: %s\n%s", source, message.cause, message.traceback)
            self._report.failures.append(f"rank {source} crashed: {message.cause}")
        else:
            raise TypeError(f"coordinator got an unexpected message {message!r}")

    def _abandon(self, host: str, reporter: int, cause: HostCause | None) -> None:
        if host in self._dead_hosts:
            return
        why = cause.message if cause is not None else "no cause known"
        log.warning(
            "rank %d gave up on %s (%s): its remaining URLs become error rows", reporter, host, why
        )
        self._dead_hosts[host] = cause
        self._budgets.mark_unreachable(host, cause)
        self._report.unreachable[host] = why
        if self._progress is not None:
            self._progress.host_unreachable(host, why)
        for worker in self._holders(host):
            if worker != reporter:
                self._channel.send(worker, AbandonHost(host, cause))

    def _holders(self, host: str) -> list[int]:
        """The workers holding a lease or a share on the host."""
        return sorted({lease.worker for lease in self._scheduler.holders(host)})

    def _grant_share(self, worker: int, host: str, now: float) -> None:
        if not self._budgets.knows(host):
            log.info("%s: a redirect target never seen before; it gets a budget", host)
            self._send_rate_changes(self._scheduler.set_budget(host, self._budgets.add(host, now)))
        self._budgets.expect_redirects(host)
        share, changes = self._scheduler.open_share(worker, host)
        self._send_rate_changes(changes)  # room first: the host never goes over its budget
        log.debug("share %d: %s -> rank %d at %.2f req/s", share.lease_id, host, worker, share.rate)
        unreachable = host in self._dead_hosts
        start_after = self._join(share, now)
        cause = self._dead_hosts.get(host)
        grant = GrantShare(host, share.lease_id, share.rate, unreachable, start_after, cause)
        self._channel.send(worker, grant)

    def _apply_robots(self, message: RobotsRead, now: float) -> None:
        host = message.server_name
        rate = self._budgets.apply_robots(host, message.rate_cap, message.crawl_delay, now)
        if rate is not None:
            self._send_rate_changes(self._scheduler.set_budget(host, rate))
        self._scheduler.mark_verified(host)

    def _apply_feedback(self, message: HostFeedbackReported, now: float) -> None:
        host = message.server_name
        decision = self._budgets.observe(host, message.feedback, now)
        if self._progress is not None:
            self._progress.answers_seen(host, message.feedback)
        if log.isEnabledFor(logging.DEBUG):  # thousands of reports a second on big runs
            rate = self._budgets.rate(host)
            log.debug("feedback %s: %s -> budget %.2f req/s", host, message.feedback, rate)
        budget_before = self._scheduler.budget(host)
        # Slots are spaced by the budget the host is about to have (a cut comes with pauses).
        budget = budget_before if decision.rate is None else decision.rate
        if decision.pause_seconds:
            until = now + decision.pause_seconds
            self._scheduler.pause_host(host, until)
            self._grant_due = True  # the deal after it learns when the pause ends
            holders = self._scheduler.holders(host)
            self._send_starts(host, self._slots.spread(host, holders, budget, now, until), now)
        elif message.feedback.rate_limited:
            holders = self._scheduler.holders(host)
            self._send_starts(host, self._slots.spread(host, holders, budget, now), now)
        if decision.rate is not None:
            # A raise may make room for a lease (a lower budget never does: every rate and
            # the fair share scale down together).
            self._grant_due = self._grant_due or decision.rate > budget_before
            self._send_rate_changes(self._scheduler.set_budget(host, decision.rate))
