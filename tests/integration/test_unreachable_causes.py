"""A host given up on says why: an HTTPS server on loopback whose certificate no system CA
signed ends as SSL_ERROR rows with the certificate error (not HOST_UNREACHABLE), and the
cause is in the profiles table, `status` and the summary; with ``ca_bundle`` naming its CA
the same host downloads. A dead host's
cause (here: refused connections) is kept the same way."""

from __future__ import annotations

import asyncio
import io
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from aiohttp import web
from PIL import Image
from support import layout_of, output_rows, write_config

from distdl.api import RunOptions, run, status
from distdl.core import codes
from distdl.io.profiles import read_profiles
from distdl.testing.fleet import HostSpec
from distdl.testing.fleet_thread import FleetThread
from distdl.testing.fleet_workload import write_url_list

pytestmark = pytest.mark.timeout(120)

ROWS = 12


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """An HTTPS image server on 127.0.0.1 whose certificate a CA of its own signed (no
    system CA knows it): (port, that CA's certificate)."""
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    cert = tmp_path_factory.mktemp("tls") / "site-ca.pem"
    authority.cert_pem.write_to_path(str(cert))
    body = _jpeg()

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="image/jpeg")

    async def no_robots(request: web.Request) -> web.Response:
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/robots.txt", no_robots)
    app.router.add_get("/img/{name}", image)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield port, cert
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.run_until_complete(runner.cleanup())
    loop.close()


def _url_list(path: Path, port: int) -> None:
    lines = ["uuid,identifier,source_id,license,source,title"]
    lines += [f"u{i},https://127.0.0.1:{port}/img/{i}.jpg,s{i},cc0,src,t{i}" for i in range(ROWS)]
    path.write_text("\n".join(lines) + "\n")


def test_a_certificate_that_does_not_verify_is_ssl_error_with_its_cause_everywhere(
    tmp_path: Path, https_server: tuple[int, Path]
) -> None:
    port, _ = https_server
    _url_list(tmp_path / "urls.csv", port)
    config = write_config(tmp_path, default_rate_limit=50)
    outcome = run(config, RunOptions(ranks=1))
    layout = layout_of(config)
    rows = output_rows(layout, "errors.parquet", ["error_code", "error_msg"])
    assert len(rows) == ROWS
    assert {row["error_code"] for row in rows} == {codes.SSL_ERROR}
    assert all("certificate" in row["error_msg"].lower() for row in rows), rows[0]
    server = f"127.0.0.1:{port}"
    profile = read_profiles(layout.profiles_table)[server]
    assert profile.status == "unreachable"
    assert "certificate" in (profile.unreachable_cause or "").lower()
    assert "unreachable hosts" in outcome.summary and "certificate" in outcome.summary.lower()
    shown = json.loads(status(config, as_json=True))
    (host,) = shown["hosts"]
    assert "certificate" in host["unreachable"].lower()
    assert shown["rows"]["errors_by_code"] == {str(codes.SSL_ERROR): ROWS}
    assert "certificate" in status(config).lower()


def test_ca_bundle_trusts_a_site_ca(tmp_path: Path, https_server: tuple[int, Path]) -> None:
    port, cert = https_server
    _url_list(tmp_path / "urls.csv", port)
    config = write_config(tmp_path, default_rate_limit=50, ca_bundle=str(cert))
    run(config, RunOptions(ranks=1))
    layout = layout_of(config)
    assert len(output_rows(layout, "successes.parquet", ["uuid"])) == ROWS
    assert output_rows(layout, "errors.parquet", ["uuid"]) == []


def test_a_refused_host_keeps_its_cause_in_rows_and_profile(tmp_path: Path) -> None:
    hosts = [HostSpec("alive", rate_limit=50), HostSpec("refused", mode="refused")]
    with FleetThread(hosts, seed=6) as fleet:
        write_url_list(fleet, tmp_path / "urls.csv", {"alive": 5, "refused": 10})
        config = write_config(
            tmp_path, default_rate_limit=50, host_failure_threshold=2, host_cooldown=0.1
        )
        run(config, RunOptions(ranks=1))
        refused = fleet.server_name("refused")
    layout = layout_of(config)
    rows = output_rows(layout, "errors.parquet", ["error_code", "error_msg"])
    assert {row["error_code"] for row in rows} == {codes.HOST_UNREACHABLE}
    assert all(row["error_msg"].startswith("host unreachable: robots.txt:") for row in rows)
    cause = read_profiles(layout.profiles_table)[refused].unreachable_cause or ""
    assert cause.startswith("robots.txt:") and "refused" in cause.lower(), cause
