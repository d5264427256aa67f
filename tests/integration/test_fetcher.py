"""AiohttpFetcher against real servers on 127.0.0.1, and map_exception on built exceptions."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import client_exceptions as ce
from aiohttp import http_exceptions, web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_reqrep import ConnectionKey
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from distdl.core import codes
from distdl.core.signals import Signal, answer_signal
from distdl.net.addresses import ResolverLookup
from distdl.net.fetcher import AiohttpFetcher, FetchResult, map_exception
from distdl.net.headers import resolve_headers
from distdl.net.session import make_session
from distdl.net.settings import FetchSettings

IMAGE_BYTES = os.urandom(300 * 1024)  # several chunks, so streaming is exercised
S3_SLOW_DOWN_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>42</RequestId></Error>"
)
CHUNK = b"x" * (64 * 1024)

# --- servers ------------------------------------------------------------------------------


def build_app(stop: asyncio.Event, requests: list[web.Request]) -> web.Application:
    app = web.Application()

    async def record(request: web.Request) -> None:
        requests.append(request)

    async def image(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(body=IMAGE_BYTES, content_type="image/jpeg")

    async def empty(request: web.Request) -> web.Response:
        return web.Response(body=b"", content_type="image/jpeg")

    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return web.Response(status=code, text="nope", headers={"Retry-After": "7"})

    async def opt_out(request: web.Request) -> web.Response:
        headers = CIMultiDict([("X-Robots-Tag", "noai"), ("X-Robots-Tag", "otherbot: noindex")])
        return web.Response(body=b"img", headers=headers, content_type="image/png")

    async def big_declared(request: web.Request) -> web.StreamResponse:
        # Claims 1 GiB, sends 1 KiB, then stalls: only an early Content-Length check
        # can answer TOO_LARGE (reading would end in a timeout instead).
        response = web.StreamResponse(headers={"Content-Length": str(1 << 30)})
        await response.prepare(request)
        await response.write(b"x" * 1024)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 60)
        return response

    async def endless(request: web.Request) -> web.StreamResponse:
        # Chunked and never ending: the test only finishes if the client stops reading.
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        with contextlib.suppress(ConnectionError, ce.ClientConnectionResetError):
            while not stop.is_set():
                await response.write(CHUNK)
        return response

    async def redirect(request: web.Request) -> web.Response:
        hops = int(request.match_info["hops"])
        if hops == 0:
            return web.Response(body=b"arrived")
        raise web.HTTPFound(f"/redirect/{hops - 1}")

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def to_ftp(request: web.Request) -> web.Response:
        raise web.HTTPFound("ftp://127.0.0.1/file.jpg")

    async def to_location(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=302, headers={"Location": request.query["to"]})

    async def no_location(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="nowhere")

    async def s3_error(request: web.Request) -> web.StreamResponse:
        body = S3_SLOW_DOWN_XML if request.match_info["code"] == "SlowDown" else b"<p>busy</p>"
        response = web.StreamResponse(status=503, reason="Slow Down")
        response.content_type = "application/xml"
        if request.query.get("chunked"):
            response.enable_chunked_encoding()
        else:
            response.content_length = len(body)
        await response.prepare(request)
        await response.write(body)
        await response.write_eof()
        return response

    app.router.add_get("/image", image)
    app.router.add_get("/empty", empty)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/opt-out", opt_out)
    app.router.add_get("/big-declared", big_declared)
    app.router.add_get("/endless", endless)
    app.router.add_get("/redirect/{hops}", redirect)
    app.router.add_get("/loop", loop)
    app.router.add_get("/to-ftp", to_ftp)
    app.router.add_get("/to", to_location)
    app.router.add_get("/no-location/{code}", no_location)
    app.router.add_get("/s3/{code}", s3_error)
    return app


class AppServer:
    def __init__(self, base: str) -> None:
        self.base = base
        self.requests: list[web.Request] = []

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture
async def server() -> AsyncIterator[AppServer]:
    stop = asyncio.Event()
    served = AppServer("")
    runner = web.AppRunner(build_app(stop, served.requests))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    served.base = f"http://{host}:{port}"
    yield served
    stop.set()
    await runner.cleanup()


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(handler: RawHandler) -> AsyncIterator[str]:
    """A bare TCP server for answers no well-behaved web framework would send."""

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await handler(reader, writer)
        writer.close()

    srv = await asyncio.start_server(guarded, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}/x.jpg"
    finally:
        srv.close()
        await srv.wait_closed()


def reset_connection(writer: asyncio.StreamWriter) -> None:
    """Close with an RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def fetch_once(url: str, **overrides: Any) -> FetchResult:
    settings = FetchSettings(**overrides)
    async with make_session(settings) as session:
        return await AiohttpFetcher(session, settings).fetch(url)


