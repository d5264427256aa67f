"""Behind a site proxy: requests go through a real forward proxy (tinyproxy on loopback),
checked from the servers' side (the address a request came from) and from the proxy's log;
budgets, robots.txt and host keys stay the target hosts'; NO_PROXY hosts are fetched directly.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import trustme
from aiohttp import web
from paced_runs import download, error_codes, hand_set, images, times, write_urls
from support import assert_exactly_once, layout_of, write_config
from tinyproxy_harness import PROXY_SOURCE, Tinyproxy, running_tinyproxy

from distdl.config import DownloaderParameters
from distdl.core import codes
from distdl.core.proxies import choose_proxies
from distdl.core.redirects import PublicNetworks
from distdl.core.urls import safe_dir_name
from distdl.layout import REJECTED_SERVER_DIR
from distdl.net.fetcher import AiohttpFetcher, FetchResult
from distdl.net.session import make_session
from distdl.net.settings import FetchSettings
from distdl.testing.fleet import Fleet, HostSpec, RequestRecord, max_requests_in_window
from distdl.testing.image_samples import make_image_bytes

pytestmark = pytest.mark.timeout(120)

CREDENTIALS = ("distdl", "s3cret")


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tinyproxy]:
    with running_tinyproxy(tmp_path_factory.mktemp("proxy")) as running:
        yield running


@pytest.fixture(scope="module")
def auth_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tinyproxy]:
    with running_tinyproxy(tmp_path_factory.mktemp("auth-proxy"), CREDENTIALS) as running:
        yield running


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[str, Path, list[str]]]:
    """An HTTPS image server on 127.0.0.1 signed by a CA of its own: (base URL, the CA's
    certificate, the address every request came from)."""
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    ca = tmp_path / "site-ca.pem"
    authority.cert_pem.write_to_path(str(ca))
    remotes: list[str] = []
    body = make_image_bytes("jpeg", 40, 30)

    async def image(request: web.Request) -> web.Response:
        remotes.append(request.remote or "")
        return web.Response(body=body, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/img/{name}", image)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"https://127.0.0.1:{port}", ca, remotes
    finally:
        await runner.cleanup()


async def fetch_with(settings: FetchSettings, url: str) -> FetchResult:
    async with make_session(settings) as session:
        return await AiohttpFetcher(session, settings).fetch(url)


async def fetch_via(url: str, proxy_url: str, ca: Path | None = None) -> FetchResult:
    return await fetch_with(FetchSettings(proxies=choose_proxies(proxy_url, {}), ca_bundle=ca), url)


def lines_for(proxy: Tinyproxy, base_url: str) -> list[str]:
    """The proxy's request lines for one server (absolute-form GETs and CONNECTs)."""
    authority = base_url.split("://", 1)[1]
    return [
        line for line in proxy.requests() if f" {authority}" in line or f"/{authority}/" in line
    ]


def unused_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- one request ---------------------------------------------------------------------------


async def test_plain_http_goes_to_the_proxy_in_absolute_form(proxy: Tinyproxy) -> None:
    async with Fleet([HostSpec("museum")], seed=1) as fleet:
        url = fleet.image_url("museum", 1)
        result = await fetch_via(url, proxy.url)
        records = fleet.requests_for("museum")
    assert result.ok and result.body
    assert [record.remote for record in records] == [PROXY_SOURCE]
    assert lines_for(proxy, fleet.base_url("museum")) == [f"GET {url}"]
    # The address checks see the URL's host (a literal here), never the proxy's address.
    assert result.peer_ip == fleet.address("museum")[0]


async def test_https_goes_through_a_connect_tunnel(
    proxy: Tinyproxy, tls_server: tuple[str, Path, list[str]]
) -> None:
    base, ca, remotes = tls_server
    result = await fetch_via(f"{base}/img/1.jpg", proxy.url, ca)
    assert result.ok and result.body, result.error_msg
    assert remotes == [PROXY_SOURCE]
    assert lines_for(proxy, base) == [f"CONNECT {base.removeprefix('https://')}"]
    assert result.peer_ip == "127.0.0.1"


