"""Composition of the download stage: which partitions remain, budgets, roles per rank.

The address policy of the redirect safety check (which addresses count as public) is
chosen here and handed down; tests pass one that declares a block of loopback public.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager

from aiohttp.resolver import DefaultResolver

from distdl.config import Config
from distdl.core.redirects import AddressPolicy, GlobalAddresses
from distdl.core.retry import RetryPolicy
from distdl.core.robots import RobotsRules
from distdl.core.scheduler import LeaseScheduler, PartitionRef
from distdl.core.stopping import DEFAULT_GRACE
from distdl.core.urls import safe_dir_name
from distdl.errors import RunStopped
from distdl.io.markers import completed_partitions
from distdl.io.robots_store import load_robots
from distdl.layout import Layout
from distdl.net.addresses import ResolverLookup
from distdl.net.fetcher import AiohttpFetcher
from distdl.net.headers import user_agent_token
from distdl.net.robots_fetch import robots_fetcher
from distdl.net.session import make_session
from distdl.net.settings import FetchSettings
from distdl.plan.planner import list_url_partitions
from distdl.runtime.budgets import HostBudgets
from distdl.runtime.channel import Channel, QueueHub
from distdl.runtime.coordinator import Coordinator, RunReport
from distdl.runtime.image_stage import open_image_stage
from distdl.runtime.lease_runner import LeasePolicy
from distdl.runtime.logs import console_mode
from distdl.runtime.metrics import METRICS_FILE, MetricsRecorder
from distdl.runtime.progress import RunProgress, RunShape, StateSink
from distdl.runtime.progress_view import progress_view
from distdl.runtime.stop_signals import loop_stop_signals
from distdl.runtime.worker import Worker, WorkerNetwork, WorkerSettings

PUBLIC_IS_GLOBAL = GlobalAddresses()


def remaining_partitions(layout: Layout) -> list[PartitionRef]:
    """The plan minus what is done: resume is nothing more than this."""
    done = completed_partitions(layout.images)
    return [
        PartitionRef(server, pid, n_urls)
        for server, pid, n_urls in list_url_partitions(layout)
        if (safe_dir_name(server), pid) not in done
    ]


def build_coordinator(
    config: Config,
    layout: Layout,
    channel: Channel,
    workers: list[int],
    grace: float = DEFAULT_GRACE,
) -> Coordinator:
    params = config.downloader_parameters
    partitions = remaining_partitions(layout)
    servers = {p.server_name for p in partitions}
    budgets = HostBudgets.from_profiles(layout, params, servers, time.monotonic())
    scheduler = LeaseScheduler(
        partitions,
        budgets.initial_budgets(),
        default_budget=params.default_rate_limit,
        n_workers=len(workers),
        unverified=_apply_stored_robots(layout, budgets, servers),
    )
    rows_by_host: dict[str, int] = {}
    for partition in partitions:
        rows_by_host[partition.server_name] = (
            rows_by_host.get(partition.server_name, 0) + partition.n_urls
        )
    shape = RunShape(len(workers), params.leases_per_worker, len(partitions))
    sinks: list[StateSink] = [*progress_view(console_mode(), params.progress_interval)]
    sinks.append(MetricsRecorder(layout.logs / METRICS_FILE))
    progress = RunProgress(layout.run_state, rows_by_host, shape, sinks, time.monotonic())
    return Coordinator(
        channel,
        workers,
        scheduler,
        budgets,
        silence_limit=params.rank_silence_limit,
        grace=grace,
        progress=progress,
    )


def _apply_stored_robots(layout: Layout, budgets: HostBudgets, servers: Iterable[str]) -> set[str]:
    """Cap budgets by the robots.txt answers earlier leases stored; the hosts with none
    stored yet, whose first lease must read it before more leases open."""
    token = user_agent_token()
    now = time.monotonic()
    unverified: set[str] = set()
    for server in servers:
        answer = load_robots(layout, server)
        if answer is None:
            unverified.add(server)
        elif answer[0] is not None:  # unreachable: its leases declare it dead at once
            rules = RobotsRules.from_response(*answer)
            budgets.apply_robots(server, rules.rate_cap(token), rules.crawl_delay(token), now)
    return unverified


def lease_policy(config: Config) -> LeasePolicy:
    params = config.downloader_parameters
    return LeasePolicy(
        retry=RetryPolicy(max_retries=params.max_retries),
        retry_after_cap=params.retry_after_cap,
        respect_opt_out=params.respect_opt_out,
        user_agent_token=user_agent_token(),
        max_redirects=params.max_redirects,
        max_in_flight=params.max_in_flight_per_host,
    )


@asynccontextmanager
async def open_worker(
    config: Config,
    layout: Layout,
    channel: Channel,
    retry_codes: frozenset[int],
    address_policy: AddressPolicy = PUBLIC_IS_GLOBAL,
    *,
    alone: bool = True,
) -> AsyncIterator[Worker]:
    """The worker of this rank; ``alone``: in a process of its own (an MPI rank), not
    beside the coordinator."""
    params = config.downloader_parameters
    fetch_settings = FetchSettings.from_config(params)
    settings = WorkerSettings.from_params(params, lease_policy(config), retry_codes, address_policy)
    images = open_image_stage(params)
    # One resolver for the connections and for the redirect check's look-ups.
    resolver = DefaultResolver()
    try:
        async with make_session(fetch_settings, resolver=resolver) as session:
            network = WorkerNetwork(
                fetcher=AiohttpFetcher(session, fetch_settings),
                robots_fetcher=robots_fetcher(session, fetch_settings),
                lookup=ResolverLookup(resolver),
            )
            yield Worker(
                channel,
                layout,
                settings,
                network,
                images,
                random.Random(),
                fence_after_stall=alone,
            )
    finally:
        await resolver.close()
        images.close()


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
        coordinator = build_coordinator(config, layout, channel, list(range(1, size)), grace)
        try:
            with loop_stop_signals(coordinator.request_stop):
                return await coordinator.run()
        finally:
            coordinator.budgets.save()
            if coordinator.report.dead_ranks and on_dead_ranks is not None:
                on_dead_ranks()
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