# --- successes and HTTP statuses ----------------------------------------------------------


async def test_success_returns_exact_bytes(server: AppServer) -> None:
    result = await fetch_once(server.url("/image"))
    assert result.ok
    assert (result.status, result.error_code, result.error_msg) == (200, 0, "")
    assert result.body == IMAGE_BYTES
    assert result.content_type == "image/jpeg"
    assert result.url == server.url("/image")
    assert result.redirect_url is None
    assert result.peer_ip == "127.0.0.1"
    assert result.elapsed >= 0


async def test_empty_200_is_ok_with_empty_body(server: AppServer) -> None:
    result = await fetch_once(server.url("/empty"))
    assert result.ok
    assert result.body == b""


@pytest.mark.parametrize(
    ("code", "phrase"), [(404, "Not Found"), (429, "Too Many Requests"), (503, "Unavailable")]
)
async def test_http_errors_keep_status_and_retry_after(
    server: AppServer, code: int, phrase: str
) -> None:
    result = await fetch_once(server.url(f"/status/{code}"))
    assert not result.ok
    assert (result.status, result.error_code) == (code, code)
    assert result.error_msg.startswith(f"HTTP {code}")
    assert phrase in result.error_msg
    assert result.body is None
    assert result.retry_after == "7"
    assert result.peer_ip == "127.0.0.1"


@pytest.mark.parametrize("chunked", ["", "1"])
async def test_s3_slow_down_is_named_in_the_message(server: AppServer, chunked: str) -> None:
    result = await fetch_once(server.url(f"/s3/SlowDown?chunked={chunked}"))
    assert (result.status, result.error_code) == (503, 503)
    assert result.error_msg == "HTTP 503 Slow Down (SlowDown)"
    assert answer_signal(result.error_code, result.error_msg) is Signal.RATE_LIMITED


async def test_a_503_without_an_s3_code_is_a_server_error(server: AppServer) -> None:
    result = await fetch_once(server.url("/s3/none"))
    assert result.error_msg == "HTTP 503 Slow Down"
    assert answer_signal(result.error_code, result.error_msg) is Signal.SERVER_ERROR


async def test_x_robots_tag_values_are_all_collected(server: AppServer) -> None:
    result = await fetch_once(server.url("/opt-out"))
    assert result.ok
    assert result.x_robots_tag == ("noai", "otherbot: noindex")


async def test_configured_headers_and_our_user_agent_reach_the_server(server: AppServer) -> None:
    headers = resolve_headers({"X-Project": "biodiversity"}, "ops@example.org")
    await fetch_once(server.url("/image"), headers=headers)
    await fetch_once(server.url("/image"))  # defaults: header=True, no contact
    custom, default = (request.headers for request in server.requests)
    assert custom["X-Project"] == "biodiversity"
    assert custom["User-Agent"].startswith("distdl/")
    assert "ops@example.org" in custom["User-Agent"]
    assert default["User-Agent"].startswith("distdl/")
    assert "aiohttp" not in default["User-Agent"]
    assert default["Accept"] == "image/*"


# --- size cap -----------------------------------------------------------------------------


@pytest.mark.timeout(30)
async def test_declared_content_length_over_cap_is_rejected_before_reading(
    server: AppServer,
) -> None:
    result = await fetch_once(server.url("/big-declared"), max_bytes=100_000, read_timeout=20)
    assert result.error_code == codes.TOO_LARGE
    assert result.status == 200
    assert "Content-Length" in result.error_msg
    assert result.body is None


@pytest.mark.timeout(30)
async def test_endless_chunked_body_stops_past_the_cap(server: AppServer) -> None:
    result = await fetch_once(server.url("/endless"), max_bytes=256 * 1024)
    assert result.error_code == codes.TOO_LARGE
    assert "max_bytes 262144" in result.error_msg
    assert result.body is None


async def test_body_of_exactly_max_bytes_is_accepted(server: AppServer) -> None:
    result = await fetch_once(server.url("/image"), max_bytes=len(IMAGE_BYTES))
    assert result.ok
    assert result.body == IMAGE_BYTES


async def test_body_one_byte_over_the_cap_is_too_large(server: AppServer) -> None:
    result = await fetch_once(server.url("/image"), max_bytes=len(IMAGE_BYTES) - 1)
    assert result.error_code == codes.TOO_LARGE


