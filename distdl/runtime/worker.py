"""A worker rank: holds leases on several hosts at once and downloads them concurrently.

It only talks to rank 0 through its channel: it asks for work when slots free up, reports
each partition's outcome, and reports what it saw of each host so rank 0 can set budgets.
A lease reads its host's robots.txt through its own gate before any other request (once per
host and worker, see :mod:`distdl.runtime.host_access`); redirect hops to other hosts go
through shares of those hosts' budgets, which the same module asks for and gives back.

Liveness (:mod:`distdl.core.liveness`): the worker heartbeats rank 0 every second. A worker
whose own loop was away long enough to have been declared dead (a SIGSTOP, a stalled node)
writes nothing more: it drops its leases unwritten, says so (``WorkerStalled``) and stops;
so does a worker told it was declared dead. A worker that hears nothing from rank 0 for
the silence limit gives up (RankFailure) instead of waiting forever.

A stop (a signal here, or ``Stop`` from rank 0; :mod:`distdl.core.stopping`) takes no more
leases, lets each lease's requests in flight settle until the settle deadline, then
publishes every partition's settled rows: with the marker when all rows are settled,
without it otherwise (the carry-over finishes the partition later).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from distdl.config import DownloaderParameters
from distdl.core.breaker import CircuitBreaker
from distdl.core.liveness import (
    DEFAULT_SILENCE_LIMIT,
    HEARTBEAT_INTERVAL,
    Silence,
    may_be_declared_dead,
)
from distdl.core.redirects import AddressPolicy, GlobalAddresses
from distdl.core.scheduler import Lease
from distdl.core.stopping import signal_name
from distdl.errors import RankFailure
from distdl.image.pipeline import ImageOptions
from distdl.io.atomic import remove_stale_temps
from distdl.io.carry_over import carry_over
from distdl.io.markers import is_completed
from distdl.io.partition_writer import PartitionOutput
from distdl.layout import Layout
from distdl.net.addresses import AddressLookup
from distdl.net.fetcher import Fetcher
from distdl.plan.partition_files import read_url_partition
from distdl.runtime.channel import Channel, receive
from distdl.runtime.feedback import FeedbackBook
from distdl.runtime.host_access import AccessSettings, HostAccess, HostRoute
from distdl.runtime.host_gate import HostGate
from distdl.runtime.image_stage import ImageStage
from distdl.runtime.lease_runner import LeasePolicy, LeaseRunner
from distdl.runtime.messages import (
    AbandonHost,
    AssignPartition,
    ChangeRate,
    Dismiss,
    GrantShare,
    Heartbeat,
    HostFeedbackReported,
    LeaseProgressed,
    PartitionCompleted,
    PartitionFailed,
    PartitionStats,
    PauseHolder,
    Shutdown,
    Stop,
    StopRequested,
    WorkerCrashed,
    WorkerStalled,
    WorkerStopped,
    WorkRequested,
)
from distdl.schema import successes_schema
from distdl.testing import faults

log = logging.getLogger("distdl.worker")
events = logging.getLogger("distdl.events")  # one line per lease and partition: the file only
T = TypeVar("T")

COORDINATOR = 0
FEEDBACK_INTERVAL = 0.25  # seconds: rank 0 must hear of a 429 burst well within a second
# Seconds between reports of answers that ask nothing (all OK): rank 0 judges a host's rate
# every 0.5 s at most, and its load grows with every report of every host of every rank.
CLEAN_FEEDBACK_INTERVAL = 1.0
PROGRESS_INTERVAL = 1.0  # seconds between reports of the rows each open lease settled


@dataclass(frozen=True)
class WorkerSettings:
    leases_per_worker: int
    max_in_flight_per_host: int
    image_options: ImageOptions
    policy: LeasePolicy
    retry_codes: frozenset[int] = frozenset()
    breaker_threshold: int = 5
    breaker_cooldown: float = 5.0
    breaker_max_probes: int = 4
    # Which addresses are public, for the redirect safety check (core.redirects).
    address_policy: AddressPolicy = field(default_factory=GlobalAddresses)
    silence_limit: float = DEFAULT_SILENCE_LIMIT  # seconds without a word: a rank is dead

    def new_breaker(self, rng: random.Random) -> CircuitBreaker:
        return CircuitBreaker(
            threshold=self.breaker_threshold,
            base_cooldown=self.breaker_cooldown,
            max_cooldown=max(300.0, self.breaker_cooldown),
            max_probes=self.breaker_max_probes,
            rng=rng,
        )

    @classmethod
    def from_params(
        cls,
        params: DownloaderParameters,
        policy: LeasePolicy,
        retry_codes: frozenset[int],
        address_policy: AddressPolicy,
    ) -> WorkerSettings:
        return cls(
            leases_per_worker=params.leases_per_worker,
            max_in_flight_per_host=params.max_in_flight_per_host,
            image_options=ImageOptions.from_config(params),
            policy=policy,
            retry_codes=retry_codes,
            breaker_threshold=params.host_failure_threshold,
            breaker_cooldown=params.host_cooldown,
            breaker_max_probes=params.host_max_probes,
            address_policy=address_policy,
            silence_limit=params.rank_silence_limit,
        )


class _Fenced(Exception):
    """This worker may have been declared dead: it must not write its partitions."""


@dataclass(frozen=True)
class WorkerNetwork:
    """The network adapter's parts a worker uses (all sharing one session)."""

    fetcher: Fetcher
    robots_fetcher: Fetcher
    lookup: AddressLookup


