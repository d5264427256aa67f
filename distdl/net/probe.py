"""The network half of profiling: robots.txt once, then a few spaced probe requests."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from distdl.core.host_profile import ProbeOutcome
from distdl.core.robots import RobotsRules
from distdl.net.fetcher import AiohttpFetcher
from distdl.net.robots_fetch import fetch_robots
from distdl.net.settings import FetchSettings


@dataclass(frozen=True)
class ProbeReport:
    server_name: str
    robots_status: int | None  # None: robots.txt could not be fetched at all
    robots_text: str | None
    probes: tuple[ProbeOutcome, ...]


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


async def probe_host(
    session: aiohttp.ClientSession,
    settings: FetchSettings,
    server_name: str,
    sample_urls: Sequence[str],
    spacing: float,
    user_agent: str,
) -> ProbeReport:
    """robots.txt, then one request per sample URL it allows, ``spacing`` seconds apart."""
    status, text = await fetch_robots(session, origin(sample_urls[0]), settings)
    rules = RobotsRules.from_response(status, text)
    allowed = [url for url in sample_urls if rules.allowed(url, user_agent)]
    fetcher = AiohttpFetcher(session, settings)
    outcomes: list[ProbeOutcome] = []
    for index, url in enumerate(allowed):
        if index:
            await asyncio.sleep(spacing)
        result = await fetcher.fetch(url)
        outcomes.append(ProbeOutcome(result.error_code, result.elapsed))
    if status is None and any(o.error_code >= 0 for o in outcomes):
        # The host answers, so a missing robots.txt answer was a glitch: ask once more.
        status, text = await fetch_robots(session, origin(sample_urls[0]), settings)
    return ProbeReport(server_name, status, text, tuple(outcomes))
