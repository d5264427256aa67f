"""fetch_robots against real servers on 127.0.0.1 (RFC 9309 fetching rules)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from distdl.net.fetcher import FetchResult
from distdl.net.robots_fetch import (
    ROBOTS_MAX_BYTES,
    MayFollow,
    fetch_robots,
    robots_fetcher,
    robots_url,
)
from distdl.net.session import make_session
from distdl.net.settings import FetchSettings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RULES = "User-agent: *\nDisallow: /private\n"


@contextlib.asynccontextmanager
async def serve(routes: dict[str, Handler]) -> AsyncIterator[str]:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def text(body: str | bytes, status: int = 200) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        data = body.encode() if isinstance(body, str) else body
        return web.Response(body=data, status=status, content_type="text/plain")

    return handler


def redirect_to(location: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(location)

    return handler


def redirect_chain(length: int) -> dict[str, Handler]:
    """/robots.txt -> /hop/1 -> ... -> /hop/<length> (which serves RULES): ``length`` hops."""
    routes: dict[str, Handler] = {"/robots.txt": redirect_to("/hop/1")}
    for hop in range(1, length):
        routes[f"/hop/{hop}"] = redirect_to(f"/hop/{hop + 1}")
    routes[f"/hop/{length}"] = text(RULES)
    return routes


async def robots(
    base_url: str, may_follow: MayFollow | None = None, fetched: list[str] | None = None
) -> tuple[int | None, str | None]:
    settings = FetchSettings()
    async with make_session(settings) as session:
        fetcher = robots_fetcher(session, settings)

        async def fetch(url: str) -> FetchResult:
            if fetched is not None:
                fetched.append(url)
            return await fetcher.fetch(url)

        return await fetch_robots(fetch, base_url, may_follow)


def test_robots_url_keeps_scheme_host_and_port_only() -> None:
    assert robots_url("https://u:p@Img.example.org:8443/a/b.jpg?x=1#f") == (
        "https://Img.example.org:8443/robots.txt"
    )
    assert robots_url("http://[::1]:8080/x") == "http://[::1]:8080/robots.txt"


async def test_200_returns_the_text_from_any_url_of_the_host() -> None:
    async with serve({"/robots.txt": text(RULES)}) as base:
        assert await robots(base + "/images/a.jpg?size=large") == (200, RULES)


@pytest.mark.parametrize("status", [404, 403, 500, 503])
async def test_error_statuses_are_returned_without_text(status: int) -> None:
    async with serve({"/robots.txt": text("no", status=status)}) as base:
        assert await robots(base) == (status, None)


async def test_redirect_to_another_path_is_followed() -> None:
    routes = {"/robots.txt": redirect_to("/static/robots.txt"), "/static/robots.txt": text(RULES)}
    async with serve(routes) as base:
        assert await robots(base) == (200, RULES)


async def test_five_redirects_are_followed_each_through_the_callers_fetch() -> None:
    fetched: list[str] = []
    async with serve(redirect_chain(5)) as base:
        assert await robots(base, fetched=fetched) == (200, RULES)
    assert fetched == [base + "/robots.txt"] + [f"{base}/hop/{n}" for n in range(1, 6)]


async def test_a_redirect_the_caller_refuses_counts_as_unreachable() -> None:
    asked: list[tuple[str | None, int]] = []

    async def refuse_second(result: FetchResult, hops: int) -> bool:
        asked.append((result.redirect_url, hops))
        return hops < 1

    async with serve(redirect_chain(3)) as base:
        assert await robots(base, refuse_second) == (None, None)
    assert asked == [(base + "/hop/1", 0), (base + "/hop/2", 1)]


async def test_six_redirects_count_as_unreachable() -> None:
    async with serve(redirect_chain(6)) as base:
        assert await robots(base) == (None, None)


async def test_redirect_to_a_non_http_location_counts_as_unreachable() -> None:
    async with serve({"/robots.txt": redirect_to("ftp://127.0.0.1/robots.txt")}) as base:
        assert await robots(base) == (None, None)


async def test_unreachable_host() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert await robots(f"http://127.0.0.1:{port}/x.jpg") == (None, None)


async def test_oversized_file_is_cut_at_the_last_whole_line_within_500_kib() -> None:
    line = "Disallow: /p/" + "a" * 50 + "\n"
    body = "User-agent: *\n" + line * (2 * ROBOTS_MAX_BYTES // len(line))
    async with serve({"/robots.txt": text(body)}) as base:
        status, got = await robots(base)
    assert status == 200
    assert got is not None
    assert len(got.encode()) <= ROBOTS_MAX_BYTES
    assert len(got.encode()) > ROBOTS_MAX_BYTES - len(line)
    assert body.startswith(got)
    assert got.endswith("\n")


async def test_file_of_exactly_500_kib_is_kept_whole() -> None:
    body = b"#" * (ROBOTS_MAX_BYTES - 1) + b"x"  # no final newline: nothing may be cut
    async with serve({"/robots.txt": text(body)}) as base:
        status, got = await robots(base)
    assert status == 200
    assert got is not None
    assert got.encode() == body


async def test_bom_is_dropped_and_bad_utf8_replaced() -> None:
    async with serve({"/robots.txt": text(b"\xef\xbb\xbfUser-agent: *\n# caf\xe9\n")}) as base:
        assert await robots(base) == (200, "User-agent: *\n# caf\ufffd\n")


async def test_request_asks_for_text_and_names_distdl() -> None:
    seen: list[web.Request] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request)
        return web.Response(text=RULES)

    async with serve({"/robots.txt": record}) as base:
        await robots(base)
    assert seen[0].headers["Accept"].startswith("text/plain")
    assert seen[0].headers["User-Agent"].startswith("distdl/")
