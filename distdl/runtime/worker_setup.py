"""A downloading rank's side of the download stage: its network, image stage and worker.

Imported only by the ranks that download: the coordinating rank needs none of it (nor
aiohttp and the image stack).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp.resolver import DefaultResolver

from distdl.config import Config
from distdl.core.redirects import AddressPolicy
from distdl.core.retry import RetryPolicy
from distdl.layout import Layout
from distdl.net.addresses import ResolverLookup
from distdl.net.fetcher import AiohttpFetcher
from distdl.net.headers import user_agent_token
from distdl.net.robots_fetch import robots_fetcher
from distdl.net.session import make_session
from distdl.net.settings import FetchSettings
from distdl.runtime.channel import Channel
from distdl.runtime.download import PUBLIC_IS_GLOBAL
from distdl.runtime.image_stage import open_image_stage
from distdl.runtime.lease_runner import LeasePolicy
from distdl.runtime.worker import Worker, WorkerNetwork, WorkerSettings


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
                lookup=ResolverLookup(resolver, fetch_settings.proxies),
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
