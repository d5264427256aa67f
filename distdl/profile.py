"""The ``profiled`` stage: the profiles table, from what is known without the network.

Profiling does no network work up front: nothing waits for a slow or dead host before the
downloads start. The stage writes ``profiles_table`` from what is known locally: every row
already there (rates learned by earlier runs, budgets set by hand) with the plan's fresh
``total_batches``/``total_urls``, and a row for each planned host not listed yet, with
status ``unseen`` and ``default_rate_limit`` as a starting guess.

The network half happens during the download, on each host's own time: a host's first
lease reads its robots.txt through the host's gate before any image request, and rank 0
caps the host's budget by its Crawl-delay/Request-rate and lets more leases open; the first
requests are the probes, and their images are the rows' results (never fetched twice).
When rank 0 saves the table (``HostBudgets.save``), ``status``, ``latency_ms``,
``crawl_delay`` and ``learned_at`` come from what the run observed.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from distdl.config import Config
from distdl.core.host_profile import UNSEEN
from distdl.io.profiles import HostProfile, read_profiles, write_profiles
from distdl.layout import Layout
from distdl.plan.planner import read_servers_table

log = logging.getLogger("distdl.profile")


def planned_profiles(config: Config, layout: Layout) -> list[HostProfile]:
    """The table's rows with the plan's totals; planned hosts it lacks are ``unseen``."""
    params = config.downloader_parameters
    profiles = read_profiles(layout.profiles_table)
    servers = read_servers_table(layout)
    for row in servers.filter(~servers["ignored"]).iter_rows(named=True):
        name = row["server_name"]
        known = profiles.get(name) or HostProfile(
            name,
            rate_limit=params.default_rate_limit,
            max_rate_limit=params.max_rate_limit,
            status=UNSEEN,
        )
        profiles[name] = replace(
            known, total_batches=row["total_batches"], total_urls=row["total_urls"]
        )
    return list(profiles.values())


def write_profiles_table(config: Config, layout: Layout) -> None:
    profiles = planned_profiles(config, layout)
    write_profiles(layout.profiles_table, profiles)
    unseen = sum(1 for profile in profiles if profile.status == UNSEEN)
    log.info("profiles table: %d hosts, %d not contacted yet", len(profiles), unseen)
