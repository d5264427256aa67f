"""Broken TIFFs make libtiff write to stderr from C and Pillow raise warnings: none of it may
reach the terminal; all of it lands in the rank's log file, one event per line, with the URL
of the image."""

from __future__ import annotations

import asyncio
import io
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from PIL import Image
from support import layout_of, output_rows, write_config

from distdl.core import codes
from distdl.testing.fleet_content import corrupt_bytes

pytestmark = pytest.mark.timeout(120)

LIBTIFF_LINE = "Using code not yet in table"  # libtiff's LZW decoder, on garbled strips
PILLOW_WARNING = "UserWarning"  # Pillow's TIFF plugin on a corrupt directory


def _tiff() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), (10, 200, 30)).save(buffer, "TIFF", compression="tiff_lzw")
    return buffer.getvalue()


def garbled_strips() -> bytes:
    """A whole TIFF header and directory whose LZW strip data is garbage."""
    data = bytearray(_tiff())
    directory = struct.unpack("<I", data[4:8])[0]
    assert directory > 100  # Pillow writes the strips first: they sit between 8 and here
    for i in range(18, directory - 10):
        data[i] = (i * 7919) & 0xFF
    return bytes(data)


@pytest.fixture(scope="module")
def tiff_server() -> Iterator[int]:
    """Loopback server: /garbled/<n>.tif (libtiff complains in C), /corrupt/<n>.tif (Pillow
    warns), /ok/<n>.tif."""
    bodies = {
        "garbled": garbled_strips(),
        "corrupt": corrupt_bytes(_tiff(), 3),
        "ok": _tiff(),
    }

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=bodies[request.match_info["kind"]], content_type="image/tiff")

    app = web.Application()
    app.router.add_get("/{kind}/{name}", image)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield port
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.run_until_complete(runner.cleanup())
    loop.close()


def test_no_library_noise_reaches_the_terminal(tmp_path: Path, tiff_server: int) -> None:
    base = f"http://127.0.0.1:{tiff_server}"
    urls = [f"{base}/garbled/{i}.tif" for i in range(4)]
    urls += [f"{base}/corrupt/{i}.tif" for i in range(4)] + [f"{base}/ok/0.tif"]
    lines = ["uuid,identifier,source_id,license,source,title"]
    lines += [f"u{i},{url},s{i},cc0,src,t{i}" for i, url in enumerate(urls)]
    (tmp_path / "urls.csv").write_text("\n".join(lines) + "\n")
    config = write_config(tmp_path, default_rate_limit=50)
    ran = subprocess.run(
        [sys.executable, "-m", "distdl", "run", str(config), "--ranks", "1"],
        capture_output=True,
        text=True,
        timeout=100,
    )
    terminal = ran.stdout + ran.stderr
    assert ran.returncode == 0, terminal
    assert LIBTIFF_LINE not in terminal and PILLOW_WARNING not in terminal, terminal
    assert "Warning" not in terminal and "partition done" not in terminal, terminal
    layout = layout_of(config)
    errors = output_rows(layout, "errors.parquet", ["identifier", "error_code"])
    assert {row["identifier"] for row in errors} == set(urls[:-1])
    assert {row["error_code"] for row in errors} == {codes.UNDECODABLE}
    log_lines = layout.log_file(0).read_text().splitlines()
    libtiff = [line for line in log_lines if LIBTIFF_LINE in line]
    assert libtiff, "libtiff's complaint was not logged"
    assert all("/garbled/" in line and "distdl.decoders" in line for line in libtiff)
    pillow = [line for line in log_lines if PILLOW_WARNING in line]
    assert pillow and all("/corrupt/" in line for line in pillow), pillow
    assert all(line[:4].isdigit() for line in log_lines), "an event spread over lines"
    assert any("partition done host=127.0.0.1:" in line for line in log_lines)
