"""A worker rank: holds leases on several hosts at once and downloads them concurrently.

It only talks to rank 0 through its channel: it asks for work when slots free up, reports
each partition's outcome, and reports what it saw of each host so rank 0 can set budgets.
A lease reads its host's robots.txt through its own gate before any other request (once per
host and worker, see :mod:`distdl.runtime.host_access`); redirect hops to other hosts go
through shares of those hosts' budgets, which the same module asks for and gives back.
"""

from __future__ import annotations

import asyncio
import logging
import random
import traceback
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from distdl.config import DownloaderParameters
from distdl.core.breaker import CircuitBreaker
from distdl.core.redirects import AddressPolicy, GlobalAddresses
from distdl.core.scheduler import Lease
from distdl.image.pipeline import ImageFailure, ImageOptions, ProcessedImage, process_image
from distdl.io.atomic import remove_stale_temps
from distdl.io.carry_over import carry_over
from distdl.io.markers import is_completed
from distdl.io.partition_writer import PartitionOutput
from distdl.layout import Layout
from distdl.net.addresses import AddressLookup
from distdl.net.fetcher import Fetcher
from distdl.plan.planner import read_url_partition
from distdl.runtime.channel import Channel, receive
from distdl.runtime.feedback import FeedbackBook
from distdl.runtime.host_access import AccessSettings, HostAccess, HostRoute
from distdl.runtime.host_gate import HostGate
from distdl.runtime.lease_runner import LeasePolicy, LeaseRunner
from distdl.runtime.messages import (
    AbandonHost,
    AssignPartition,
    ChangeRate,
    GrantShare,
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
    # Which addresses are public, for the redirect safety check (core.redirects).
    address_policy: AddressPolicy = field(default_factory=GlobalAddresses)

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
        )


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
        executor: Executor,
        rng: random.Random | None = None,
    ) -> None:
        self._channel = channel
        self._layout = layout
        self._settings = settings
        self._fetcher = network.fetcher
        self._executor = executor
        self._rng = rng or random.Random()
        self._feedback = FeedbackBook()
        self._gates: dict[int, HostGate] = {}
        self._leases: dict[int, Lease] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
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
                self._access.release_idle(loop.time())
                next_report = loop.time() + FEEDBACK_INTERVAL

    def _handle(self, message: object) -> None:
        if isinstance(message, AssignPartition):
            lease = message.lease
            if message.host_unreachable:
                self._access.breaker(lease.server_name).declare_dead()
            self._leases[lease.lease_id] = lease
            rate = min(lease.rate, self._access.rate_cap(lease.server_name))
            self._gates[lease.lease_id] = HostGate(
                rate,
                self._settings.max_in_flight_per_host,
                lease.server_name,
                self._access.starts,
            )
            task = asyncio.get_running_loop().create_task(self._run_lease(lease))
            self._tasks[lease.lease_id] = task
        elif isinstance(message, GrantShare):
            self._access.granted(message)
        elif isinstance(message, ChangeRate):
            self._change_rate(message)
        elif isinstance(message, AbandonHost):
            self._access.breaker(message.server_name).declare_dead()
        elif isinstance(message, PauseHost):
            for lease_id, lease in self._leases.items():
                if lease.server_name == message.server_name:
                    self._gates[lease_id].pause(message.seconds)
            self._access.pause(message.server_name, message.seconds)
        else:
            raise TypeError(f"worker got an unexpected message {message!r}")

    def _change_rate(self, message: ChangeRate) -> None:
        gate = self._gates.get(message.lease_id)
        lease = self._leases.get(message.lease_id)
        if gate is not None and lease is not None:
            # Rank 0 may not have heard the host's robots.txt yet: its cap holds regardless.
            gate.set_rate(min(message.rate, self._access.rate_cap(lease.server_name)))
        else:
            self._access.change_rate(message.lease_id, message.rate)

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
            self._access.lease_ended(lease.lease_id)
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
            self._image_processor(),
            output,
            self._settings.policy,
            self._feedback,
            self._rng,
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
