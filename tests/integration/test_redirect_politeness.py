"""Redirects are followed by distdl one hop at a time, each hop paid by the host it goes to:
checked from the servers' side, on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
from paced_runs import (
    download,
    download_on_workers,
    error_codes,
    hand_set,
    images,
    times,
    write_urls,
)
from support import assert_exactly_once, layout_of, write_config

from distdl.core import codes
from distdl.core.redirects import PublicNetworks
from distdl.io.profiles import read_profiles
from distdl.testing.fleet import Fleet, HostSpec, max_requests_in_window

pytestmark = pytest.mark.timeout(120)


async def test_a_redirect_chain_is_paced_hop_by_hop_and_every_hop_counted(
    tmp_path: Path,
) -> None:
    async with Fleet([HostSpec("chain")], seed=1) as fleet:
        write_urls(
            tmp_path / "urls.csv", [fleet.image_url("chain", i, redirects=3) for i in range(4)]
        )
        hand_set(tmp_path, {fleet.server_name("chain"): 2.0})
        config = write_config(tmp_path)
        report = await download(config)
        records = fleet.requests_for("chain")
    assert assert_exactly_once(tmp_path / "urls.csv", layout_of(config)) == (4, 0)
    assert [r.path for r in records[:1]] == ["/robots.txt"]
    assert len(records) == 1 + 4 * 4  # robots.txt, then three 302s and the image per row
    assert report.requests == len(records)  # the summary counts every hop
    assert max_requests_in_window(times(records), 1.0) <= 2 + 1


async def test_a_cross_host_redirect_is_charged_to_the_target(tmp_path: Path) -> None:
    hosts = [
        HostSpec("resolver", redirect_to="cdn"),
        HostSpec("cdn"),
        HostSpec("cache", redirect_to="new-cdn"),
        HostSpec("new-cdn"),
    ]
    async with Fleet(hosts, seed=2) as fleet:
        urls = [fleet.image_url(host, i) for host in ("resolver", "cache") for i in range(8)]
        write_urls(tmp_path / "urls.csv", urls)
        hand_set(tmp_path, {fleet.server_name("resolver"): 8.0, fleet.server_name("cdn"): 2.0})
        config = write_config(tmp_path)
        report = await download(config)
        resolver, cdn = fleet.requests_for("resolver"), fleet.requests_for("cdn")
        every = list(fleet.requests)
        new_cdn = fleet.server_name("new-cdn")
    assert assert_exactly_once(tmp_path / "urls.csv", layout_of(config)) == (16, 0)
    assert len(images(cdn)) == 8 and all("via=resolver" in r.path for r in images(cdn))
    assert [r.path for r in cdn[:1]] == ["/robots.txt"]  # the target's rules, read first
    # The target's budget holds over its own requests and those redirected to it...
    assert max_requests_in_window(times(cdn), 1.0) <= 2 + 1
    # ...and the origin did not wait for it: its 8 requests went at its own pace (8 req/s),
    # much faster than the target's 2 req/s would have let them.
    resolver_images = times(images(resolver))
    assert len(resolver_images) == 8
    assert resolver_images[-1] - resolver_images[0] < 7 / 2.0
    assert report.requests == len(every)
    # A target nobody planned gets a budget at rank 0 and is learned like any host.
    learned = read_profiles(layout_of(config).profiles_table)[new_cdn]
    assert learned.status == "healthy" and learned.learned_at


# Two workers leasing the pair is the slower case (20 s): with the slow suite.
@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])
async def test_a_resolver_and_its_cdn_never_lock_step_on_a_one_request_bucket(
    tmp_path: Path, workers: int
) -> None:
    # Seed 12 of the politeness matrix: the CDN's own lease and the resolver's share of the
    # CDN's budget (on one rank, or two) came back from every Retry-After pause at the same
    # instant; the CDN's bucket takes one request at a time, so one of each pair was refused,
    # with another pause, for ever, and the budget sank to its floor (an image per 10 s).
    hosts = [
        HostSpec("resolver", rate_limit=5.6, retry_after=4.0, redirect_to="cdn"),
        HostSpec("cdn", rate_limit=24.0, burst=1, retry_after=4.0),
    ]
    async with Fleet(hosts, seed=12) as fleet:
        urls = [fleet.image_url("resolver", i) for i in range(20)]
        urls += [fleet.image_url("cdn", 100 + i) for i in range(20)]
        write_urls(tmp_path / "urls.csv", urls)
        config = write_config(tmp_path)
        await download_on_workers(config, workers)
        cdn = fleet.requests_for("cdn")
    assert assert_exactly_once(tmp_path / "urls.csv", layout_of(config)) == (40, 0)
    refused = [r for r in cdn if r.status == 429]
    assert len(refused) <= 2  # not one per pause: the two come back one at a time
    assert max_requests_in_window(times(cdn), 1.0) <= 24 + workers + 1


async def test_a_redirect_into_the_targets_robots_disallow_is_never_fetched(
    tmp_path: Path,
) -> None:
    hosts = [
        HostSpec("resolver", redirect_to="cdn"),
        HostSpec("cdn", robots_txt="User-agent: *\nDisallow: /img/\n"),
    ]
    async with Fleet(hosts, seed=3) as fleet:
        urls = [fleet.image_url("resolver", i) for i in range(6)]
        write_urls(tmp_path / "urls.csv", urls)
        config = write_config(tmp_path)
        await download(config)
        cdn = fleet.requests_for("cdn")
    assert assert_exactly_once(tmp_path / "urls.csv", layout_of(config)) == (0, 6)
    assert error_codes(config) == dict.fromkeys(urls, codes.ROBOTS_DISALLOWED)  # origin ids
    assert [r.path for r in cdn] == ["/robots.txt"]


async def test_a_redirect_from_a_public_to_a_private_address_is_refused(tmp_path: Path) -> None:
    # 127.0.1.1 is declared public; the other hosts (127.0.1.2, .3) are private.
    hosts = [
        HostSpec("public-resolver", redirect_to="private"),
        HostSpec("private"),
        HostSpec("local-resolver", redirect_to="private"),
    ]
    policy = PublicNetworks.of(["127.0.1.1/32"])
    async with Fleet(hosts, seed=4, base_ip="127.0.1.1") as fleet:
        assert fleet.address("public-resolver")[0] == "127.0.1.1"
        refused = [fleet.image_url("public-resolver", i) for i in range(4)]
        local = [fleet.image_url("local-resolver", i) for i in range(4)]
        write_urls(tmp_path / "urls.csv", refused + local)
        config = write_config(tmp_path)
        await download(config, policy)
        private = fleet.requests_for("private")
    assert assert_exactly_once(tmp_path / "urls.csv", layout_of(config)) == (4, 4)
    assert error_codes(config) == dict.fromkeys(refused, codes.UNSAFE_REDIRECT)
    # Local to local is fine; nothing redirected from the public host ever arrived.
    assert len(images(private)) == 4
    assert not [r for r in private if "public-resolver" in r.path]
