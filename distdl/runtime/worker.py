"""A worker rank: holds leases on several hosts at once and downloads them concurrently.

It only talks to rank 0 through its channel: it asks for work when slots free up, reports
each partition's outcome, and reports what it saw of each host so rank 0 can set budgets.
"""

from __future__ import annotations

import asyncio
import logging
import random
import traceback
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from distdl.config import DownloaderParameters
from distdl.core.breaker import CircuitBreaker
from distdl.core.robots import RobotsRules
from distdl.core.scheduler import Lease
from distdl.image.pipeline import ImageFailure, ImageOptions, ProcessedImage, process_image
from distdl.io.atomic import remove_stale_temps
from distdl.io.carry_over import carry_over
from distdl.io.markers import is_completed
from distdl.io.partition_writer import PartitionOutput
from distdl.io.robots_store import RobotsAnswer, load_robots, save_robots
from distdl.layout import Layout
from distdl.net.fetcher import Fetcher
from distdl.net.probe import origin
from distdl.plan.planner import read_url_partition
from distdl.runtime.channel import Channel, receive
from distdl.runtime.feedback import FeedbackBook
from distdl.runtime.host_gate import HostGate
from distdl.runtime.lease_runner import HostGuards, LeasePolicy, LeaseRunner
from distdl.runtime.messages import (
    AbandonHost,
    AssignPartition,
    ChangeRate,
    HostDeclaredDead,
    HostFeedbackReported,
    PartitionCompleted,
    PartitionFailed,
    PartitionStats,
    PauseHost,
    Shutdown,
    WorkerCrashed,
    WorkerStopped,
    WorkRequested,
)

log = logging.getLogger("distdl.worker")

COORDINATOR = 0
FEEDBACK_INTERVAL = 0.25  # seconds: rank 0 must hear of a 429 burst well within a second


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
        cls, params: DownloaderParameters, policy: LeasePolicy, retry_codes: frozenset[int]
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
        )


