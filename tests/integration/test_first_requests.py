"""A host's first requests (robots.txt, then its first images) are paced like every other,
no image is fetched twice, a black hole delays nobody else, and Retry-After means what the
answer says: checked from the servers' side, on loopback."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from paced_runs import download, hand_set, times, write_urls
from support import assert_exactly_once, layout_of, write_config

from distdl.api import RunOptions, run
from distdl.core.host_profile import UNSEEN
from distdl.io.profiles import read_profiles
from distdl.testing.fleet import Fleet, HostSpec
from distdl.testing.image_samples import make_image_bytes

pytestmark = pytest.mark.timeout(120)


async def test_robots_txt_and_first_requests_obey_a_crawl_delay(tmp_path: Path) -> None:
    robots = "User-agent: *\nCrawl-delay: 2\n"
    async with Fleet([HostSpec("museum", robots_txt=robots)], seed=1) as fleet:
        write_urls(tmp_path / "urls.csv", [fleet.image_url("museum", i) for i in range(3)])
        config = write_config(tmp_path, default_rate_limit=10)
        await download(config)
        records = fleet.requests_for("museum")
    assert assert_exactly_once(tmp_path / "urls.csv", layout_of(config)) == (3, 0)
    assert records[0].path == "/robots.txt" and len(records) == 4
    gaps = [b - a for a, b in itertools.pairwise(times(records))]
    assert min(gaps) >= 1.9, gaps  # robots.txt included: the delay holds from the start


async def test_every_image_is_requested_once_and_robots_txt_once_per_host(
    tmp_path: Path,
) -> None:
    hosts = [HostSpec("a", rate_limit=50), HostSpec("b", rate_limit=50)]
    async with Fleet(hosts, seed=2) as fleet:
        urls = [fleet.image_url(host, i) for host in ("a", "b") for i in range(30)]
        write_urls(tmp_path / "urls.csv", urls)
        hand_set(tmp_path, {fleet.server_name(h): 20.0 for h in ("a", "b")})
        config = write_config(tmp_path, batch_size=10)  # three leases per host, one by one
        await download(config)
        records = list(fleet.requests)
    assert assert_exactly_once(tmp_path / "urls.csv", layout_of(config)) == (60, 0)
    per_path = Counter((r.host, r.path) for r in records)
    assert set(per_path.values()) == {1}  # the first requests' images are the rows' results
    assert per_path[("a", "/robots.txt")] == per_path[("b", "/robots.txt")] == 1
    assert len(records) == 62


async def test_a_black_hole_does_not_delay_the_other_hosts(tmp_path: Path) -> None:
    read_timeout = 6.0
    hosts = [HostSpec("alive"), HostSpec("hole", mode="black_hole")]
    async with Fleet(hosts, seed=3) as fleet:
        urls = [fleet.image_url(host, i) for host in ("alive", "hole") for i in range(10)]
        write_urls(tmp_path / "urls.csv", urls)
        hand_set(tmp_path, {fleet.server_name("alive"): 20.0})
        config = write_config(
            tmp_path, read_timeout=read_timeout, total_timeout=read_timeout + 2, max_retries=0
        )
        started = time.monotonic()
        await download(config)
        alive, hole = fleet.requests_for("alive"), fleet.requests_for("hole")
    assert assert_exactly_once(tmp_path / "urls.csv", layout_of(config)) == (10, 10)
    assert [r.path for r in hole] == ["/robots.txt"]  # its rows became -32 without a request
    # Planning and start-up took a moment; the black hole's read timeout took none of it.
    assert alive[0].time - started < read_timeout / 2
    assert alive[-1].time < hole[0].time + read_timeout / 2


async def test_until_profiled_writes_the_table_without_a_request(tmp_path: Path) -> None:
    async with Fleet([HostSpec("a"), HostSpec("b")], seed=4) as fleet:
        urls = [fleet.image_url(host, i) for host in ("a", "b") for i in range(5)]
        write_urls(tmp_path / "urls.csv", urls)
        hand_set(tmp_path, {fleet.server_name("a"): 3.0})
        config = write_config(tmp_path, default_rate_limit=7, max_rate_limit=50)
        outcome = run(config, RunOptions(until="profiled", ranks=1))
        assert fleet.requests == []
        a, b = fleet.server_name("a"), fleet.server_name("b")
    assert outcome.completed_stages == ["batched", "profiled"]
    profiles = read_profiles(layout_of(config).profiles_table)
    assert (profiles[a].rate_limit, profiles[a].max_rate_limit, profiles[a].status) == (
        3.0,
        None,
        None,
    )
    assert (profiles[b].rate_limit, profiles[b].max_rate_limit) == (7.0, 50.0)
    assert profiles[b].status == UNSEEN and profiles[b].learned_at is None
    assert profiles[a].total_urls == profiles[b].total_urls == 5


# --- Retry-After: a pause for refusals that cluster, a delay of one URL otherwise -------------

IMAGE = make_image_bytes("jpeg", 64, 48)
S3_SLOW_DOWN = (
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
)
Log = list[tuple[float, str, int]]  # (arrival, image name, status sent)


@contextlib.asynccontextmanager
async def first_image_fails(
    status: int, body: bytes = b"", *, failures: int = 1
) -> AsyncIterator[tuple[str, Log]]:
    """A server whose first ``failures`` image requests are answered ``status`` with
    ``Retry-After: 2``."""
    log: Log = []

    async def image(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if len(log) < failures:
            log.append((time.monotonic(), name, status))
            return web.Response(status=status, body=body, headers={"Retry-After": "2"})
        log.append((time.monotonic(), name, 200))
        return web.Response(body=IMAGE, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/img/{name}", image)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.9", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}", log
    finally:
        await runner.cleanup()


async def _run_against(tmp_path: Path, base: str) -> None:
    write_urls(tmp_path / "urls.csv", [f"{base}/img/{i}" for i in range(8)])
    hand_set(tmp_path, {base.removeprefix("http://"): 10.0})
    config = write_config(tmp_path)
    await download(config)
    assert assert_exactly_once(tmp_path / "urls.csv", layout_of(config)) == (8, 0)


TOO_FAST = [(429, b""), (503, S3_SLOW_DOWN)]


@pytest.mark.parametrize(("status", "body"), TOO_FAST)
async def test_refusals_that_cluster_with_retry_after_pause_the_host(
    tmp_path: Path, status: int, body: bytes
) -> None:
    async with first_image_fails(status, body, failures=2) as (base, log):
        await _run_against(tmp_path, base)
    refused_again_at = log[1][0]
    later = [t for t, _, _ in log[2:]]
    assert min(later) - refused_again_at >= 1.9  # nothing at all during the pause


@pytest.mark.parametrize(("status", "body"), [*TOO_FAST, (503, b"")])
async def test_a_lone_refusal_or_server_error_with_retry_after_delays_only_its_own_url(
    tmp_path: Path, status: int, body: bytes
) -> None:
    async with first_image_fails(status, body) as (base, log):
        await _run_against(tmp_path, base)
    failed_at, failed_name, _ = log[0]
    retried_at = next(t for t, name, _ in log[1:] if name == failed_name)
    others = [t for t, name, _ in log[1:] if name != failed_name]
    assert retried_at - failed_at >= 1.9  # that URL waited its Retry-After...
    assert len(others) == 7 and max(others) < failed_at + 1.9  # ...the others did not