async def test_credentials_reach_the_proxy_on_both_schemes(
    auth_proxy: Tinyproxy, tls_server: tuple[str, Path, list[str]]
) -> None:
    base, ca, remotes = tls_server
    without = auth_proxy.url.replace(f"{CREDENTIALS[0]}:{CREDENTIALS[1]}@", "")
    async with Fleet([HostSpec("museum")], seed=2) as fleet:
        url = fleet.image_url("museum", 1)
        plain, plain_refused = await fetch_via(url, auth_proxy.url), await fetch_via(url, without)
        records = fleet.requests_for("museum")
    tunnelled = await fetch_via(f"{base}/img/1.jpg", auth_proxy.url, ca)
    tunnel_refused = await fetch_via(f"{base}/img/2.jpg", without, ca)
    assert plain.ok and tunnelled.ok, (plain.error_msg, tunnelled.error_msg)
    assert len(records) == 1 and len(remotes) == 1  # the refused ones never arrived
    assert plain_refused.status == 407
    assert tunnel_refused.error_code == codes.CONNECTION_ERROR
    assert "proxy refused the tunnel: HTTP 407" in tunnel_refused.error_msg


async def test_the_config_key_wins_over_the_environment(proxy: Tinyproxy) -> None:
    dead = f"http://127.0.0.1:{unused_port()}"
    keyed = FetchSettings.from_config(DownloaderParameters(proxy=proxy.url), {"HTTP_PROXY": dead})
    off = FetchSettings.from_config(DownloaderParameters(proxy=False), {"HTTP_PROXY": dead})
    environment = FetchSettings.from_config(DownloaderParameters(), {"http_proxy": dead})
    async with Fleet([HostSpec("museum")], seed=3) as fleet:
        through_key = await fetch_with(keyed, fleet.image_url("museum", 1))
        direct = await fetch_with(off, fleet.image_url("museum", 2))
        through_dead = await fetch_with(environment, fleet.image_url("museum", 3))
        records = fleet.requests_for("museum")
    assert through_key.ok and direct.ok
    assert [(r.path.split("?")[0], r.remote == PROXY_SOURCE) for r in records] == [
        ("/img/1.jpeg", True),
        ("/img/2.jpeg", False),
    ]
    assert through_dead.error_code == codes.CONNECTION_ERROR
    assert through_dead.error_msg.startswith(f"cannot connect to proxy {dead[7:]}")


# --- whole runs ----------------------------------------------------------------------------


def proxied(records: list[RequestRecord]) -> list[RequestRecord]:
    return [record for record in records if record.remote == PROXY_SOURCE]


