"""A normal simulated host, :class:`HttpHost`: load (bucket, limit drops, overload),
latency, faults, content. (Hosts that never answer are in :mod:`distdl.testing.fleet_silent`.)

Paths a normal host answers (every one counts against the rate limit and is recorded):

* ``/robots.txt``: ``spec.robots_txt`` with ``spec.robots_status``; no injected faults and
  no overload 503s (a 5xx robots.txt means "disallow all", which would change every fate).
* ``/img/{id}.{ext}?w=&h=...``: the image, after its fate (see :func:`image_fate`); on a
  resolver (``spec.redirect_to``), a 302 to the same image on the target host.
* ``/redirect/{n}/img/{id}.{ext}``: 302 to ``/redirect/{n-1}/...``; ``n = 0`` serves the
  image without rolling its redirect again.
* ``/loop/{k}``: 302 to ``/loop/{1-k}``, forever.
* ``/bad-redirect``: 302 to an ``ftp://`` location.
* anything else: 404.

The order of decisions for one request: the bucket (refusal with ``limited_status``), the
latency (grown by overload), then overload shedding (503, fault ``"overload"``), then the
rate-independent transient faults (fault ``"5xx"``, ``"reset"``, ...), then the content.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlencode

from aiohttp import web

from distdl.testing.fleet_content import (
    NOT_AN_IMAGE,
    ImageCache,
    corrupt_bytes,
    image_fate,
    parse_image_request,
)
from distdl.testing.fleet_delivery import Draft, deliver
from distdl.testing.fleet_limits import HostLoad, pick_band, retry_after_value, roll
from distdl.testing.fleet_log import NO_RESPONSE, RequestRecord
from distdl.testing.fleet_spec import HostSpec

DEFAULT_ROBOTS_TXT = "User-agent: *\nAllow: /\n"
BAD_REDIRECT_TARGET = "ftp://127.0.0.1/not-http.jpeg"
_SHUTDOWN_GRACE = 0.2  # seconds a draining handler (a slow drip) gets before it is cancelled
_LIMITED_BODIES = {429: b"Too Many Requests\n", 420: b"Enhance Your Calm\n", 403: b"Forbidden\n"}


class RunningHost(Protocol):
    async def start(self, ip: str, port: int) -> int: ...  # returns the bound port
    async def stop(self) -> None: ...


class HttpHost:
    """A normal host: load, latency, transient faults, then content.

    ``locate`` gives another fleet host's base URL (``http://ip:port``), for a resolver.
    """

    def __init__(
        self,
        spec: HostSpec,
        *,
        seed: int,
        images: ImageCache,
        log: list[RequestRecord],
        locate: Callable[[str], str] | None = None,
    ) -> None:
        self.spec = spec
        self.seed = seed
        self._images = images
        self._log = log
        self._locate = locate
        self._load = HostLoad(spec)
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
            return await deliver(request, draft, delivery, self.spec)
        finally:
            if task is not None:
                self._in_flight.discard(task)
            remote = request.remote or ""
            record = RequestRecord(self.spec.name, arrived, request.path_qs, status, remote, fault)
            self._log.append(record)

    async def _decide(self, request: web.BaseRequest, arrived: float) -> tuple[Draft, str | None]:
        """The response, and how to deliver it: None (whole), "truncate", "drip" or "reset"."""
        admission = self._load.admit(arrived)
        await self._delay(admission.latency_factor)
        if admission.limited:
            return self._rate_limited(), None
        if request.path == "/robots.txt":
            return self._robots(), None
        key = request.path_qs
        attempt = self._attempts.get(key, 0)
        self._attempts[key] = attempt + 1
        if roll(self.seed, self.spec.name, key, attempt, "overload") < admission.shed_share:
            return self._overloaded(), None
        transient = pick_band(roll(self.seed, self.spec.name, key, attempt), self._transient)
        if transient == "5xx":
            return self._server_error(key, attempt), None
        if transient == "reset":
            return Draft(NO_RESPONSE, b""), "reset"
        return await self._route(request), transient

    async def _delay(self, factor: float) -> None:
        spec = self.spec
        if spec.latency <= 0 and spec.latency_jitter <= 0:
            return
        jitter = self._jitter.uniform(-spec.latency_jitter, spec.latency_jitter)
        await asyncio.sleep(max(0.0, (spec.latency + jitter) * factor))

    def _retry_after(self, setting: float | str | None) -> dict[str, str]:
        value = retry_after_value(setting, self.spec.retry_after_form, time.time())
        return {"Retry-After": value} if value is not None else {}

    def _rate_limited(self) -> Draft:
        status = self.spec.limited_status
        headers = self._retry_after(self.spec.retry_after)
        return Draft(status, _LIMITED_BODIES[status], headers=headers, fault="rate_limited")

    def _overloaded(self) -> Draft:
        headers = self._retry_after(self.spec.error_retry_after_setting)
        return Draft(503, b"Service Unavailable\n", headers=headers, fault="overload")

    def _server_error(self, key: str, attempt: int) -> Draft:
        statuses = self.spec.error_statuses
        pick = roll(self.seed, self.spec.name, key, attempt, "status")
        status = statuses[min(int(pick * len(statuses)), len(statuses) - 1)]
        after = self.spec.error_retry_after_setting if status == 503 else None
        return Draft(status, b"Server Error\n", headers=self._retry_after(after), fault="5xx")

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
        if self.spec.redirect_to is not None:
            return self._resolve(request, name)
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

    def _resolve(self, request: web.BaseRequest, name: str) -> Draft:
        """A resolver's 302 to the same image on its target host.

        ``via`` keeps the target's paths (and so its fault rolls) apart from its own URLs'.
        """
        target = self.spec.redirect_to
        if target is None or self._locate is None:
            raise RuntimeError(f"{self.spec.name} is not a resolver in a fleet")
        query = urlencode([*request.query.items(), ("via", self.spec.name)])
        return _moved(f"{self._locate(target)}/img/{name}?{query}")


def _redirect(request: web.BaseRequest, path: str) -> Draft:
    query = f"?{request.query_string}" if request.query_string else ""
    return _moved(f"{request.scheme}://{request.host}{path}{query}")


def _moved(location: str) -> Draft:
    return Draft(302, b"moved\n", headers={"Location": location}, fault="redirect")
