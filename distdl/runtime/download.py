"""The download stage: which partitions remain, and each rank's role.

Rank 0 coordinates (:mod:`distdl.runtime.coordinator_setup`), the others download
(:mod:`distdl.runtime.worker_setup`); each imports only its own side, so a rank starts
without the other's libraries. The address policy of the redirect safety check (which
addresses count as public) is chosen here and handed down; tests pass one that declares a
block of loopback public.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from distdl.config import Config
from distdl.core.redirects import AddressPolicy, GlobalAddresses
from distdl.core.scheduler import PartitionRef
from distdl.core.stopping import DEFAULT_GRACE
from distdl.core.urls import safe_dir_name
from distdl.errors import RunStopped
from distdl.io.markers import completed_partitions
from distdl.layout import Layout
from distdl.plan.partition_files import list_url_partitions
from distdl.runtime.channel import Channel, QueueHub
from distdl.runtime.stop_signals import loop_stop_signals

if TYPE_CHECKING:  # the coordinator's modules load only on the rank that coordinates
    from distdl.runtime.coordinator import RunReport

PUBLIC_IS_GLOBAL = GlobalAddresses()


def remaining_partitions(layout: Layout) -> list[PartitionRef]:
    """The plan minus what is done: resume is nothing more than this."""
    done = completed_partitions(layout.images)
    return [
        PartitionRef(server, pid, n_urls)
        for server, pid, n_urls in list_url_partitions(layout)
        if (safe_dir_name(server), pid) not in done
    ]


async def run_rank(
    config: Config,
    layout: Layout,
    channel: Channel,
    size: int,
    retry_codes: frozenset[int],
    *,
    grace: float = DEFAULT_GRACE,
    on_dead_ranks: Callable[[], None] | None = None,
) -> RunReport | None:
    """Play this rank's role in a world of ``size`` ranks: rank 0 coordinates, others work.

    Stop signals stop the rank gracefully; a stopped worker raises a silent RunStopped (rank
    0 tells the user). ``on_dead_ranks`` is called on rank 0 when it declared a rank dead:
    such a rank may still be alive, hung, and keep the job from ever ending.
    """
    if channel.rank == 0:
        from distdl.runtime.coordinator_setup import build_coordinator

        coordinator = build_coordinator(config, layout, channel, list(range(1, size)), grace)
        try:
            with loop_stop_signals(coordinator.request_stop):
                return await coordinator.run()
        finally:
            coordinator.budgets.save()
            if coordinator.report.dead_ranks and on_dead_ranks is not None:
                on_dead_ranks()
    from distdl.runtime.worker_setup import open_worker

    async with open_worker(config, layout, channel, retry_codes) as worker:
        with loop_stop_signals(worker.request_stop):
            await worker.run()
    if worker.stopped_by is not None:
        raise RunStopped(worker.stopped_by)
    return None


async def run_in_process(
    config: Config,
    layout: Layout,
    retry_codes: frozenset[int],
    address_policy: AddressPolicy = PUBLIC_IS_GLOBAL,
    grace: float = DEFAULT_GRACE,
) -> RunReport:
    """Coordinator and one worker in this process, over queues: `--ranks 1` and tests.

    A stop signal goes to the coordinator, which stops the worker like any other.
    """
    from distdl.runtime.coordinator_setup import build_coordinator
    from distdl.runtime.worker_setup import open_worker

    hub = QueueHub(2)
    coordinator = build_coordinator(config, layout, hub.channel(0), [1], grace)
    worker_channel = hub.channel(1)
    async with open_worker(
        config, layout, worker_channel, retry_codes, address_policy, alone=False
    ) as worker:
        worker_task = asyncio.ensure_future(worker.run())
        try:
            with loop_stop_signals(coordinator.request_stop):
                report = await coordinator.run()
        finally:
            # Normally the worker has stopped already; after a failure, or a stop whose
            # grace ran out, it must not be waited for: cancelled, it drops (or, stopping,
            # commits) what it holds.
            worker_task.cancel()
            await asyncio.gather(worker_task, return_exceptions=True)
            coordinator.budgets.save()
    return report
