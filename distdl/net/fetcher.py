"""GET one URL with aiohttp and describe the outcome as data: the only place aiohttp errors
are mapped to distdl error codes.

Every per-URL problem becomes a :class:`FetchResult` with a code from
:mod:`distdl.core.codes`; :meth:`AiohttpFetcher.fetch` never raises for them. Only
``asyncio.CancelledError`` (and other ``BaseException``) travel up.

Redirects are not followed here: each hop must be paced by the budget of the host it goes
to, so the caller follows them (see :mod:`distdl.runtime.lease_runner`). A 3xx with a
``Location`` comes back with ``redirect_url``, the absolute next URL, already checked to be
an http(s) URL with a valid host; a location that is not is ``INVALID_REDIRECT``. Every
answer carries ``peer_ip``, the address it came from, for the caller's redirect safety check.

A URL that ``settings.proxies`` sends through a forward proxy (:mod:`distdl.net.proxy`) is
answered by the proxy's socket, and the client never learns the target's address: its
``peer_ip`` is then the URL's host when that is an IP literal, else None (a name, resolved
by the proxy alone; see :mod:`distdl.net.addresses`).

A 2xx answer with an empty body is returned as a success with ``body == b""``: deciding
that zero bytes are not an image (``UNDECODABLE``) is the image pipeline's job.

An error answer whose small body names an S3-style error code (``<Code>SlowDown</Code>``)
gets the code in its message ("HTTP 503 Slow Down (SlowDown)"): that is how
:func:`distdl.core.signals.answer_signal` tells an object store's "slow down" from a 503.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Protocol

import aiohttp
from aiohttp import client_exceptions as ce
from aiohttp import http_exceptions
from yarl import URL

from distdl.core import codes
from distdl.core.urls import classify_url
from distdl.net.addresses import literal_ip
from distdl.net.proxy import proxied_request
from distdl.net.session import PeerAwareResponse, make_timeout
from distdl.net.settings import FetchSettings

CHUNK_SIZE = 64 * 1024
# Small error bodies are read and dropped so the keep-alive connection can be reused;
# larger ones are not worth the bytes, and closing the connection is cheaper.
_DRAIN_LIMIT = 64 * 1024
_MAX_MSG_CHARS = 200
_NOT_A_REDIRECT = 304  # "Not Modified" is a 3xx that goes nowhere
# The error code of an S3-style XML error body: <Error><Code>SlowDown</Code>...</Error>
_S3_CODE = re.compile(rb"<Code>\s*([A-Za-z][A-Za-z0-9.]{0,63})\s*</Code>")


@dataclass(frozen=True)
class FetchResult:
    url: str
    status: int  # HTTP status, or 0 when no response
    error_code: int  # 0 = success; else the HTTP status or a negative distdl.core.codes code
    error_msg: str  # "" on success
    body: bytes | None  # only kept on success
    content_type: str | None
    retry_after: str | None
    x_robots_tag: tuple[str, ...]
    elapsed: float  # wall seconds, from the call to the last byte or the failure
    redirect_url: str | None = None  # a 3xx's absolute, validated next URL
    peer_ip: str | None = None  # the address the answer came from; None without an answer

    @property
    def ok(self) -> bool:
        return self.error_code == 0


class Fetcher(Protocol):
    async def fetch(self, url: str) -> FetchResult: ...


class AiohttpFetcher:
    """Streams bodies up to ``settings.max_bytes``; one request, no redirect followed.

    With ``truncate_oversize`` a body over the cap is cut to ``max_bytes`` and returned as a
    success instead of ``TOO_LARGE`` (robots.txt parsers must read the first 500 KiB).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: FetchSettings,
        *,
        truncate_oversize: bool = False,
    ) -> None:
        self._session = session
        self._settings = settings
        self._truncate_oversize = truncate_oversize
        self._headers = dict(settings.headers)
        self._timeout = make_timeout(settings)

    async def fetch(self, url: str) -> FetchResult:
        started = time.monotonic()
        proxy_url = self._settings.proxies.proxy_for(url)
        how = proxied_request(url, proxy_url, self._headers)
        try:
            async with self._session.get(
                url,
                headers=how.headers,
                proxy=how.proxy,
                proxy_headers=how.proxy_headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as resp:
                peer = literal_ip(url) if proxy_url is not None else _peer_ip(resp)
                return await self._read_response(url, resp, started, peer)
        except Exception as exc:  # CancelledError is a BaseException: it propagates
            code, msg = map_exception(exc, self._settings)
            return _result(url, None, code, msg, None, started, peer=None)

    async def _read_response(
        self, url: str, resp: aiohttp.ClientResponse, started: float, peer: str | None
    ) -> FetchResult:
        if not 200 <= resp.status < 300:
            error_body = await _read_error_body(resp)
            message = _status_message(resp, error_body)
            code, next_url = resp.status, None
            if _is_redirect(resp):
                next_url, invalid = _redirect_target(resp)
                if next_url is None:
                    code, message = codes.INVALID_REDIRECT, invalid
            return _result(url, resp, code, message, None, started, next_url, peer=peer)
        try:
            body, too_large_msg = await self._read_body(resp)
        except Exception as exc:
            code, msg = map_exception(exc, self._settings)
            return _result(url, resp, code, msg, None, started, peer=peer)
        if body is None:
            return _result(url, resp, codes.TOO_LARGE, too_large_msg, None, started, peer=peer)
        return _result(url, resp, 0, "", body, started, peer=peer)

    async def _read_body(self, resp: aiohttp.ClientResponse) -> tuple[bytes | None, str]:
        """The body, or ``None`` and why it was refused; never reads much past the cap."""
        cap = self._settings.max_bytes
        declared = resp.content_length
        if declared is not None and declared > cap and not self._truncate_oversize:
            resp.close()  # drop the connection rather than download what we will not keep
            return None, f"Content-Length {declared} over max_bytes {cap}"
        if declared is not None and declared <= cap:
            # Its size is known and allowed: one read, not a Python step per chunk.
            return await resp.read(), ""
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(CHUNK_SIZE):
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                resp.close()
                if self._truncate_oversize:
                    return b"".join(chunks)[:cap], ""
                return None, f"body over max_bytes {cap}"
        return b"".join(chunks), ""


def _result(
    url: str,
    resp: aiohttp.ClientResponse | None,
    code: int,
    msg: str,
    body: bytes | None,
    started: float,
    redirect_url: str | None = None,
    *,
    peer: str | None,
) -> FetchResult:
    elapsed = time.monotonic() - started
    if resp is None:
        return FetchResult(url, 0, code, msg, None, None, None, (), elapsed)
    headers = resp.headers
    return FetchResult(
        url=url,
        status=resp.status,
        error_code=code,
        error_msg=msg,
        body=body,
        content_type=headers.get("Content-Type"),
        retry_after=headers.get("Retry-After"),
        x_robots_tag=tuple(headers.getall("X-Robots-Tag", ())),
        elapsed=elapsed,
        redirect_url=redirect_url,
        peer_ip=peer,
    )


def _peer_ip(resp: aiohttp.ClientResponse) -> str | None:
    # Known when the session comes from distdl.net.session.make_session.
    return resp.peer_ip if isinstance(resp, PeerAwareResponse) else None


def _is_redirect(resp: aiohttp.ClientResponse) -> bool:
    return resp.status // 100 == 3 and resp.status != _NOT_A_REDIRECT and "Location" in resp.headers


def _redirect_target(resp: aiohttp.ClientResponse) -> tuple[str | None, str]:
    """The absolute next URL of a redirect, or None and why it cannot be followed."""
    location = resp.headers["Location"]
    try:
        target = resp.url.join(URL(location)).with_fragment(None)
    except (ValueError, TypeError) as exc:
        return None, _clip(f"redirect to an invalid location {location!r}: {exc}")
    if target.scheme not in ("http", "https"):
        return None, _clip(f"redirect to non-http(s) location {location}")
    verdict = classify_url(str(target))
    if not verdict.ok:
        return None, _clip(f"redirect to an invalid location {location}: {verdict.error_msg}")
    return str(target), ""


def _status_message(resp: aiohttp.ClientResponse, error_body: bytes) -> str:
    reason = resp.reason
    if not reason:
        try:
            reason = HTTPStatus(resp.status).phrase
        except ValueError:
            reason = ""
    message = f"HTTP {resp.status} {reason}".rstrip()
    s3_code = _S3_CODE.search(error_body)
    if s3_code:
        message += f" ({s3_code.group(1).decode()})"
    return _clip(message)


async def _read_error_body(resp: aiohttp.ClientResponse) -> bytes:
    """A small error body, read so the keep-alive connection can be reused (and an S3 error
    code found); b"" when it is large, or of unknown length on anything but a 503."""
    length = resp.content_length
    if length is None and resp.status != 503:
        return b""  # leaving it unread makes aiohttp close the connection on release
    if length is not None and length > _DRAIN_LIMIT:
        return b""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in resp.content.iter_chunked(CHUNK_SIZE):
            chunks.append(chunk)
            size += len(chunk)
            if size > _DRAIN_LIMIT:
                resp.close()
                break
    except Exception:
        # The status is what we report; a broken error body only costs the connection.
        resp.close()
    return b"".join(chunks)


# --- the one place aiohttp / OS exceptions become error codes ------------------------------

_Mapped = tuple[int, str]


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MSG_CHARS else text[: _MAX_MSG_CHARS - 1] + "…"


def _seconds(value: float | None) -> str:
    return f" after {value:g} s" if value is not None else ""


def _map_url(exc: BaseException, settings: FetchSettings | None) -> _Mapped | None:
    if isinstance(exc, ce.NonHttpUrlClientError):
        return codes.UNSUPPORTED_SCHEME, f"unsupported URL scheme in {exc.args[0]!s}"
    if isinstance(exc, ce.InvalidURL):
        return codes.INVALID_URL, f"invalid URL {exc!s}"
    return None


def _map_ssl(exc: BaseException, settings: FetchSettings | None) -> _Mapped | None:
    # Before DNS and connection errors: ClientSSLError is a ClientConnectorError and
    # ssl.SSLError an OSError.
    if isinstance(exc, ce.ClientConnectorCertificateError):
        return codes.SSL_ERROR, f"TLS certificate error: {exc.certificate_error}"
    if isinstance(exc, ce.ClientSSLError | ssl.SSLError | ssl.CertificateError):
        return codes.SSL_ERROR, f"TLS error: {exc}"
    if isinstance(exc, ce.ServerFingerprintMismatch):
        return codes.SSL_ERROR, "TLS certificate fingerprint mismatch"
    return None


def _map_dns(exc: BaseException, settings: FetchSettings | None) -> _Mapped | None:
    if isinstance(exc, socket.gaierror):
        return codes.DNS_ERROR, f"DNS lookup failed: {exc.strerror or exc}"
    if isinstance(exc, ce.ClientConnectorDNSError) or (
        isinstance(exc, ce.ClientConnectorError) and isinstance(exc.os_error, socket.gaierror)
    ):
        return codes.DNS_ERROR, f"DNS lookup failed for {exc.host}: {exc.strerror or exc.os_error}"
    return None


def _map_timeout(exc: BaseException, settings: FetchSettings | None) -> _Mapped | None:
    # Before connection errors: ServerTimeoutError is a ClientConnectionError, and the
    # builtin TimeoutError an OSError.
    connect = settings.connect_timeout if settings else None
    read = settings.read_timeout if settings else None
    total = settings.total_timeout if settings else None
    if isinstance(exc, ce.ConnectionTimeoutError):
        return codes.TIMEOUT, f"connect timeout{_seconds(connect)}"
    if isinstance(exc, ce.ServerTimeoutError):  # SocketTimeoutError and older read timeouts
        return codes.TIMEOUT, f"read timeout{_seconds(read)}"
    if isinstance(exc, ce.ClientConnectorError) and isinstance(exc.os_error, TimeoutError):
        return codes.TIMEOUT, f"connect timeout (by the OS) to {exc.host}:{exc.port}"
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return codes.TIMEOUT, f"total timeout{_seconds(total)}"
    return None


def _map_proxy(exc: BaseException, settings: FetchSettings | None) -> _Mapped | None:
    # Before payload and connection errors: a refused tunnel is a ClientResponseError, and
    # a proxy that cannot be reached a ClientConnectorError. Either way the target was not
    # reached, which is what a connection error says to the host's breaker.
    if isinstance(exc, ce.ClientHttpProxyError):
        return codes.CONNECTION_ERROR, f"proxy refused the tunnel: HTTP {exc.status} {exc.message}"
    if isinstance(exc, ce.ClientProxyConnectionError):
        return (
            codes.CONNECTION_ERROR,
            f"cannot connect to proxy {exc.host}:{exc.port}: {exc.strerror}",
        )
    return None


def _map_payload(exc: BaseException, settings: FetchSettings | None) -> _Mapped | None:
    if isinstance(exc, ce.ClientPayloadError | http_exceptions.HttpProcessingError):
        return codes.PAYLOAD_ERROR, f"bad response body: {exc}"
    if isinstance(exc, ce.ClientResponseError):
        # Raised for a malformed status line or headers; its .status is aiohttp's 400,
        # not something the server said.
        return codes.PAYLOAD_ERROR, f"malformed response: {exc.message or type(exc).__name__}"
    return None


def _map_connection(exc: BaseException, settings: FetchSettings | None) -> _Mapped | None:
    if isinstance(exc, ce.ServerDisconnectedError):
        return codes.CONNECTION_ERROR, "server disconnected without a complete response"
    if isinstance(exc, ce.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return codes.CONNECTION_ERROR, f"connection refused by {exc.host}:{exc.port}"
        return codes.CONNECTION_ERROR, f"cannot connect to {exc.host}:{exc.port}: {exc.strerror}"
    if isinstance(exc, ConnectionResetError):  # includes ClientConnectionResetError
        return codes.CONNECTION_ERROR, "connection reset by peer"
    if isinstance(exc, ce.ClientConnectionError | OSError):  # ClientOSError, lost, refused
        return codes.CONNECTION_ERROR, f"connection error: {exc}"
    return None


# Order matters: several aiohttp exceptions inherit from more than one family (see above).
_MAPPERS: tuple[Callable[[BaseException, FetchSettings | None], _Mapped | None], ...] = (
    _map_url,
    _map_ssl,
    _map_dns,
    _map_timeout,
    _map_proxy,
    _map_payload,
    _map_connection,
)


def map_exception(exc: BaseException, settings: FetchSettings | None = None) -> tuple[int, str]:
    """``(error_code, error_msg)`` for an exception raised while fetching one URL.

    ``settings``, when given, puts the configured limits into the message
    ("read timeout after 30 s"). Anything unexpected is ``INTERNAL_ERROR`` with the
    exception class name, so a surprise costs one URL, never the rank.
    """
    for mapper in _MAPPERS:
        mapped = mapper(exc, settings)
        if mapped is not None:
            return mapped[0], _clip(mapped[1])
    return codes.INTERNAL_ERROR, _clip(f"unexpected {type(exc).__name__}: {exc}")
