"""Rank 0's side of the download stage: its budgets, scheduler and progress, composed.

Imported only by the rank that coordinates: the others need none of it (nor Polars, which
the profiles table brings).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from distdl.config import Config
from distdl.core.robots import RobotsRules
from distdl.core.scheduler import LeaseScheduler
from distdl.core.stopping import DEFAULT_GRACE
from distdl.io.robots_store import load_robots
from distdl.layout import Layout
from distdl.net.headers import user_agent_token
from distdl.runtime.budgets import HostBudgets
from distdl.runtime.channel import Channel
from distdl.runtime.coordinator import Coordinator
from distdl.runtime.download import remaining_partitions
from distdl.runtime.logs import console_mode
from distdl.runtime.metrics import METRICS_FILE, MetricsRecorder
from distdl.runtime.progress import RunProgress, RunShape, StateSink
from distdl.runtime.progress_view import progress_view


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
    budgets.expect_urls(rows_by_host)
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
