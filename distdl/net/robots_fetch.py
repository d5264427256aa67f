"""Download a host's robots.txt the way RFC 9309 asks; parsing lives in distdl.core.robots.

``(status, text)`` is all the rules need:

- ``(200..299, text)``: parse ``text`` (at most the first 500 KiB, cut at a line end).
- ``(4xx, None)``: "unavailable", no restrictions. ``(5xx, None)``: disallow everything.
- ``(None, None)``: "unreachable" (connection error, DNS failure, timeout, broken body),
  which the rules treat like a 5xx: disallow everything, try again later.

More than five consecutive redirects (RFC 9309 section 2.3.1.2 says the crawler MAY then
assume robots.txt is unavailable) are reported as unreachable instead: a redirect loop on
robots.txt more often means a bot wall or login page than a missing file, and the
conservative reading never crawls against the owner's wishes. A redirect to a
non-http(s) location, or one the caller's ``may_follow`` refuses (a public host pointing
inside the network), is treated the same way.

The redirects are followed here, one hop at a time, each through the caller's ``fetch``:
the worker passes one that waits for the host's gate, so every hop of a robots.txt fetch is
paced by the budget of the host whose robots.txt it is (robots.txt redirects are few, and
mostly stay on the host: http to https, a ``www.`` prefix).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from distdl.net.fetcher import AiohttpFetcher, FetchResult
from distdl.net.headers import with_header
from distdl.net.settings import FetchSettings

FetchHop = Callable[[str], Awaitable[FetchResult]]
# May the redirect in this answer be followed? (the answer, redirects followed before it)
MayFollow = Callable[[FetchResult, int], Awaitable[bool]]

ROBOTS_MAX_BYTES = 500 * 1024  # RFC 9309 2.5: parse at least 500 KiB
ROBOTS_MAX_REDIRECTS = 5  # RFC 9309 2.3.1.2: follow at least five consecutive redirects


def robots_url(base_url: str) -> str:
    """``scheme://host[:port]/robots.txt`` for any URL of the host (credentials dropped)."""
    parts = urlsplit(base_url)
    host_and_port = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host_and_port, "/robots.txt", "", ""))


def robots_fetcher(session: aiohttp.ClientSession, settings: FetchSettings) -> AiohttpFetcher:
    """A fetcher for robots.txt files: reads the first 500 KiB, asks for text."""
    # One byte over the cap tells "exactly 500 KiB" apart from "cut at 500 KiB".
    robots_settings = replace(
        settings,
        max_bytes=ROBOTS_MAX_BYTES + 1,
        max_redirects=ROBOTS_MAX_REDIRECTS,
        headers=with_header(dict(settings.headers), "Accept", "text/plain, */*;q=0.5"),
    )
    return AiohttpFetcher(session, robots_settings, truncate_oversize=True)


def _decode(body: bytes) -> str:
    if len(body) > ROBOTS_MAX_BYTES:
        # Drop the partial last line rather than hand the parser half a rule.
        body = body[:ROBOTS_MAX_BYTES]
        cut = max(body.rfind(b"\n"), body.rfind(b"\r"))
        body = body[: cut + 1] if cut >= 0 else b""
    text = body.decode("utf-8", errors="replace")  # RFC 9309: robots.txt is UTF-8
    return text.removeprefix("\ufeff")


async def fetch_robots(
    fetch: FetchHop, base_url: str, may_follow: MayFollow | None = None
) -> tuple[int | None, str | None]:
    """GET the robots.txt of ``base_url``'s host through ``fetch`` (a :func:`robots_fetcher`'s,
    usually paced); see the module docstring for the result."""
    url = robots_url(base_url)
    for hops in range(ROBOTS_MAX_REDIRECTS + 1):
        result = await fetch(url)
        if result.redirect_url is None:
            break
        if hops == ROBOTS_MAX_REDIRECTS:
            return None, None
        if may_follow is not None and not await may_follow(result, hops):
            return None, None
        url = result.redirect_url
    if result.ok:
        return result.status, _decode(result.body or b"")
    if result.error_code > 0:  # the server answered with a non-2xx status
        return result.status, None
    return None, None
