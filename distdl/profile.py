"""The ``profiled`` stage: robots.txt and a few spaced probes per host, before downloading.

For every planned (not ignored) host: fetch robots.txt once (RFC 9309), send
``PROBES_PER_HOST`` requests spaced at the default rate to the first URLs it allows, judge the
host (`distdl.core.host_profile`), and write ``profiles_table``. A host already in the table
keeps its rate (learned by an earlier run, or set by hand), capped by what robots.txt asks.
Profiling is I/O only, a handful of requests per host, so each rank takes a share of the hosts
and probes them all concurrently; rank 0 merges the shares into the table.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace

from distdl.config import Config
from distdl.core.host_profile import judge_host
from distdl.core.robots import RobotsRules
from distdl.io.profiles import HostProfile, read_profiles, write_profiles
from distdl.io.robots_store import save_robots
from distdl.layout import Layout
from distdl.net.headers import user_agent_token
from distdl.net.probe import ProbeReport, probe_host
from distdl.net.session import make_session
from distdl.net.settings import FetchSettings
from distdl.plan.planner import read_servers_table, read_url_partition

log = logging.getLogger("distdl.profile")

PROBES_PER_HOST = 3  # enough for a median latency; few enough to be invisible to a server
CONCURRENT_HOSTS = 128  # hosts probed at once per rank


def planned_servers(layout: Layout) -> list[str]:
    servers = read_servers_table(layout)
    return sorted(servers.filter(~servers["ignored"])["server_name"].to_list())


def sample_urls(layout: Layout, server_name: str) -> list[str]:
    urls = read_url_partition(layout, server_name, 0)
    return urls.column("identifier").to_pylist()[:PROBES_PER_HOST]


async def probe_servers(
    config: Config, layout: Layout, servers: Sequence[str]
) -> list[HostProfile]:
    """Probe ``servers`` concurrently; save their robots.txt; one fresh profile per host."""
    params = config.downloader_parameters
    settings = FetchSettings.from_config(params)
    spacing = 1.0 / params.default_rate_limit
    slots = asyncio.Semaphore(CONCURRENT_HOSTS)

    async def one(server: str) -> HostProfile:
        async with slots:
            report = await probe_host(
                session, settings, server, sample_urls(layout, server), spacing, user_agent_token()
            )
        save_robots(layout, server, report.robots_status, report.robots_text)
        return _profile_from(report, config)

    async with make_session(settings) as session:
        return list(await asyncio.gather(*(one(server) for server in servers)))


def _profile_from(report: ProbeReport, config: Config) -> HostProfile:
    params = config.downloader_parameters
    verdict = judge_host(
        RobotsRules.from_response(report.robots_status, report.robots_text),
        report.probes,
        user_agent_token(),
        default_rate=params.default_rate_limit,
        max_rate=params.max_rate_limit,
    )
    return HostProfile(
        server_name=report.server_name,
        rate_limit=verdict.start_rate,
        max_rate_limit=verdict.max_rate,
        crawl_delay=verdict.crawl_delay,
        latency_ms=verdict.latency_ms,
        status=verdict.status,
    )


def merge_profiles(layout: Layout, fresh: Iterable[HostProfile]) -> list[HostProfile]:
    """Fresh probes plus what the table already knew; a known rate survives, under the cap."""
    known = read_profiles(layout.profiles_table)
    counts = {
        row["server_name"]: (row["total_batches"], row["total_urls"])
        for row in read_servers_table(layout).iter_rows(named=True)
    }
    merged = dict(known)
    for profile in fresh:
        batches, urls = counts.get(profile.server_name, (None, None))
        profile = replace(profile, total_batches=batches, total_urls=urls)
        old = known.get(profile.server_name)
        if old is not None:
            cap = profile.max_rate_limit or old.rate_limit
            ceiling = None if old.max_rate_limit is None else min(old.max_rate_limit, cap)
            profile = replace(profile, rate_limit=min(old.rate_limit, cap), max_rate_limit=ceiling)
        merged[profile.server_name] = profile
    return list(merged.values())


def finish_profiling(layout: Layout, fresh: list[HostProfile]) -> None:
    profiles = merge_profiles(layout, fresh)
    write_profiles(layout.profiles_table, profiles)
    by_status: dict[str, int] = {}
    for profile in fresh:
        by_status[profile.status or "?"] = by_status.get(profile.status or "?", 0) + 1
    log.info(
        "profiled %d hosts: %s",
        len(fresh),
        ", ".join(f"{n} {status}" for status, n in sorted(by_status.items())),
    )
