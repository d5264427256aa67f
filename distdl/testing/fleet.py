"""A simulated fleet of image servers on loopback, for tests, benchmarks and ``distdl demo``.

Every host gets its own address (``127.0.1.1``, ``127.0.1.2``, ... skipping ``.0`` and
``.255``; the whole 127/8 is loopback on Linux) and its own aiohttp server on an ephemeral
port (or ``HostSpec.port``), so each host is a distinct ``server_name`` for distdl.

    async with Fleet([HostSpec("museum-00", rate_limit=5), HostSpec("dead", mode="refused")],
                     seed=1) as fleet:
        url = fleet.image_url("museum-00", 17, "png", 320, 200)
        ...  # download
        times = [r.time for r in fleet.requests_for("museum-00")]
        assert max_requests_in_window(times, 1.0) <= 5 + fleet.specs["museum-00"].bucket_capacity

What a host does (see :class:`HostSpec` for every knob):

* **rate limit**: a token bucket of ``rate_limit`` tokens/s and capacity ``burst`` tokens
  or ``burst_seconds`` of traffic (default ``max(1, ceil(0.25 * rate_limit))``), full at
  the first request. A request finding it empty gets ``limited_status`` (429; 420; or 403
  like a CDN) with ``Retry-After`` when ``retry_after`` is set (delay-seconds or an
  HTTP-date, per ``retry_after_form``; a str is sent verbatim). Applies to every path.
  ``limit_drop_*`` lowers the rate for a while (times from the host's first request).
* **overload** (``overload_knee``): latency grows with the rate the host sees and past the
  knee a growing share is shed with 503 (fault ``"overload"``); see
  :mod:`distdl.testing.fleet_limits` for the model.
* **latency**: ``asyncio.sleep`` of ``latency`` +- ``latency_jitter`` before answering.
* **transient faults**, deterministic per (seed, host, path with query, attempt) where
  attempt counts earlier non-429 requests for that path, so retries can succeed:
  5xx (``error_statuses``, 500/502/503 by default; 503 carries ``error_retry_after``, by
  default the 429's ``retry_after``), TCP reset, truncated body, slow drip. Their share does
  not depend on the rate. ``/robots.txt`` never gets them.
* **permanent fates** per (seed, host, image id): 404/410/403, HTML posing as an image,
  corrupt bytes, oversized body, ``X-Robots-Tag`` opt-out, and redirect chains.
  :meth:`Fleet.image_fate` tells a test what to expect for an id.
* **resolvers** (``redirect_to``): every image is a 302 to the same image on another fleet
  host, which applies its own limit, faults and fate (and records the request).
* **modes**: ``black_hole`` accepts connections and never answers (recorded with status 0);
  ``refused`` has nothing listening on its reserved port (not recorded).
* ``/robots.txt`` per host (``robots_txt``, default allow all; ``robots_status`` 404/500...).

URL scheme: ``/img/{id}.{fmt}?w=&h=[&mode=][&exif=][&frames=]`` (:meth:`Fleet.image_url`),
``/redirect/{n}/img/...`` (n more 302s), ``/loop/0`` (endless 302s), ``/bad-redirect``
(302 to ``ftp://``). Images come from :func:`distdl.testing.image_samples.make_image_bytes`, with
``image_variants`` distinct pictures per format and size (id modulo variants), cached.

Every request is recorded as a :class:`RequestRecord` in ``fleet.requests`` (completion
order; ``requests_for`` sorts by arrival). Use :meth:`Fleet.save_requests` to hand the log
to another process and :func:`load_requests` to read it.

For benchmarks and the demo, :func:`make_zipf_fleet` builds GBIF-shaped host lists,
:func:`zipf_rows` a skewed row count per host and :func:`write_url_list` the input file.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from urllib.parse import urlencode

from distdl.core.urls import classify_url
from distdl.testing.fleet_content import CONTENT_TYPES, ImageCache, ImageFate, image_fate
from distdl.testing.fleet_host import HttpHost, RunningHost
from distdl.testing.fleet_log import (
    NO_RESPONSE,
    RequestRecord,
    load_requests,
    max_requests_in_window,
    save_requests,
)
from distdl.testing.fleet_silent import BlackHoleHost, RefusedHost
from distdl.testing.fleet_spec import HostSpec, default_burst
from distdl.testing.fleet_workload import make_zipf_fleet, write_url_list, zipf_rows

__all__ = [
    "NO_RESPONSE",
    "Fleet",
    "HostSpec",
    "ImageFate",
    "RequestRecord",
    "default_burst",
    "host_ip",
    "load_requests",
    "make_zipf_fleet",
    "max_requests_in_window",
    "save_requests",
    "write_url_list",
    "zipf_rows",
]

_USABLE_PER_BLOCK = 254  # last octets 1..254


def host_ip(base_ip: str, index: int) -> str:
    """The ``index``-th usable address from ``base_ip``, skipping last octets 0 and 255."""
    base = int(ipaddress.IPv4Address(base_ip))
    octet = base & 0xFF
    if not 1 <= octet <= _USABLE_PER_BLOCK:
        raise ValueError(f"base_ip must end in 1..254, got {base_ip}")
    offset = octet - 1 + index
    block = (base >> 8) + offset // _USABLE_PER_BLOCK
    address = ipaddress.IPv4Address((block << 8) | (offset % _USABLE_PER_BLOCK + 1))
    if address not in ipaddress.IPv4Network("127.0.0.0/8") or index < 0:
        raise ValueError(f"host {index} from {base_ip} falls outside 127.0.0.0/8")
    return str(address)


class Fleet:
    """The running fleet; an async context manager (or call :meth:`start`/:meth:`stop`)."""

    def __init__(
        self,
        hosts: Sequence[HostSpec],
        *,
        seed: int = 0,
        base_ip: str = "127.0.1.1",
        image_variants: int = 8,
        images: ImageCache | None = None,
    ) -> None:
        self.specs: dict[str, HostSpec] = {}
        for spec in hosts:
            if spec.name in self.specs:
                raise ValueError(f"duplicate host name {spec.name!r}")
            self.specs[spec.name] = spec
        for spec in self.specs.values():
            self._check_redirect_target(spec)
        self.seed = seed
        self.base_ip = base_ip
        self.requests: list[RequestRecord] = []
        # ``images`` replaces the generated pictures (raw_bench.py serves real photos)
        self._images = images if images is not None else ImageCache(image_variants)
        self._addresses: dict[str, tuple[str, int]] = {}
        self._running: list[RunningHost] = []
        host_ip(base_ip, max(0, len(self.specs) - 1))  # fail early if the range overflows

    def _check_redirect_target(self, spec: HostSpec) -> None:
        seen = [spec.name]
        target = spec.redirect_to
        while target is not None:
            if target not in self.specs:
                raise ValueError(f"{spec.name}: redirect_to names unknown host {target!r}")
            if target in seen:
                raise ValueError(f"redirect cycle: {' -> '.join([*seen, target])}")
            seen.append(target)
            target = self.specs[target].redirect_to

    async def __aenter__(self) -> Fleet:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        try:
            for index, spec in enumerate(self.specs.values()):
                host = self._make_host(spec)
                ip = host_ip(self.base_ip, index)
                port = await host.start(ip, spec.port)
                self._running.append(host)
                self._addresses[spec.name] = (ip, port)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop every host (each is tried even if another fails), then raise the first error."""
        running, self._running = self._running, []
        outcomes = await asyncio.gather(*(host.stop() for host in running), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    def _make_host(self, spec: HostSpec) -> RunningHost:
        if spec.mode == "black_hole":
            return BlackHoleHost(spec, self.requests)
        if spec.mode == "refused":
            return RefusedHost(spec)
        return HttpHost(
            spec, seed=self.seed, images=self._images, log=self.requests, locate=self.base_url
        )

    # -- addresses and URLs ---------------------------------------------------------------

    @property
    def host_names(self) -> list[str]:
        return list(self.specs)

    def address(self, host_name: str) -> tuple[str, int]:
        """(ip, port) the host listens on (or, for a refused host, would)."""
        try:
            return self._addresses[host_name]
        except KeyError:
            known = host_name in self.specs
            raise KeyError(f"{host_name!r} is {'not started' if known else 'unknown'}") from None

    def base_url(self, host_name: str) -> str:
        ip, port = self.address(host_name)
        return f"http://{ip}:{port}"

    def server_name(self, host_name: str) -> str:
        """What :func:`distdl.core.urls.classify_url` gives for this host's URLs."""
        verdict = classify_url(self.base_url(host_name) + "/")
        assert verdict.server_name is not None
        return verdict.server_name

    def image_url(
        self,
        host_name: str,
        image_id: int,
        fmt: str = "jpeg",
        width: int = 640,
        height: int = 480,
        *,
        mode: str = "RGB",
        exif_orientation: int | None = None,
        frames: int = 1,
        redirects: int = 0,
    ) -> str:
        """URL of image ``image_id``; ``redirects > 0`` prefixes a chain of that many 302s."""
        if fmt not in CONTENT_TYPES:
            raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(CONTENT_TYPES)}")
        query: dict[str, object] = {"w": width, "h": height}
        if mode != "RGB":
            query["mode"] = mode
        if exif_orientation is not None:
            query["exif"] = exif_orientation
        if frames != 1:
            query["frames"] = frames
        prefix = f"/redirect/{redirects}" if redirects > 0 else ""
        return f"{self.base_url(host_name)}{prefix}/img/{image_id}.{fmt}?{urlencode(query)}"

    def robots_url(self, host_name: str) -> str:
        return f"{self.base_url(host_name)}/robots.txt"

    def loop_url(self, host_name: str) -> str:
        """A URL that redirects forever (``/loop/0`` -> ``/loop/1`` -> ``/loop/0`` ...)."""
        return f"{self.base_url(host_name)}/loop/0"

    def bad_redirect_url(self, host_name: str) -> str:
        """A URL answered with a 302 to a non-http(s) location."""
        return f"{self.base_url(host_name)}/bad-redirect"

    def image_fate(self, host_name: str, image_id: int) -> ImageFate:
        """How this host answers image ``image_id`` apart from transient faults.

        For a resolver, the fate at the end of its redirect (its ``redirects`` count every
        302 on the way, the cross-host one included), unless the resolver answers itself.
        """
        spec = self.specs[host_name]
        fate = image_fate(spec, self.seed, image_id)
        if spec.redirect_to is None or fate.kind != "ok":
            return fate
        final = self.image_fate(spec.redirect_to, image_id)
        return replace(final, redirects=fate.redirects + 1 + final.redirects)

    # -- the request log ------------------------------------------------------------------

    def requests_for(self, host_name: str) -> list[RequestRecord]:
        """The host's requests, sorted by arrival time."""
        if host_name not in self.specs:
            raise KeyError(f"unknown host {host_name!r}")
        return sorted((r for r in self.requests if r.host == host_name), key=lambda r: r.time)

    def count_status(self, status: int, host_name: str | None = None) -> int:
        return sum(
            1
            for r in self.requests
            if r.status == status and (host_name is None or r.host == host_name)
        )

    def save_requests(self, path: str | Path) -> None:
        """Write the log as JSON lines (read back with :func:`load_requests`)."""
        save_requests(list(self.requests), path)
