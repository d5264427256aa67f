"""benchmarks/http_client_cost.py: its yardstick client reads whole bodies, however the
socket splits them, over one keep-alive connection."""

from __future__ import annotations

import asyncio
import importlib
import sys
from pathlib import Path

import pytest
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
http_client_cost = importlib.import_module("http_client_cost")

pytestmark = pytest.mark.timeout(60)

BODIES = {f"/{i}.jpg": bytes([i]) * (i * 70_001 + 3) for i in range(5)}


async def test_the_minimal_client_reads_every_body_whole_on_kept_alive_connections() -> None:
    connections: set[object] = set()

    async def serve(request: web.Request) -> web.Response:
        connections.add(request.transport)
        return web.Response(body=BODIES[request.path], content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/{name}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    client = http_client_cost.MinimalClient()
    try:
        for _ in range(3):
            for path, body in BODIES.items():
                status, received = await client.fetch(f"http://127.0.0.1:{port}{path}?x=1")
                assert status == 200 and received == body
        concurrent = await asyncio.gather(
            *(client.fetch(f"http://127.0.0.1:{port}{path}") for path in BODIES)
        )
        assert [body for _, body in concurrent] == list(BODIES.values())
    finally:
        client.close()
        await runner.cleanup()
    assert len(connections) <= len(BODIES)  # reused, not one per request
