"""A normal simulated host, :class:`HttpHost`: rate limit, latency, faults, content.
(Hosts that never answer are in :mod:`distdl.testing.fleet_silent`.)

Paths a normal host answers (every one counts against the rate limit and is recorded):

* ``/robots.txt``: ``spec.robots_txt`` with ``spec.robots_status``; no injected faults.
* ``/img/{id}.{ext}?w=&h=...``: the image, after its fate (see :func:`image_fate`).
* ``/redirect/{n}/img/{id}.{ext}``: 302 to ``/redirect/{n-1}/...``; ``n = 0`` serves the
  image without rolling its redirect again.
* ``/loop/{k}``: 302 to ``/loop/{1-k}``, forever.
* ``/bad-redirect``: 302 to an ``ftp://`` location.
* anything else: 404.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from distdl.testing.fleet_content import (
    NOT_AN_IMAGE,
    ImageCache,
    corrupt_bytes,
    image_fate,
    parse_image_request,
)
from distdl.testing.fleet_limits import TokenBucket, pick_band, retry_after_value, roll
from distdl.testing.fleet_log import NO_RESPONSE, RequestRecord
from distdl.testing.fleet_spec import HostSpec

DEFAULT_ROBOTS_TXT = "User-agent: *\nAllow: /\n"
BAD_REDIRECT_TARGET = "ftp://127.0.0.1/not-http.jpeg"
_STREAM_CHUNK = 64 * 1024
_SHUTDOWN_GRACE = 0.2  # seconds a draining handler (a slow drip) gets before it is cancelled
_5XX = (("500", 1 / 3), ("502", 1 / 3), ("503", 1 / 3))


class RunningHost(Protocol):
    async def start(self, ip: str, port: int) -> int: ...  # returns the bound port
    async def stop(self) -> None: ...


@dataclass
class Draft:
    """A response decided but not sent yet; the transient fault chooses how it is sent."""

    status: int
    body: bytes
    content_type: str = "text/plain"
    headers: dict[str, str] = field(default_factory=dict)
    fault: str = ""
    chunked: bool = False


class HttpHost:
    """A normal host: token bucket, latency, transient faults, then content."""

    def __init__(
        self, spec: HostSpec, *, seed: int, images: ImageCache, log: list[RequestRecord]
    ) -> None:
        self.spec = spec
        self.seed = seed
        self._images = images
        self._log = log
        self._bucket: TokenBucket | None = None
        capacity = spec.bucket_capacity
        if spec.rate_limit is not None and capacity is not None:
            self._bucket = TokenBucket(spec.rate_limit, capacity, time.monotonic())
        self._attempts: dict[str, int] = {}
        self._jitter = random.Random(f"{seed}:{spec.name}:latency")
        self._transient = [
            ("5xx", spec.error_rate_5xx),
            ("reset", spec.reset_rate),
            ("truncate", spec.truncate_rate),
            ("drip", spec.drip_rate),
        ]
        self._runner: web.ServerRunner | None = None
        self._in_flight: set[asyncio.Task[object]] = set()

    async def start(self, ip: str, port: int) -> int:
        server = web.Server(self.handle, access_log=None)
        self._runner = web.ServerRunner(server, shutdown_timeout=_SHUTDOWN_GRACE)
        await self._runner.setup()
        site = web.TCPSite(self._runner, ip, port, backlog=1024)
        await site.start()
        return int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        # aiohttp forgets a handler whose client left (a drip, a latency sleep): end those too
        stragglers = list(self._in_flight)
        for task in stragglers:
            task.cancel()
        await asyncio.gather(*stragglers, return_exceptions=True)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        arrived = time.monotonic()
        status, fault = NO_RESPONSE, "cancelled"  # kept if cancelled before deciding
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            draft, delivery = await self._decide(request, arrived)
            status, fault = draft.status, delivery or draft.fault
            return await _deliver(request, draft, delivery, self.spec)
        finally:
            if task is not None:
                self._in_flight.discard(task)
            remote = request.remote or ""
            record = RequestRecord(self.spec.name, arrived, request.path_qs, status, remote, fault)
            self._log.append(record)

    async def _decide(self, request: web.BaseRequest, arrived: float) -> tuple[Draft, str | None]:
        """The response, and how to deliver it: None (whole), "truncate", "drip" or "reset"."""
        limited = self._bucket is not None and not self._bucket.try_take(arrived)
        await self._delay()
        if limited:
            return self._rate_limited(), None
        if request.path == "/robots.txt":
            return self._robots(), None
        key = request.path_qs
        attempt = self._attempts.get(key, 0)
        self._attempts[key] = attempt + 1
        transient = pick_band(roll(self.seed, self.spec.name, key, attempt), self._transient)
        if transient == "5xx":
            return self._server_error(key, attempt), None
        if transient == "reset":
            return Draft(NO_RESPONSE, b""), "reset"
        return await self._route(request), transient

    async def _delay(self) -> None:
        spec = self.spec
        if spec.latency <= 0 and spec.latency_jitter <= 0:
            return
        jitter = self._jitter.uniform(-spec.latency_jitter, spec.latency_jitter)
        await asyncio.sleep(max(0.0, spec.latency + jitter))

    def _retry_after(self) -> dict[str, str]:
        value = retry_after_value(self.spec.retry_after, self.spec.retry_after_form, time.time())
        return {"Retry-After": value} if value is not None else {}

    def _rate_limited(self) -> Draft:
        return Draft(429, b"Too Many Requests\n", headers=self._retry_after(), fault="rate_limited")

    def _server_error(self, key: str, attempt: int) -> Draft:
        chosen = pick_band(roll(self.seed, self.spec.name, key, attempt, "status"), list(_5XX))
        status = int(chosen or 500)
        headers = self._retry_after() if status == 503 else {}
        return Draft(status, b"Server Error\n", headers=headers, fault="5xx")

    def _robots(self) -> Draft:
        spec = self.spec
        if spec.robots_status != 200:
            return Draft(spec.robots_status, b"robots.txt unavailable\n", fault="robots")
        text = spec.robots_txt if spec.robots_txt is not None else DEFAULT_ROBOTS_TXT
        return Draft(200, text.encode(), fault="robots")

    async def _route(self, request: web.BaseRequest) -> Draft:
        parts = request.path.split("/")[1:]
        if len(parts) == 2 and parts[0] == "img":
            return await self._image(request, parts[1], via_redirect=False)
        if len(parts) >= 2 and parts[0] == "redirect" and parts[1].isdigit():
            return await self._redirect_chain(request, int(parts[1]), parts[2:])
        if len(parts) == 2 and parts[0] == "loop" and parts[1] in ("0", "1"):
            return _redirect(request, f"/loop/{1 - int(parts[1])}")
        if parts == ["bad-redirect"]:
            return _moved(BAD_REDIRECT_TARGET)
        return Draft(404, b"Not Found\n", fault="unknown_path")

    async def _redirect_chain(self, request: web.BaseRequest, hops: int, rest: list[str]) -> Draft:
        if hops > 0:
            return _redirect(request, f"/redirect/{hops - 1}/{'/'.join(rest)}")
        if len(rest) == 2 and rest[0] == "img":
            return await self._image(request, rest[1], via_redirect=True)
        return Draft(404, b"Not Found\n", fault="unknown_path")

    async def _image(self, request: web.BaseRequest, name: str, *, via_redirect: bool) -> Draft:
        try:
            wanted = parse_image_request(name, request.query)
        except ValueError as exc:
            return Draft(400, f"{exc}\n".encode(), fault="bad_request")
        fate = image_fate(self.spec, self.seed, wanted.image_id)
        if fate.redirects and not via_redirect:
            return _redirect(request, f"/redirect/{fate.redirects - 1}/img/{name}")
        if fate.kind == "not_found":
            return Draft(fate.status, b"Not Found\n", fault="not_found")
        if fate.kind == "not_image":
            return Draft(200, NOT_AN_IMAGE, wanted.content_type, fault="not_image")
        try:
            image = await self._images.get(wanted)
        except ValueError as exc:  # e.g. a mode the format cannot store
            return Draft(400, f"{exc}\n".encode(), fault="bad_request")
        draft = Draft(200, image, wanted.content_type)
        if fate.kind == "corrupt":
            garbage_seed = int(roll(self.seed, self.spec.name, wanted.image_id, "garbage") * 2**32)
            draft.body, draft.fault = corrupt_bytes(image, garbage_seed), "corrupt"
        elif fate.kind == "oversize":
            padding = bytes(max(0, self.spec.oversize_bytes - len(image)))
            draft.body, draft.fault = image + padding, "oversize"
            draft.chunked = self.spec.oversize_chunked
        elif fate.kind == "opt_out" and fate.robots_tag is not None:
            draft.headers["X-Robots-Tag"] = fate.robots_tag
            draft.fault = "opt_out"
        return draft


def _redirect(request: web.BaseRequest, path: str) -> Draft:
    query = f"?{request.query_string}" if request.query_string else ""
    return _moved(f"{request.scheme}://{request.host}{path}{query}")


def _moved(location: str) -> Draft:
    return Draft(302, b"moved\n", headers={"Location": location}, fault="redirect")


async def _deliver(
    request: web.BaseRequest, draft: Draft, delivery: str | None, spec: HostSpec
) -> web.StreamResponse:
    headers = {**draft.headers, "Content-Type": draft.content_type}
    if delivery == "reset":
        _reset(request)
        # aiohttp finds the transport gone when it writes this and drops it quietly
        return web.Response(status=500)
    if delivery is None and not draft.chunked:
        return web.Response(status=draft.status, body=draft.body, headers=headers)
    stream = web.StreamResponse(status=draft.status, headers=headers)
    if delivery is None:
        stream.enable_chunked_encoding()
    else:
        stream.content_length = len(draft.body)
    try:
        await stream.prepare(request)
        if delivery == "truncate":
            await stream.write(draft.body[: len(draft.body) // 2])
            if request.transport is not None:
                request.transport.close()
        elif delivery == "drip":
            await _drip(stream, draft.body, spec.drip_chunk, spec.drip_interval)
        else:
            for start in range(0, len(draft.body), _STREAM_CHUNK):
                await stream.write(draft.body[start : start + _STREAM_CHUNK])
    except ConnectionError:
        pass  # the client left; aiohttp notices too and drops the connection quietly
    return stream


def _reset(request: web.BaseRequest) -> None:
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # linger 0: closing sends RST instead of FIN, as a crashing server would
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _drip(stream: web.StreamResponse, body: bytes, chunk: int, interval: float) -> None:
    for start in range(0, len(body), chunk):
        await stream.write(body[start : start + chunk])
        await asyncio.sleep(interval)
