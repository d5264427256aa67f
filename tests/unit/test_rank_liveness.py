"""Rank 0 with scripted workers over in-process queues: dead workers, stalls, stops.

The workers here are stand-ins that answer like real ones (leases done at once, heartbeats
every second) or fall silent like a SIGSTOPped rank; the real worker is exercised by the
integration, MPI and Slurm tests.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from distdl.core.liveness import HEARTBEAT_INTERVAL
from distdl.core.scheduler import LeaseScheduler, PartitionRef
from distdl.core.throttle import ThrottleSettings
from distdl.errors import RankFailure
from distdl.runtime.budgets import HostBudgets
from distdl.runtime.channel import QueueChannel, QueueHub, receive
from distdl.runtime.coordinator import Coordinator
from distdl.runtime.messages import (
    AssignPartition,
    Heartbeat,
    PartitionCompleted,
    PartitionStats,
    Shutdown,
    Stop,
    StopRequested,
    WorkerStopped,
    WorkRequested,
)

LIMIT = 3.0  # the shortest silence limit allowed: keeps these tests to seconds
HOSTS = ("a.org", "b.org", "c.org")


@dataclass
class FakeWorker:
    """A worker rank in miniature: asks for leases, completes each after ``lease_seconds``,
    heartbeats; ``hang_after`` leases received it falls silent for good (like SIGSTOP)."""

    channel: QueueChannel
    lease_seconds: float = 0.05
    hang_after: int | None = None
    on_stop: Callable[[FakeWorker, Stop], bool] = lambda worker, stop: True
    received: list[object] = field(default_factory=list)
    completed: list[int] = field(default_factory=list)
    held: dict[int, float] = field(default_factory=dict)  # lease id -> when it is done

    async def run(self) -> None:
        self.channel.send(0, WorkRequested(4))
        next_heartbeat = 0.0
        while True:
            for _, message in await receive(self.channel, timeout=0.02):
                self.received.append(message)
                if isinstance(message, Shutdown):
                    self.channel.send(0, WorkerStopped())
                    return
                if isinstance(message, Stop) and self.on_stop(self, message):
                    self.channel.send(0, WorkerStopped())
                    return
                if isinstance(message, AssignPartition):
                    self.held[message.lease.lease_id] = time.monotonic() + self.lease_seconds
            if self.hang_after is not None and len(self.leases_received) >= self.hang_after:
                await asyncio.sleep(3600)  # silent, like a stopped process
            for lease_id, done_at in list(self.held.items()):
                if time.monotonic() >= done_at:
                    del self.held[lease_id]
                    self.completed.append(lease_id)
                    self.channel.send(0, PartitionCompleted(lease_id, PartitionStats(1, 0, 1)))
                    self.channel.send(0, WorkRequested(1))
            if time.monotonic() >= next_heartbeat:
                self.channel.send(0, Heartbeat())
                next_heartbeat = time.monotonic() + HEARTBEAT_INTERVAL

    @property
    def leases_received(self) -> list[AssignPartition]:
        return [m for m in self.received if isinstance(m, AssignPartition)]


def _coordinator(tmp_path: Path, hub: QueueHub, partitions: int, grace: float = 4.0):
    refs = [PartitionRef(HOSTS[i % 3], i // 3, 10) for i in range(partitions)]
    budgets = HostBudgets(tmp_path / "profiles.csv", {}, ThrottleSettings(), HOSTS, 0.0)
    scheduler = LeaseScheduler(
        refs, dict.fromkeys(HOSTS, 50.0), default_budget=10.0, n_workers=hub.size - 1
    )
    workers = list(range(1, hub.size))
    return Coordinator(
        hub.channel(0), workers, scheduler, budgets, silence_limit=LIMIT, grace=grace
    )


async def _run(coordinator: Coordinator, workers: list[FakeWorker]):
    tasks = [asyncio.ensure_future(worker.run()) for worker in workers]
    try:
        return await asyncio.wait_for(coordinator.run(), timeout=60)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_silent_worker_is_declared_dead_and_the_others_do_its_partitions(
    tmp_path: Path,
) -> None:
    hub = QueueHub(3)
    coordinator = _coordinator(tmp_path, hub, partitions=24)
    hung = FakeWorker(hub.channel(1), hang_after=2)
    healthy = FakeWorker(hub.channel(2), lease_seconds=0.1)
    started = time.monotonic()
    with pytest.raises(RankFailure, match=r"rank 1 sent nothing for \d+ s: declared dead"):
        await _run(coordinator, [hung, healthy])
    assert time.monotonic() - started < LIMIT + 10  # never waits for a dead rank to stop
    assert not hung.completed
    # The hung worker's leases went back to the queue and the healthy one did them all.
    taken = {m.lease.partition for m in hung.leases_received}
    done = {m.lease.partition for m in healthy.leases_received}
    assert taken and taken <= done
    assert len(healthy.completed) == 24
    assert list(coordinator.report.dead_ranks) == [1]
    assert coordinator.report.partitions_completed == 24
    assert not any(isinstance(m, Shutdown) for m in hung.received)  # deaf: never heard it


async def test_when_every_worker_is_dead_the_run_fails_at_once(tmp_path: Path) -> None:
    hub = QueueHub(3)
    coordinator = _coordinator(tmp_path, hub, partitions=12)
    workers = [FakeWorker(hub.channel(rank), hang_after=1) for rank in (1, 2)]
    with pytest.raises(RankFailure, match="no live worker rank is left"):
        await _run(coordinator, workers)
    assert sorted(coordinator.report.dead_ranks) == [1, 2]


async def test_a_stall_of_rank_0_itself_declares_nobody_dead(tmp_path: Path) -> None:
    hub = QueueHub(3)
    coordinator = _coordinator(tmp_path, hub, partitions=30)
    workers = [FakeWorker(hub.channel(rank), lease_seconds=0.2) for rank in (1, 2)]

    async def stall() -> None:
        await asyncio.sleep(0.5)
        time.sleep(LIMIT + 0.5)  # the whole process stops answering, rank 0 included

    stalling = asyncio.ensure_future(stall())
    report = await _run(coordinator, workers)
    await stalling
    assert report.dead_ranks == {}
    assert report.partitions_completed == 30


async def test_a_workers_stop_signal_stops_every_worker_and_a_second_one_hurries(
    tmp_path: Path,
) -> None:
    hub = QueueHub(3)
    grace = 10.0
    coordinator = _coordinator(tmp_path, hub, partitions=30, grace=grace)
    stops: list[tuple[int, Stop]] = []

    def record(worker: FakeWorker, stop: Stop) -> bool:
        stops.append((worker.channel.rank, stop))
        return stop.settle_seconds == 0.0  # stopped once the stop is hurried

    workers = [FakeWorker(hub.channel(rank), lease_seconds=30.0, on_stop=record) for rank in (1, 2)]

    async def signals() -> None:
        await asyncio.sleep(0.3)
        hub.channel(2).send(0, StopRequested(signal.SIGTERM))
        await asyncio.sleep(0.3)
        hub.channel(2).send(0, StopRequested(signal.SIGTERM))  # another task's, not again
        await asyncio.sleep(0.3)
        hub.channel(1).send(0, StopRequested(signal.SIGTERM, again=True))

    sending = asyncio.ensure_future(signals())
    report = await _run(coordinator, workers)
    await sending
    assert report.stopped_by == signal.SIGTERM
    assert report.partitions_completed == 0
    first = [stop for rank, stop in stops if stop.settle_seconds > 0]
    assert sorted(rank for rank, stop in stops if stop.settle_seconds > 0) == [1, 2]
    assert all(0 < stop.settle_seconds <= grace / 2 for stop in first)
    assert sorted(rank for rank, stop in stops if stop.settle_seconds == 0.0) == [1, 2]


async def test_one_signal_to_every_rank_is_not_a_second_one_whichever_arrives_first(
    tmp_path: Path,
) -> None:
    """``kill`` of the launcher, or ``scancel``, reaches every rank: a worker's report of it
    may reach rank 0 before rank 0's own copy, which must not hurry the stop (in-flight
    requests would be dropped, and their images fetched again on resume)."""
    hub = QueueHub(3)
    coordinator = _coordinator(tmp_path, hub, partitions=30, grace=2.0)
    stops: list[tuple[int, Stop]] = []

    def record(worker: FakeWorker, stop: Stop) -> bool:
        stops.append((worker.channel.rank, stop))
        return False  # still settling: a hurried stop would reach it

    workers = [FakeWorker(hub.channel(rank), lease_seconds=30.0, on_stop=record) for rank in (1, 2)]

    async def signals() -> None:
        await asyncio.sleep(0.3)
        hub.channel(1).send(0, StopRequested(signal.SIGTERM))
        await asyncio.sleep(0.1)
        coordinator.request_stop(signal.SIGTERM)  # rank 0's own copy, second to arrive

    sending = asyncio.ensure_future(signals())
    report = await _run(coordinator, workers)
    await sending
    assert report.stopped_by == signal.SIGTERM
    assert sorted(rank for rank, _ in stops) == [1, 2]
    assert all(stop.settle_seconds > 0 for _, stop in stops), stops


async def test_a_stop_ends_when_the_grace_is_spent_even_if_a_worker_never_reports(
    tmp_path: Path,
) -> None:
    hub = QueueHub(3)
    coordinator = _coordinator(tmp_path, hub, partitions=9, grace=2.0)
    never = FakeWorker(hub.channel(1), lease_seconds=30.0, on_stop=lambda worker, stop: False)
    prompt = FakeWorker(hub.channel(2), lease_seconds=30.0)
    asyncio.get_running_loop().call_later(0.3, coordinator.request_stop, signal.SIGINT)
    started = time.monotonic()
    report = await _run(coordinator, [never, prompt])
    assert report.stopped_by == signal.SIGINT
    assert time.monotonic() - started < 0.3 + 2.0 + 1.0