class Worker:
    def __init__(
        self,
        channel: Channel,
        layout: Layout,
        settings: WorkerSettings,
        fetcher: Fetcher,
        fetch_robots: Callable[[str], Awaitable[RobotsAnswer]],
        executor: Executor,
        rng: random.Random | None = None,
    ) -> None:
        self._channel = channel
        self._layout = layout
        self._settings = settings
        self._fetcher = fetcher
        self._fetch_robots = fetch_robots
        self._executor = executor
        self._rng = rng or random.Random()
        self._feedback = FeedbackBook()
        self._gates: dict[int, HostGate] = {}
        self._leases: dict[int, Lease] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._breakers: dict[str, CircuitBreaker] = {}

    async def run(self) -> None:
        """Serve rank 0 until it says Shutdown; any exception is reported, then re-raised."""
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

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._channel.send(COORDINATOR, WorkRequested(self._settings.leases_per_worker))
        next_report = loop.time() + FEEDBACK_INTERVAL
        while True:
            for _, message in await receive(self._channel, timeout=FEEDBACK_INTERVAL / 2):
                if isinstance(message, Shutdown):
                    self._send_feedback()
                    return
                self._handle(message)
            if loop.time() >= next_report:
                self._send_feedback()
                next_report = loop.time() + FEEDBACK_INTERVAL

    def _handle(self, message: object) -> None:
        if isinstance(message, AssignPartition):
            lease = message.lease
            if message.host_unreachable:
                self._breaker(lease.server_name).declare_dead()
            self._leases[lease.lease_id] = lease
            self._gates[lease.lease_id] = HostGate(
                lease.rate, self._settings.max_in_flight_per_host
            )
            task = asyncio.get_running_loop().create_task(self._run_lease(lease))
            self._tasks[lease.lease_id] = task
        elif isinstance(message, ChangeRate):
            gate = self._gates.get(message.lease_id)
            if gate is not None:
                gate.set_rate(message.rate)
        elif isinstance(message, AbandonHost):
            self._breaker(message.server_name).declare_dead()
        elif isinstance(message, PauseHost):
            for lease_id, lease in self._leases.items():
                if lease.server_name == message.server_name:
                    self._gates[lease_id].pause(message.seconds)
        else:
            raise TypeError(f"worker got an unexpected message {message!r}")

    def _breaker(self, server_name: str) -> CircuitBreaker:
        # One per host, outliving leases: a host that died for one partition is not
        # rediscovered dead, timeout by timeout, for the next.
        if server_name not in self._breakers:
            self._breakers[server_name] = self._settings.new_breaker(self._rng)
        return self._breakers[server_name]

    async def _guards(self, server_name: str, sample_url: str) -> HostGuards:
        breaker = self._breaker(server_name)

        def report_dead() -> None:
            log.warning("%s: circuit breaker gave up on the host", server_name)
            self._channel.send(COORDINATOR, HostDeclaredDead(server_name))

        dead = breaker.state(asyncio.get_running_loop().time()) == "dead"
        answer = load_robots(self._layout, server_name)
        if answer is None and not dead:
            # Never asked, or nobody answered long ago (this is also how --retry-errors -32
            # gives an unreachable host its second chance): ask now.
            answer = await self._fetch_robots(origin(sample_url))
            save_robots(self._layout, server_name, *answer)
        if answer is not None and answer[0] is None and not dead:
            breaker.declare_dead()
            report_dead()
        status, text = answer or (None, None)
        # RFC 9309 forbids crawling a host whose robots.txt is unreachable; its rows become
        # HOST_UNREACHABLE (retryable), not ROBOTS_DISALLOWED, since the host, not a rule, failed.
        robots = (
            RobotsRules.allow_everything()
            if status is None
            else RobotsRules.from_response(status, text)
        )
        return HostGuards(robots=robots, breaker=breaker, on_dead=report_dead)

    def _send_feedback(self) -> None:
        for server_name, feedback in self._feedback.drain().items():
            self._channel.send(COORDINATOR, HostFeedbackReported(server_name, feedback))

    async def _run_lease(self, lease: Lease) -> None:
        try:
            stats = await self._download_partition(lease)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error(
                "partition %s/%d failed: %s",
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
            self._channel.send(COORDINATOR, PartitionCompleted(lease.lease_id, stats))
        finally:
            self._leases.pop(lease.lease_id, None)
            self._gates.pop(lease.lease_id, None)
            self._tasks.pop(lease.lease_id, None)
        self._channel.send(COORDINATOR, WorkRequested(1))

    async def _download_partition(self, lease: Lease) -> PartitionStats:
        directory = self._layout.image_partition_dir(lease.server_name, lease.partition_id)
        if is_completed(directory):  # done by an earlier lease whose report was lost
            return PartitionStats()
        directory.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(directory)
        urls = read_url_partition(self._layout, lease.server_name, lease.partition_id)
        # Taken before carry-over, which may leave nothing to fetch (a crash after the files
        # of a commit were renamed but before its marker was written).
        sample_url = urls["identifier"][0].as_py()
        output = PartitionOutput(directory, planned_rows=urls.num_rows)
        settled = carry_over(directory, output, self._settings.retry_codes)
        if settled:
            urls = urls.filter(pc.invert(pc.is_in(urls["uuid"], pa.array(list(settled)))))
        runner = LeaseRunner(
            lease,
            urls,
            self._gates[lease.lease_id],
            self._fetcher,
            self._image_processor(),
            output,
            self._settings.policy,
            self._feedback,
            self._rng,
            await self._guards(lease.server_name, sample_url),
        )
        try:
            stats = await runner.run()
        except BaseException:
            output.abort()
            raise
        output.commit(
            {
                "server_name": lease.server_name,
                "partition_id": lease.partition_id,
                "successes": stats.successes,
                "errors": stats.errors,
                "requests": stats.requests,
                "seconds": round(stats.seconds, 3),
            }
        )
        return stats

    def _image_processor(self) -> Callable[[bytes], asyncio.Future[ProcessedImage | ImageFailure]]:
        loop = asyncio.get_running_loop()
        options = self._settings.image_options

        def run(body: bytes) -> asyncio.Future[ProcessedImage | ImageFailure]:
            return loop.run_in_executor(self._executor, process_image, body, options)

        return run
