"""What one fetch costs a rank in CPU: distdl's aiohttp fetcher against the least an HTTP
client can do in Python (issue 13: how much of the rank's CPU per image is the client).

    python benchmarks/http_client_cost.py [--fetches 3000] [--rounds 6] [--in-flight 8]

Both fetch the same corpus (raw_corpus.py) from nginx on loopback (raw_server.py), with
``--in-flight`` requests at a time on keep-alive connections, in alternating rounds; each
round prints the CPU per fetch of this process (user and kernel, ``os.times``). The
minimal client (:class:`MinimalClient`) is a yardstick, not a client to ship: an
``asyncio.Protocol`` that writes a GET, finds the end of the headers, reads
``Content-Length`` bytes and nothing else (no chunked bodies, redirects, TLS, proxies,
timeouts, limits or decompression).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
from collections.abc import Awaitable, Callable
from typing import cast
from urllib.parse import urlsplit

import uvloop
from raw_corpus import default_cache, variants_folder
from raw_server import NginxHost

from distdl.net.fetcher import AiohttpFetcher
from distdl.net.session import make_session
from distdl.net.settings import FetchSettings

Answer = tuple[int, bytes]  # status, body


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._head = b""  # bytes of the status line and headers read so far
        self._chunks: list[bytes] = []  # of the body, joined once (one copy, as aiohttp)
        self._missing = -1  # body bytes still to come; -1 while the headers are
        self._status = 0
        self._answer: asyncio.Future[Answer] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass of it

    def data_received(self, data: bytes) -> None:
        if self._missing < 0:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self._head[:end].split(b"\r\n")
            data, self._head = self._head[end + 4 :], b""
            self._status = int(lines[0].split(b" ", 2)[1])
            headers = dict(line.split(b":", 1) for line in lines[1:])
            lengths = [v for k, v in headers.items() if k.lower() == b"content-length"]
            self._missing = int(lengths[0]) if lengths else 0
        self._chunks.append(data)
        self._missing -= len(data)
        if self._missing <= 0 and self._answer is not None:
            body, self._chunks, self._missing = b"".join(self._chunks), [], -1
            self._answer.set_result((self._status, body))

    async def get(self, target: str, host: str) -> Answer:
        assert self.transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        request = f"GET {target} HTTP/1.1\r\nHost: {host}\r\nAccept: image/*\r\n\r\n"
        self.transport.write(request.encode())
        return await self._answer


class MinimalClient:
    """GETs over a pool of idle keep-alive connections (one host)."""

    def __init__(self) -> None:
        self._idle: list[_Connection] = []

    async def fetch(self, url: str) -> Answer:
        parts = urlsplit(url)
        if self._idle:
            connection = self._idle.pop()
        else:
            loop = asyncio.get_running_loop()
            _, connection = await loop.create_connection(_Connection, parts.hostname, parts.port)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        answer = await connection.get(target, parts.netloc)
        self._idle.append(connection)
        return answer

    def close(self) -> None:
        for connection in self._idle:
            if connection.transport is not None:
                connection.transport.close()


async def _cpu_per_fetch(
    fetch: Callable[[str], Awaitable[bool]], urls: list[str], in_flight: int
) -> tuple[float, float]:
    """(user, kernel) ms of this process's CPU per fetch of ``urls``, after a warm-up."""
    for ok in await asyncio.gather(*(fetch(url) for url in urls[:in_flight])):
        assert ok
    pending = iter(urls[in_flight:])

    async def fetcher() -> None:
        for url in pending:
            assert await fetch(url)

    before = os.times()
    await asyncio.gather(*(fetcher() for _ in range(in_flight)))
    after = os.times()
    count = len(urls) - in_flight
    return 1000 * (after.user - before.user) / count, 1000 * (after.system - before.system) / count


async def aiohttp_round(urls: list[str], in_flight: int) -> tuple[float, float]:
    settings = FetchSettings()
    session = make_session(settings)
    fetcher = AiohttpFetcher(session, settings)

    async def fetch(url: str) -> bool:
        return (await fetcher.fetch(url)).ok

    try:
        return await _cpu_per_fetch(fetch, urls, in_flight)
    finally:
        await session.close()


async def minimal_round(urls: list[str], in_flight: int) -> tuple[float, float]:
    client = MinimalClient()

    async def fetch(url: str) -> bool:
        status, body = await client.fetch(url)
        return status == 200 and len(body) > 0

    try:
        return await _cpu_per_fetch(fetch, urls, in_flight)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fetches", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--in-flight", type=int, default=8)
    args = parser.parse_args()
    figures: dict[str, list[float]] = {"aiohttp": [], "minimal": []}
    with NginxHost(variants_folder(default_cache(), 400)) as host:
        for round_ in range(args.rounds):
            first = 2 * round_ * args.fetches
            urls = [host.url(first + i) for i in range(args.fetches)]
            fresh = [host.url(first + args.fetches + i) for i in range(args.fetches)]
            user_a, system_a = uvloop.run(aiohttp_round(urls, args.in_flight))
            user_m, system_m = uvloop.run(minimal_round(fresh, args.in_flight))
            figures["aiohttp"].append(user_a + system_a)
            figures["minimal"].append(user_m + system_m)
            print(
                f"round {round_}: aiohttp user {user_a:.3f} kernel {system_a:.3f} | "
                f"minimal user {user_m:.3f} kernel {system_m:.3f} ms of CPU a fetch",
                flush=True,
            )
    medians = {name: round(statistics.median(values), 3) for name, values in figures.items()}
    print(f"medians (ms of CPU a fetch, user + kernel): {medians}")
    print(json.dumps({"fetches": args.fetches, "rounds": args.rounds, "median_ms": medians}))


if __name__ == "__main__":
    main()