async def test_truncate_oversize_returns_the_first_max_bytes(server: AppServer) -> None:
    settings = FetchSettings(max_bytes=1000)
    async with make_session(settings) as session:
        fetcher = AiohttpFetcher(session, settings, truncate_oversize=True)
        result = await fetcher.fetch(server.url("/image"))
    assert result.ok
    assert result.body == IMAGE_BYTES[:1000]


# --- redirects ----------------------------------------------------------------------------


async def test_a_redirect_is_returned_with_its_absolute_next_url_not_followed(
    server: AppServer,
) -> None:
    result = await fetch_once(server.url("/redirect/3"))
    assert (result.status, result.error_code) == (302, 302)
    assert result.redirect_url == server.url("/redirect/2")
    assert result.error_msg == "HTTP 302 Found"
    assert result.peer_ip == "127.0.0.1"
    assert not result.ok and result.body is None


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("http://127.0.0.2:8080/a.jpg#frag", "http://127.0.0.2:8080/a.jpg"),
        ("//127.0.0.3/b.jpg", "http://127.0.0.3/b.jpg"),
        ("c.jpg?x=1", "/c.jpg?x=1"),
        ("https://Images.Example.org/d.jpg", "https://images.example.org/d.jpg"),
    ],
)
async def test_redirect_locations_are_made_absolute(
    server: AppServer, location: str, expected: str
) -> None:
    result = await fetch_once(server.url("/to?" + urlencode({"to": location})))
    want = server.url(expected) if expected.startswith("/") else expected
    assert result.redirect_url == want
    assert len(server.requests) == 1  # nothing followed


@pytest.mark.parametrize(
    ("location", "fragment"),
    [
        ("ftp://127.0.0.1/file.jpg", "non-http(s)"),
        ("javascript:alert(1)", "non-http(s)"),
        ("http://[::1/x", "invalid location"),
        ("http://256.1.1.1/x", "invalid location"),
    ],
)
async def test_unfollowable_locations_are_invalid_redirects(
    server: AppServer, location: str, fragment: str
) -> None:
    result = await fetch_once(server.url("/to?" + urlencode({"to": location})))
    assert result.error_code == codes.INVALID_REDIRECT
    assert result.redirect_url is None
    assert fragment in result.error_msg


async def test_redirect_to_ftp_is_an_invalid_redirect(server: AppServer) -> None:
    result = await fetch_once(server.url("/to-ftp"))
    assert result.error_code == codes.INVALID_REDIRECT
    assert "ftp://127.0.0.1/file.jpg" in result.error_msg


@pytest.mark.parametrize("code", [300, 302, 304])
async def test_a_3xx_without_a_location_is_an_error_status(server: AppServer, code: int) -> None:
    result = await fetch_once(server.url(f"/no-location/{code}"))
    assert (result.error_code, result.redirect_url) == (code, None)


# --- URLs the fetcher refuses -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "code"),
    [("ftp://127.0.0.1/a.jpg", codes.UNSUPPORTED_SCHEME), ("http://", codes.INVALID_URL)],
)
async def test_unfetchable_urls_become_error_rows(url: str, code: int) -> None:
    result = await fetch_once(url)
    assert (result.status, result.error_code, result.url, result.peer_ip) == (0, code, url, None)


async def test_closed_session_is_an_internal_error_not_an_exception() -> None:
    settings = FetchSettings()
    session = make_session(settings)
    await session.close()
    result = await AiohttpFetcher(session, settings).fetch("http://127.0.0.1:9/x")
    assert result.error_code == codes.INTERNAL_ERROR
    assert "RuntimeError" in result.error_msg


# --- network failures ---------------------------------------------------------------------


async def test_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = await fetch_once(f"http://127.0.0.1:{port}/x.jpg")
    assert result.error_code == codes.CONNECTION_ERROR
    assert result.error_msg == f"connection refused by 127.0.0.1:{port}"


@pytest.mark.timeout(30)
async def test_server_that_never_answers_is_a_read_timeout() -> None:
    stop = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await stop.wait()

    async with raw_server(silent) as url:
        result = await fetch_once(url, read_timeout=0.3)
        stop.set()
    assert result.error_code == codes.TIMEOUT
    assert result.error_msg == "read timeout after 0.3 s"


@pytest.mark.timeout(30)
async def test_full_listen_backlog_is_a_connect_timeout() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)  # never accepted: once the queue is full, SYNs are dropped
        port = listener.getsockname()[1]
        fillers = fill_accept_queue(port)
        try:
            result = await fetch_once(f"http://127.0.0.1:{port}/x", connect_timeout=0.3)
        finally:
            for filler in fillers:
                filler.close()
    assert result.error_code == codes.TIMEOUT
    assert result.error_msg == "connect timeout after 0.3 s"


