"""The one ``aiohttp.ClientSession`` a rank downloads with, tuned for many hosts."""

from __future__ import annotations

import ssl
import sys

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.connector import Connection

from distdl.net.settings import FetchSettings

# CPython fixed the leak of aborted TLS transports in 3.12.8 / 3.13.1; aiohttp warns when
# asked to clean them up on a fixed interpreter, so only ask where it is still needed.
_NEEDS_CLEANUP_CLOSED = sys.version_info < (3, 12, 8) or (3, 13, 0) <= sys.version_info < (
    3,
    13,
    1,
)
# aiohttp stops reading a connection once 2 x read_bufsize bytes of its body are waiting
# (64 KiB by default) and starts again as they are taken: for every body over 128 KiB, a
# pause and a resume of the socket, and more wake-ups for the loop. The fetcher reads each
# body whole as it comes (its size already allowed by max_bytes and the memory budget), so
# that back-pressure only costs: with 1 MiB, an image of up to 2 MiB arrives in one go
# (less CPU a fetch: benchmarks/README.md).
READ_BUFFER_BYTES = 1024 * 1024


class PeerAwareResponse(aiohttp.ClientResponse):
    """A response that remembers the address it came from.

    The connection leaves a response as soon as its body is in (at once for a small one), so
    the peer is read when the response starts, while the connection is still attached.
    """

    peer_ip: str | None = None

    async def start(self, connection: Connection) -> aiohttp.ClientResponse:
        transport = connection.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        self.peer_ip = str(peer[0]) if peer else None
        return await super().start(connection)


def make_timeout(settings: FetchSettings) -> aiohttp.ClientTimeout:
    # sock_read bounds every wait for bytes, so a slow-drip server cannot hold a slot for
    # the whole total timeout; sock_connect bounds the TCP/TLS handshake.
    return aiohttp.ClientTimeout(
        total=settings.total_timeout,
        sock_connect=settings.connect_timeout,
        sock_read=settings.read_timeout,
    )


def tls_context(settings: FetchSettings) -> ssl.SSLContext | bool:
    """Verification always on: the system's CAs (``SSL_CERT_FILE``/``SSL_CERT_DIR`` are
    honoured), plus ``ca_bundle`` when set (a site's own CA)."""
    if settings.ca_bundle is None:
        return True  # aiohttp's default verifying context
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=str(settings.ca_bundle))
    return context


def make_session(
    settings: FetchSettings, *, resolver: AbstractResolver | None = None
) -> aiohttp.ClientSession:
    """A session for :class:`~distdl.net.fetcher.AiohttpFetcher`; call inside a running loop.

    Per-host concurrency is capped above this layer, so ``limit_per_host`` stays 0 while
    ``limit`` bounds the open sockets of the rank. Cookies are not kept (every request is
    stateless, and a jar for hundreds of hosts costs memory and time). ``resolver`` lets
    tests and the simulated fleet map host names to loopback addresses; the caller owns it
    (and closes it), so the redirect safety check can resolve names with the same one.
    Responses are :class:`PeerAwareResponse`: each knows the address it came from.
    """
    connector = aiohttp.TCPConnector(
        limit=settings.connections_limit,
        limit_per_host=0,
        ttl_dns_cache=settings.dns_cache_ttl,
        keepalive_timeout=settings.keepalive_timeout,
        enable_cleanup_closed=_NEEDS_CLEANUP_CLOSED,
        resolver=resolver,
        ssl=tls_context(settings),
    )
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=make_timeout(settings),
        headers=dict(settings.headers),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=True,
        raise_for_status=False,
        # The proxy variables are honoured, but read by distdl.core.proxies (NO_PROXY matched
        # against server keys) and passed per request by the fetcher: aiohttp's trust_env
        # would match NO_PROXY its own way and also send credentials from ~/.netrc.
        trust_env=False,
        response_class=PeerAwareResponse,
        read_bufsize=READ_BUFFER_BYTES,
    )
    # aiohttp silently resends a GET once when a reused keep-alive connection is reset. That
    # second request never passes the host's pacer, so a flaky server would get more than
    # its budget; our own retry policy handles the failure instead, paced like any request.
    # There is no public switch in aiohttp 3.x; tests/integration/test_fetcher.py checks that
    # this private flag still exists and works.
    session._retry_connection = False  # type: ignore[attr-defined]
    return session