async def test_a_run_through_the_proxy_keeps_the_target_hosts_budgets_robots_and_keys(
    proxy: Tinyproxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts = [
        HostSpec("slow"),
        HostSpec("fast"),
        HostSpec("resolver", redirect_to="cdn"),
        HostSpec("cdn"),
        HostSpec("mirror"),  # in NO_PROXY: fetched directly
    ]
    rows = {"slow": 4, "fast": 8, "resolver": 4, "mirror": 4}
    budgets = {"slow": 2.0, "fast": 4.0, "resolver": 4.0, "cdn": 2.0}
    async with Fleet(hosts, seed=5) as fleet:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        # Matched against the server key (127.0.1.5:PORT), beside an entry that matches nothing.
        monkeypatch.setenv("no_proxy", f"elsewhere.example,{fleet.server_name('mirror')}")
        urls = [fleet.image_url(host, i) for host, count in rows.items() for i in range(count)]
        write_urls(tmp_path / "urls.csv", urls)
        hand_set(tmp_path, {fleet.server_name(host): rate for host, rate in budgets.items()})
        config = write_config(tmp_path)
        report = await download(config)
        seen = {host: fleet.requests_for(host) for host in fleet.host_names}
        bases = {host: fleet.base_url(host) for host in fleet.host_names}
        keys = {host: fleet.server_name(host) for host in fleet.host_names}
    assert assert_exactly_once(tmp_path / "urls.csv", layout_of(config)) == (20, 0)
    assert report.requests == sum(len(records) for records in seen.values())
    for host, budget in budgets.items():
        records = seen[host]
        assert proxied(records) == records, host  # every request through the proxy...
        assert records[0].path == "/robots.txt", host  # ...its own robots.txt first...
        assert sorted(lines_for(proxy, bases[host])) == sorted(
            f"GET {bases[host]}{record.path}" for record in records
        )  # ...each in the proxy's log, in absolute form
        # ...and paced by the target host's own budget.
        assert max_requests_in_window(times(records), 1.0) <= budget + 1, host
    assert all("via=resolver" in record.path for record in images(seen["cdn"]))
    # One proxy carried all of them: had it been one "host", this would be one budget.
    carried = times(record for host in budgets for record in seen[host])
    assert max_requests_in_window(carried, 1.0) > max(budgets.values()) + 1
    # The NO_PROXY host was fetched directly.
    assert len(images(seen["mirror"])) == 4 and not proxied(seen["mirror"])
    assert lines_for(proxy, bases["mirror"]) == []
    # Partitions are named by the target hosts, never by the proxy.
    planned = {path.name for path in layout_of(config).images.glob("server_name=*")}
    planned.discard(f"server_name={REJECTED_SERVER_DIR}")
    assert planned == {f"server_name={safe_dir_name(keys[host])}" for host in rows}


async def origin_server(ip: str) -> tuple[web.AppRunner, str]:
    """A server that answers ``/go?to=URL`` with a 302 to URL (robots.txt: 404)."""

    async def go(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    app = web.Application()
    app.router.add_get("/go", go)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, ip, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://{ip}:{port}"


@pytest.mark.parametrize("through_proxy", [True, False])
async def test_through_the_proxy_a_redirect_to_a_literal_is_checked_and_a_name_passes(
    proxy: Tinyproxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, through_proxy: bool
) -> None:
    # The origin (127.0.0.3) is declared public, the fleet (127.0.0.1, .2) is not. The
    # proxy resolves "localhost" itself; the client never does, so the name cannot be
    # checked and passes, while the literal 127.0.0.2 is refused either way. Without the
    # proxy the client resolves the name to loopback, and refuses it too.
    policy = PublicNetworks.of(["127.0.0.3/32"])
    async with Fleet(
        [HostSpec("by-name"), HostSpec("by-address")], seed=6, base_ip="127.0.0.1"
    ) as fleet:
        runner, origin = await origin_server("127.0.0.3")
        try:
            if through_proxy:
                monkeypatch.setenv("HTTP_PROXY", proxy.url)
            port = fleet.address("by-name")[1]
            by_name = [
                f"{origin}/go?to="
                + quote(f"http://localhost:{port}/img/{i}.jpeg?w=64&h=48", safe="")
                for i in range(2)
            ]
            by_address = [
                f"{origin}/go?to=" + quote(fleet.image_url("by-address", i), safe="")
                for i in range(2)
            ]
            write_urls(tmp_path / "urls.csv", by_name + by_address)
            named_key = f"localhost:{port}"
            hand_set(tmp_path, {origin.removeprefix("http://"): 20.0, named_key: 20.0})
            config = write_config(tmp_path)
            await download(config, policy)
        finally:
            await runner.cleanup()
        named, addressed = fleet.requests_for("by-name"), fleet.requests_for("by-address")
    refused = by_address if through_proxy else by_address + by_name
    assert assert_exactly_once(tmp_path / "urls.csv", layout_of(config)) == (
        4 - len(refused),
        len(refused),
    )
    assert error_codes(config) == dict.fromkeys(refused, codes.UNSAFE_REDIRECT)
    assert addressed == []
    if through_proxy:
        assert len(images(named)) == 2 and proxied(named) == named
    else:
        assert named == []