def fill_accept_queue(port: int) -> list[socket.socket]:
    fillers: list[socket.socket] = []
    for _ in range(16):
        filler = socket.socket()
        fillers.append(filler)
        filler.settimeout(0.5)
        try:
            filler.connect(("127.0.0.1", port))
        except TimeoutError:
            return fillers  # this one was dropped: the queue is full
    raise AssertionError("the accept queue never filled up")


async def test_reset_before_any_response_is_a_connection_error() -> None:
    async def rude(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        reset_connection(writer)

    async with raw_server(rude) as url:
        result = await fetch_once(url)
    assert result.error_code == codes.CONNECTION_ERROR
    assert result.status == 0


async def test_truncated_body_with_content_length_is_a_payload_error() -> None:
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 500)
        await writer.drain()  # then a clean close (FIN) by the guard

    async with raw_server(short) as url:
        result = await fetch_once(url)
    assert result.error_code == codes.PAYLOAD_ERROR
    assert result.status == 200
    assert result.body is None
    assert "received 500 of 1000 bytes" in result.error_msg


async def test_reset_in_the_middle_of_the_body_is_a_payload_error() -> None:
    headers_seen = asyncio.Event()

    async def on_headers(*_: object) -> None:
        headers_seen.set()

    async def reset_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000)
        await writer.drain()
        await headers_seen.wait()  # the client has the status line: we are mid-body now
        reset_connection(writer)

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_headers)
    settings = FetchSettings()
    async with (
        raw_server(reset_mid_body) as url,
        aiohttp.ClientSession(trace_configs=[trace]) as session,
    ):
        result = await AiohttpFetcher(session, settings).fetch(url)
    assert result.error_code == codes.PAYLOAD_ERROR
    assert result.status == 200
    assert "reset" in result.error_msg.lower()


