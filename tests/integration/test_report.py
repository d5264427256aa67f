"""`distdl report` after a real run on the simulated fleet: one self-contained HTML file,
rendered by headless Chromium (Debian package `chromium`, installed by .ci/run) into a
non-blank page whose DOM holds every plot's title; the metrics file it reads stays bounded
and a resumed run continues it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from support import write_config

from distdl.api import RunOptions, report, run
from distdl.report.html import TITLES
from distdl.runtime.metrics import METRICS_FILE, read_metrics
from distdl.testing.fleet import HostSpec
from distdl.testing.fleet_thread import FleetThread
from distdl.testing.fleet_workload import write_url_list

pytestmark = pytest.mark.timeout(180)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# CI installs chromium and sets this: there, a missing browser fails instead of skipping.
REQUIRED = os.environ.get("DISTDL_REQUIRE_CHROMIUM") == "1"


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    hosts = [
        HostSpec("museum", rate_limit=30, not_found_rate=0.2),
        HostSpec("herbarium", rate_limit=30, corrupt_rate=0.1),
    ]
    with FleetThread(hosts, seed=9) as fleet:
        write_url_list(
            fleet,
            folder / "urls.csv",
            {"museum": 20, "herbarium": 16},
            sizes=((300, 200), (90, 120)),
        )
        config = write_config(folder, default_rate_limit=20, max_retries=1)
        run(config, RunOptions(ranks=1))
    return report(config)


def test_the_report_is_one_file_that_needs_no_network(report_file: Path) -> None:
    text = report_file.read_text(encoding="utf-8")
    assert report_file.name == "report.html" and report_file.parent.name == "logs"
    assert not re.search(r"<script[^>]+src=", text)  # plotly.js is inside, not fetched
    assert not re.search(r"<link[^>]+href=\"https?:", text)
    assert "Plotly.newPlot" in text
    for title in TITLES:
        assert title in text
    total, hosts, runs = read_metrics(report_file.parent / METRICS_FILE)
    assert total and len(runs) == 1
    assert sum(point.counts.get("rows", 0) for point in total) == 36
    assert hosts and all(points for points in hosts.values())  # the hosts that set the ETA


@pytest.mark.skipif(
    CHROMIUM is None and not REQUIRED, reason="no chromium here (CI installs the Debian package)"
)
def test_headless_chromium_renders_every_plot(report_file: Path, tmp_path: Path) -> None:
    assert CHROMIUM is not None, "DISTDL_REQUIRE_CHROMIUM=1 but no chromium is installed"
    common = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--virtual-time-budget=10000",
        "--window-size=1200,2600",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    url = report_file.resolve().as_uri()
    shot = tmp_path / "report.png"
    subprocess.run([*common, f"--screenshot={shot}", url], capture_output=True, timeout=120)
    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50, "the page rendered blank"
    dom = subprocess.run(
        [*common, "--dump-dom", url], capture_output=True, text=True, timeout=120
    ).stdout
    # Plotly draws each title into the SVG it builds: present only if the JS ran.
    drawn = re.findall(r'class="g?title"[^>]*>.*?<', dom)
    for title in TITLES:
        assert any(title in found for found in drawn), (title, drawn[:10])
    assert dom.count('class="main-svg"') >= len(TITLES)