class Worker:
    def __init__(
        self,
        channel: Channel,
        layout: Layout,
        settings: WorkerSettings,
        network: WorkerNetwork,
        images: ImageStage,
        rng: random.Random | None = None,
        *,
        fence_after_stall: bool = True,
    ) -> None:
        """``fence_after_stall``: whether a stall may have let rank 0 declare this worker
        dead (not when both share one process and one loop: then rank 0 stalled too)."""
        self._channel = channel
        self._layout = layout
        self._settings = settings
        self._fetcher = network.fetcher
        self._images = images
        self._rng = rng or random.Random()
        self._fence_after_stall = fence_after_stall
        self._feedback = FeedbackBook()
        self._gates: dict[int, HostGate] = {}
        self._leases: dict[int, Lease] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._runners: dict[int, LeaseRunner] = {}
        self._silence = Silence([COORDINATOR], 0.0)  # started again when serving starts
        self._fenced = False  # once set, nothing more is written
        self._dismissed = False  # rank 0 sends nothing more
        self._stopped_by: int | None = None
        self._stop_signals = 0
        self._settle_deadline: float | None = None
        access_settings = AccessSettings(
            settings.max_in_flight_per_host,
            settings.policy.user_agent_token,
            settings.address_policy,
        )
        self._access = HostAccess(
            channel,
            layout,
            access_settings,
            network.robots_fetcher,
            network.lookup,
            self._feedback,
            lambda: settings.new_breaker(self._rng),
        )

    @property
    def stopped_by(self) -> int | None:
        """The signal that stopped this worker (its own, or rank 0's ``Stop``), if one did."""
        return self._stopped_by

    def request_stop(self, signum: int) -> None:
        """A stop signal reached this rank: rank 0 is told, and leasing stops here now."""
        self._stop_signals += 1
        self._channel.send(COORDINATOR, StopRequested(signum, again=self._stop_signals > 1))
        if self._stop_signals > 1:
            self._settle_deadline = asyncio.get_running_loop().time()
        self._begin_stop(signum)

    async def run(self) -> None:
        """Serve rank 0 until it says Shutdown or a stop is done; any exception is reported,
        then re-raised."""
        try:
            await self._serve()
        except Exception as exc:
            self._channel.send(
                COORDINATOR, WorkerCrashed(f"{type(exc).__name__}: {exc}", traceback.format_exc())
            )
            raise
        finally:
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            self._channel.send(COORDINATOR, WorkerStopped())
            await self._dismissal()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        limit = self._settings.silence_limit
        self._silence = Silence([COORDINATOR], loop.time())
        events.info("worker ready leases=%d", self._settings.leases_per_worker)
        self._channel.send(COORDINATOR, WorkRequested(self._settings.leases_per_worker))
        next_report = loop.time() + FEEDBACK_INTERVAL
        next_clean_report = loop.time() + CLEAN_FEEDBACK_INTERVAL
        next_progress = loop.time() + PROGRESS_INTERVAL
        next_heartbeat = loop.time()
        while True:
            messages = await receive(self._channel, timeout=FEEDBACK_INTERVAL / 2)
            stall = self._silence.tick(loop.time())
            if self._fence_after_stall and may_be_declared_dead(stall, limit):
                self._fence(f"this rank was stalled for {stall:.0f} s")
                self._channel.send(COORDINATOR, WorkerStalled(stall))
                return
            for _, message in messages:
                self._silence.heard(COORDINATOR)
                if isinstance(message, Shutdown):
                    if message.reason == "declared dead":
                        self._fence("rank 0 declared this rank dead")
                        self._dismissed = True  # the last message rank 0 sends a dead rank
                        return
                    self._send_feedback()
                    return
                self._handle(message)
            if self._stopped_by is not None and not self._tasks:
                self._send_feedback()
                return  # every partition committed what it settled
            if self._settle_deadline is not None and loop.time() >= self._settle_deadline:
                for task in self._tasks.values():
                    task.cancel()  # what is still in flight is dropped; settled rows are kept
            if loop.time() >= next_report:
                clean_too = loop.time() >= next_clean_report
                self._send_feedback(clean_too=clean_too, now=loop.time())
                if clean_too:
                    next_clean_report = loop.time() + CLEAN_FEEDBACK_INTERVAL
                self._access.release_idle(loop.time())
                next_report = loop.time() + FEEDBACK_INTERVAL
            if loop.time() >= next_progress:
                if self._send_progress():
                    # Rank 0 heard from this rank: a heartbeat would tell it nothing more.
                    next_heartbeat = loop.time() + HEARTBEAT_INTERVAL
                next_progress = loop.time() + PROGRESS_INTERVAL
            if loop.time() >= next_heartbeat:
                self._channel.send(COORDINATOR, Heartbeat())
                next_heartbeat = loop.time() + HEARTBEAT_INTERVAL
            if self._silence.silent_for(COORDINATOR) >= limit:
                self._fence("rank 0 is silent")
                raise RankFailure(
                    f"rank 0 sent nothing for {limit:.0f} s: this rank gives up; "
                    "its partitions were not written"
                )

    def _fence(self, why: str) -> None:
        """Write nothing more: leases are dropped unwritten (their rows are fetched again)."""
        log.error("%s: its partitions may have gone to other ranks; writing nothing more", why)
        self._fenced = True
        for task in self._tasks.values():
            task.cancel()

    async def _dismissal(self) -> None:
        """Read (and ignore) what is still on its way here until rank 0 sends nothing more:
        ``Dismiss``, or ``Shutdown`` of a rank it declared dead; or it has been silent for
        the limit. Under MPICH a rank that ends while messages are on their way to it can
        bring the whole job down."""
        loop = asyncio.get_running_loop()
        limit = self._settings.silence_limit
        while not self._dismissed and self._silence.silent_for(COORDINATOR) < limit:
            messages = await receive(self._channel, timeout=FEEDBACK_INTERVAL / 2)
            self._silence.tick(loop.time())
            for _, message in messages:
                self._silence.heard(COORDINATOR)
                dead = isinstance(message, Shutdown) and message.reason == "declared dead"
                self._dismissed = self._dismissed or dead or isinstance(message, Dismiss)

    def _begin_stop(self, signum: int) -> None:
        if self._stopped_by is None:
            log.info("%s: stopping; requests in flight may finish", signal_name(signum))
            self._stopped_by = signum
        for runner in self._runners.values():
            runner.stop()

    def _may_write(self) -> bool:
        """Not fenced, and not just back from a stall long enough to have been declared
        dead (a lease task may run before the serving loop notices)."""
        if self._fenced:
            return False
        stall = self._silence.stalled_since_tick(asyncio.get_running_loop().time())
        return not (
            self._fence_after_stall and may_be_declared_dead(stall, self._settings.silence_limit)
        )

    def _handle(self, message: object) -> None:
        if isinstance(message, AssignPartition):
            if self._stopped_by is not None:
                return  # leased before rank 0 heard of the stop: the partition stays undone
            lease = message.lease
            if message.host_unreachable:
                self._access.breaker(lease.server_name).declare_dead(message.cause)
            self._leases[lease.lease_id] = lease
            rate = min(lease.rate, self._access.rate_cap(lease.server_name))
            gate = HostGate(
                rate,
                self._settings.max_in_flight_per_host,
                lease.server_name,
                self._access.starts,
            )
            if message.start_after > 0:
                gate.resume_in(message.start_after)  # its start slot (core.start_slots)
            self._gates[lease.lease_id] = gate
            # A new lease's first answers judge its rate, as after a change.
            self._feedback.rate_changed(lease.server_name, asyncio.get_running_loop().time())
            events.info(
                "lease host=%s partition=%d rows=%d rate=%.2f",
                lease.server_name,
                lease.partition_id,
                lease.n_urls,
                rate,
            )
            task = asyncio.get_running_loop().create_task(self._run_lease(lease))
            self._tasks[lease.lease_id] = task
        elif isinstance(message, GrantShare):
            self._access.granted(message)
        elif isinstance(message, ChangeRate):
            self._change_rate(message)
        elif isinstance(message, AbandonHost):
            self._access.breaker(message.server_name).declare_dead(message.cause)
        elif isinstance(message, Stop):
            self._begin_stop(message.signum)
            deadline = asyncio.get_running_loop().time() + message.settle_seconds
            self._settle_deadline = min(deadline, self._settle_deadline or deadline)
        elif isinstance(message, Heartbeat):
            pass  # hearing it is all it is for
        elif isinstance(message, PauseHolder):
            gate = self._gates.get(message.lease_id)
            if gate is not None:
                gate.resume_in(message.seconds)
            else:
                self._access.resume_share(message.lease_id, message.seconds)
        else:
            raise TypeError(f"worker got an unexpected message {message!r}")

    def _change_rate(self, message: ChangeRate) -> None:
        gate = self._gates.get(message.lease_id)
        lease = self._leases.get(message.lease_id)
        if gate is not None and lease is not None:
            # Rank 0 may not have heard the host's robots.txt yet: its cap holds regardless.
            gate.set_rate(min(message.rate, self._access.rate_cap(lease.server_name)))
            self._feedback.rate_changed(lease.server_name, asyncio.get_running_loop().time())
        else:
            self._access.change_rate(message.lease_id, message.rate)

    def _send_progress(self) -> int:
        """Report every open lease's progress; how many were reported."""
        for lease_id, runner in self._runners.items():
            self._channel.send(COORDINATOR, LeaseProgressed(lease_id, runner.progress()))
        return len(self._runners)

    def _send_feedback(self, *, clean_too: bool = True, now: float = math.inf) -> None:
        drained = self._feedback.drain(clean_too=clean_too, now=now)
        for server_name, feedback in drained.items():
            self._channel.send(COORDINATOR, HostFeedbackReported(server_name, feedback))

    async def _run_lease(self, lease: Lease) -> None:
        try:
            stats = await self._download_partition(lease)
        except asyncio.CancelledError:
            raise
        except _Fenced:
            pass  # rank 0 hears nothing more of it: it counts this rank as dead
        except Exception as exc:
            if self._fenced:
                # Declared dead while it worked: what it was writing is another rank's now,
                # and rank 0 hears nothing more of it.
                log.warning(
                    "partition %s/%d abandoned after fencing: %s",
                    lease.server_name,
                    lease.partition_id,
                    exc,
                )
                return
            # One line where people look; the traceback in the rank's log file only.
            log.error(
                "partition %s/%d failed: %s: %s",
                lease.server_name,
                lease.partition_id,
                type(exc).__name__,
                exc,
            )
            log.debug(
                "partition %s/%d traceback:\n%s",
                lease.server_name,
                lease.partition_id,
                traceback.format_exc(),
            )
            self._send_feedback()
            self._channel.send(
                COORDINATOR, PartitionFailed(lease.lease_id, f"{type(exc).__name__}: {exc}")
            )
        else:
            # Feedback first: rank 0 must see this lease's last observations before it
            # hands the freed budget to someone else.
            self._send_feedback()
            if stats is not None:
                events.info(
                    "partition done host=%s partition=%d images=%d errors=%d requests=%d "
                    "seconds=%.1f",
                    lease.server_name,
                    lease.partition_id,
                    stats.successes,
                    stats.errors,
                    stats.requests,
                    stats.seconds,
                )
                self._channel.send(COORDINATOR, PartitionCompleted(lease.lease_id, stats))
        finally:
            self._leases.pop(lease.lease_id, None)
            self._gates.pop(lease.lease_id, None)
            self._tasks.pop(lease.lease_id, None)
            self._access.lease_ended(lease.lease_id)
        if self._stopped_by is None and not self._fenced:
            self._channel.send(COORDINATOR, WorkRequested(1))

    async def _download_partition(self, lease: Lease) -> PartitionStats | None:
        """Download and commit the partition; None when a stop left rows of it unsettled
        (the settled ones are published without a marker)."""
        directory = self._layout.image_partition_dir(lease.server_name, lease.partition_id)
        if is_completed(directory):  # done by an earlier lease whose report was lost
            return PartitionStats()
        faults.hit("lease.started", directory)
        directory.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(directory)
        urls = read_url_partition(self._layout, lease.server_name, lease.partition_id)
        # Taken before carry-over, which may leave nothing to fetch (a crash after the files
        # of a commit were renamed but before its marker was written).
        sample_url = urls["identifier"][0].as_py()
        output = PartitionOutput(
            directory, planned_rows=urls.num_rows, successes_schema=successes_schema(urls.schema)
        )
        carried: int | None = None  # rows copied from earlier files, once all are copied
        try:
            settled = await self._carry_over(directory, output)
            carried = output.successes.num_rows + output.errors.num_rows
            if settled:
                urls = urls.filter(pc.invert(pc.is_in(urls["uuid"], pa.array(list(settled)))))
            gate = self._gates[lease.lease_id]
            # robots.txt first, through this lease's gate: nothing else is sent to the host
            # before its rules (and its Crawl-delay) are known.
            guards, robots_requests = await self._access.guards(lease.server_name, sample_url, gate)
            gate.set_rate(min(gate.rate, self._access.rate_cap(lease.server_name)))
            runner = LeaseRunner(
                lease,
                urls,
                HostRoute(lease.server_name, gate, guards, robots_requests),
                self._access,
                self._fetcher,
                self._images,
                output,
                self._settings.policy,
                self._feedback,
                self._rng,
            )
            self._runners[lease.lease_id] = runner
            if self._stopped_by is not None:
                runner.stop()
            stats = await runner.run()
        except asyncio.CancelledError:
            self._save_settled(lease, output, carried)
            raise
        except BaseException:
            output.abort()
            raise
        finally:
            self._runners.pop(lease.lease_id, None)
        if output.successes.num_rows + output.errors.num_rows < (output.planned_rows or 0):
            self._save_settled(lease, output, carried)
            return None
        faults.hit("lease.settled", directory)
        if not self._may_write():
            output.abort()
            raise _Fenced(f"partition {lease.server_name}/{lease.partition_id} not written")
        summary = {
            "server_name": lease.server_name,
            "partition_id": lease.partition_id,
            "successes": stats.successes,
            "errors": stats.errors,
            "requests": stats.requests,
            "seconds": round(stats.seconds, 3),
        }
        await _in_thread(output.commit, summary)
        return stats

    async def _carry_over(self, directory: Path, output: PartitionOutput) -> set[str]:
        """The carry-over, in a thread: reading back a big partition's images must not hold
        the loop (and its heartbeats) for seconds. A cancellation waits for it to end."""
        return await _in_thread(carry_over, directory, output, self._settings.retry_codes)

    def _save_settled(self, lease: Lease, output: PartitionOutput, carried: int | None) -> None:
        """On a stop, publish the rows settled so far (no marker); otherwise drop them."""
        rows = output.successes.num_rows + output.errors.num_rows
        if self._stopped_by is None or carried is None or rows == carried or not self._may_write():
            output.abort()
            return
        output.commit_settled()
        log.info(
            "partition %s/%d stopped with %d of %d rows settled; resume finishes it",
            lease.server_name,
            lease.partition_id,
            rows,
            output.planned_rows,
        )


async def _in_thread(action: Callable[..., T], *args: object) -> T:
    """``action(*args)`` in a thread: reading back or writing and fsyncing a partition's
    files must not hold the loop, whose decoders would run dry (and whose heartbeats would
    wait) for as long. A cancellation waits for the thread, which owns the files until it
    ends."""
    running = asyncio.get_running_loop().run_in_executor(None, action, *args)
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        await asyncio.wait({running})
        raise