class LoopbackResolver(AbstractResolver):
    """Resolves a few names to 127.0.0.1 and fails every other one at once, offline."""

    def __init__(self, known: set[str]) -> None:
        self.known = known

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self.known:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            ResolveResult(
                hostname=host, host="127.0.0.1", port=port, family=socket.AF_INET, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        return None


async def test_unresolvable_host_is_a_dns_error() -> None:
    settings = FetchSettings()
    resolver = LoopbackResolver(set())
    async with make_session(settings, resolver=resolver) as session:
        result = await AiohttpFetcher(session, settings).fetch("http://does-not-exist.invalid/")
    assert result.error_code == codes.DNS_ERROR
    assert "does-not-exist.invalid" in result.error_msg


async def test_custom_resolver_maps_names_to_loopback(server: AppServer) -> None:
    settings = FetchSettings()
    port = URL(server.base).port
    async with make_session(settings, resolver=LoopbackResolver({"images.test"})) as session:
        result = await AiohttpFetcher(session, settings).fetch(f"http://images.test:{port}/image")
    assert result.ok
    assert server.requests[0].host == f"images.test:{port}"


async def test_address_lookup_resolves_names_and_knows_literals() -> None:
    lookup = ResolverLookup(LoopbackResolver({"images.test"}))
    assert await lookup.addresses("http://images.test:8080/a.jpg") == ("127.0.0.1",)
    assert await lookup.addresses("http://10.0.0.1/a.jpg") == ("10.0.0.1",)
    assert await lookup.addresses("http://[::1]:8080/a.jpg") == ("::1",)
    assert await lookup.addresses("http://unknown.test/a.jpg") == ()


async def test_cancellation_propagates() -> None:
    stop = asyncio.Event()
    request_seen = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        request_seen.set()
        await stop.wait()

    settings = FetchSettings()
    async with raw_server(silent) as url, make_session(settings) as session:
        task = asyncio.create_task(AiohttpFetcher(session, settings).fetch(url))
        await request_seen.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        stop.set()


# --- map_exception on constructed exceptions ----------------------------------------------

KEY = ConnectionKey("img.example.org", 443, True, True, None, None, None)
REQUEST_INFO = aiohttp.RequestInfo(
    URL("http://img.example.org/a.jpg"), "GET", CIMultiDictProxy(CIMultiDict())
)
GAI = socket.gaierror(socket.EAI_NONAME, "Name or service not known")

MAPPING_CASES: list[tuple[BaseException, int, str]] = [
    (ce.ClientConnectorDNSError(KEY, GAI), codes.DNS_ERROR, "img.example.org"),
    (ce.ClientConnectorError(KEY, GAI), codes.DNS_ERROR, "DNS lookup failed"),
    (GAI, codes.DNS_ERROR, "Name or service not known"),
    (
        ce.ClientConnectorError(KEY, ConnectionRefusedError(111, "x")),
        codes.CONNECTION_ERROR,
        "refused",
    ),
    (
        ce.ClientConnectorError(KEY, OSError(113, "No route to host")),
        codes.CONNECTION_ERROR,
        "No route",
    ),
    (ce.ServerDisconnectedError(), codes.CONNECTION_ERROR, "server disconnected"),
    (ce.ClientOSError(104, "Connection reset by peer"), codes.CONNECTION_ERROR, "reset"),
    (ConnectionResetError(104, "reset"), codes.CONNECTION_ERROR, "reset by peer"),
    (ce.ClientConnectionResetError("Cannot write"), codes.CONNECTION_ERROR, "reset by peer"),
    (ce.ClientConnectionError("Connection lost"), codes.CONNECTION_ERROR, "Connection lost"),
    (ce.ConnectionTimeoutError("x"), codes.TIMEOUT, "connect timeout after 10 s"),
    (ce.SocketTimeoutError("x"), codes.TIMEOUT, "read timeout after 30 s"),
    (ce.ServerTimeoutError("x"), codes.TIMEOUT, "read timeout after 30 s"),
    (asyncio.TimeoutError(), codes.TIMEOUT, "total timeout after 120 s"),
    (TimeoutError(), codes.TIMEOUT, "total timeout after 120 s"),
    (ce.ClientConnectorError(KEY, TimeoutError(110, "timed out")), codes.TIMEOUT, "connect"),
    (
        ce.ClientPayloadError("Response payload is not completed"),
        codes.PAYLOAD_ERROR,
        "not completed",
    ),
    (http_exceptions.ContentLengthError("Not enough data"), codes.PAYLOAD_ERROR, "Not enough"),
    (http_exceptions.TransferEncodingError("bad chunk"), codes.PAYLOAD_ERROR, "bad chunk"),
    (
        ce.ClientResponseError(REQUEST_INFO, (), status=400, message="Invalid status line"),
        codes.PAYLOAD_ERROR,
        "malformed response: Invalid status line",
    ),
    (
        ce.ClientConnectorCertificateError(KEY, ssl.SSLCertVerificationError(1, "verify failed")),
        codes.SSL_ERROR,
        "certificate",
    ),
    (ce.ClientConnectorSSLError(KEY, ssl.SSLError(1, "handshake failure")), codes.SSL_ERROR, "TLS"),
    (ssl.SSLError(1, "wrong version number"), codes.SSL_ERROR, "TLS"),
    (ce.ServerFingerprintMismatch(b"a", b"b", "h", 443), codes.SSL_ERROR, "fingerprint"),
    (ce.InvalidUrlClientError("http://"), codes.INVALID_URL, "invalid URL"),
    (ce.NonHttpUrlClientError("ftp://h/x"), codes.UNSUPPORTED_SCHEME, "ftp://h/x"),
    (ValueError("boom"), codes.INTERNAL_ERROR, "unexpected ValueError: boom"),
    (RuntimeError("Session is closed"), codes.INTERNAL_ERROR, "RuntimeError"),
]


@pytest.mark.parametrize(
    ("exc", "code", "fragment"), MAPPING_CASES, ids=[type(c[0]).__name__ for c in MAPPING_CASES]
)
def test_map_exception(exc: BaseException, code: int, fragment: str) -> None:
    mapped_code, message = map_exception(exc, FetchSettings())
    assert mapped_code == code
    assert fragment in message


def test_map_exception_without_settings_still_names_the_timeout() -> None:
    assert map_exception(ce.SocketTimeoutError("x")) == (codes.TIMEOUT, "read timeout")


def test_map_exception_messages_are_short() -> None:
    _, message = map_exception(ValueError("x" * 10_000))
    assert len(message) <= 200


async def test_a_reset_keep_alive_connection_is_not_silently_retried() -> None:
    """aiohttp would resend the GET on a fresh connection, unseen by the host's pacer."""
    seen: list[bytes] = []

    async def keep_alive_then_reset(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        first = await reader.readuntil(b"\r\n\r\n")
        seen.append(first)
        if len(seen) > 1:  # any later connection: the resend we must not see
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
        await writer.drain()
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        reset_connection(writer)

    settings = FetchSettings()
    async with raw_server(keep_alive_then_reset) as url, make_session(settings) as session:
        fetcher = AiohttpFetcher(session, settings)
        assert (await fetcher.fetch(url)).ok
        second = await fetcher.fetch(url)
    assert second.error_code == codes.CONNECTION_ERROR
    assert len(seen) == 2  # two GETs, no hidden third one
