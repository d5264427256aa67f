"""How a decided answer goes out on the wire: whole, chunked, truncated, dripped, or as a
TCP reset (the transient faults that are about delivery, not about the status)."""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import dataclass, field

from aiohttp import web

from distdl.testing.fleet_spec import HostSpec

_STREAM_CHUNK = 64 * 1024


@dataclass
class Draft:
    """A response decided but not sent yet; the transient fault chooses how it is sent."""

    status: int
    body: bytes
    content_type: str = "text/plain"
    headers: dict[str, str] = field(default_factory=dict)
    fault: str = ""
    chunked: bool = False


async def deliver(
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
