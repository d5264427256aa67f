"""Simulated hosts that never answer: :class:`BlackHoleHost` (accepts, then silence) and
:class:`RefusedHost` (nothing listens)."""

from __future__ import annotations

import asyncio
import socket
import time

from distdl.testing.fleet_log import NO_RESPONSE, RequestRecord
from distdl.testing.fleet_spec import HostSpec


class BlackHoleHost:
    """Accepts TCP connections and never answers; records each request line it reads."""

    def __init__(self, spec: HostSpec, log: list[RequestRecord]) -> None:
        self.spec = spec
        self._log = log
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.BaseTransport] = set()

    async def start(self, ip: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Silent(self), ip, port, backlog=1024)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for transport in list(self._transports):
            transport.abort()  # open connections would otherwise keep wait_closed() waiting
        await self._server.wait_closed()
        self._server = None

    def record(self, request_line: bytes, remote: str) -> None:
        words = request_line.decode("latin-1").split()
        path = words[1] if len(words) >= 2 else ""
        self._log.append(
            RequestRecord(self.spec.name, time.monotonic(), path, NO_RESPONSE, remote, "black_hole")
        )


class _Silent(asyncio.Protocol):
    _MAX_LINE = 8192

    def __init__(self, host: BlackHoleHost) -> None:
        self._host = host
        self._buffer = b""
        self._recorded = False
        self._transport: asyncio.BaseTransport | None = None
        self._remote = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._remote = str(peer[0]) if peer else ""
        self._host._transports.add(transport)

    def data_received(self, data: bytes) -> None:
        if self._recorded:
            return
        self._buffer += data
        line, newline, _ = self._buffer.partition(b"\r\n")
        if newline or len(self._buffer) > self._MAX_LINE:
            self._recorded = True
            self._host.record(line[: self._MAX_LINE], self._remote)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._host._transports.discard(self._transport)


class RefusedHost:
    """Nothing listens: the port is reserved by binding it once, then released."""

    def __init__(self, spec: HostSpec) -> None:
        self.spec = spec

    async def start(self, ip: str, port: int) -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((ip, port))
            return int(probe.getsockname()[1])

    async def stop(self) -> None:
        return None
