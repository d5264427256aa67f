"""Bounded memory per rank, against a real loopback fleet: a fast host with large bodies and
a slow image pipeline (fetching waits, the budget is never exceeded), images refused before
decoding (-22, naming the limit), and a pathological image stopped by the time limit (-23)
while the other rows succeed."""

from __future__ import annotations

import csv
import uuid
from pathlib import Path

import pytest
from support import assert_exactly_once, layout_of, output_rows, write_config

from distdl.api import RunOptions, run
from distdl.config import DownloaderParameters
from distdl.core import codes
from distdl.image.decoder_child import Work
from distdl.runtime import worker_setup
from distdl.runtime.image_stage import ImageStage, open_image_stage
from distdl.testing.fleet import Fleet, HostSpec
from distdl.testing.fleet_thread import FleetThread
from distdl.testing.slow_images import SLOW_SECONDS_ENV, gif_never_ends, slow_process_image

pytestmark = pytest.mark.timeout(180)

MIB = 1024 * 1024
BODY = 512 * 1024


def _with_work(monkeypatch: pytest.MonkeyPatch, work: Work) -> list[ImageStage]:
    """Run the worker's decoders on ``work``; the stages opened are returned for inspection."""
    opened: list[ImageStage] = []

    def open_stage(params: DownloaderParameters) -> ImageStage:
        stage = open_image_stage(params, work)
        opened.append(stage)
        return stage

    monkeypatch.setattr(worker_setup, "open_image_stage", open_stage)
    return opened


def _write_urls(path: Path, urls: list[str]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uuid", "identifier", "source_id", "license", "source", "title"])
        for index, url in enumerate(urls):
            writer.writerow([str(uuid.uuid4()), url, f"s{index}", "CC0", "fleet", f"t{index}"])


def _hand_budget(folder: Path, fleet: Fleet, name: str, rate: float) -> None:
    (folder / "out").mkdir(exist_ok=True)
    (folder / "out" / "servers_profiles.csv").write_text(
        f"server_name,rate_limit\n{fleet.server_name(name)},{rate}\n"
    )


def test_a_slow_pipeline_holds_fetching_back_within_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SLOW_SECONDS_ENV, "0.05")  # the pipeline: at most 20 images/s
    stages = _with_work(monkeypatch, slow_process_image)
    fast = HostSpec("fast", oversize_rate=1.0, oversize_bytes=BODY)  # 512 KiB JPEG bodies
    with FleetThread([fast], seed=5) as fleet:
        urls = [fleet.image_url("fast", i, "jpeg", 320, 240) for i in range(80)]
        _write_urls(tmp_path / "urls.csv", urls)
        _hand_budget(tmp_path, fleet, "fast", 200)  # the host could serve 10x the pipeline
        config = write_config(
            tmp_path,
            batch_size=20,
            image_size=64,
            max_image_bytes=2 * MIB,
            max_image_pixels=1_000_000,
            memory_per_rank="8MiB",
            cpu_per_worker=1,
            leases_per_worker=4,
            max_in_flight_per_host=16,
        )
        run(config, RunOptions(ranks=1))

    successes, errors = assert_exactly_once(tmp_path / "urls.csv", layout_of(config))
    assert (successes, errors) == (80, 0)
    [stage] = stages
    budget = stage.budget
    assert budget.peak <= budget.capacity  # never more buffered than the budget
    # ... and the budget was what held fetching back: it filled to within one image.
    assert budget.peak > budget.capacity - budget.allowance() > 4 * BODY
    assert budget.reserved == 0  # every reservation was released


def test_refusals_name_their_limit_and_a_stalled_image_stops_at_the_time_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _with_work(monkeypatch, gif_never_ends)  # a GIF never finishes decoding
    with FleetThread([HostSpec("museum")], seed=6) as fleet:
        photos = [fleet.image_url("museum", i, "jpeg", 800, 600) for i in range(12)]
        # 1 Mpx is allowed, but an RGBA WebP of 1 Mpx needs ~23 MB to decode: > the budget.
        heavy = [
            fleet.image_url("museum", 100 + i, "webp", 1000, 1000, mode="RGBA") for i in range(2)
        ]
        wide = [fleet.image_url("museum", 200 + i, "png", 1200, 1000) for i in range(2)]
        stalls = [fleet.image_url("museum", 300 + i, "gif", 64, 64) for i in range(2)]
        _write_urls(tmp_path / "urls.csv", photos + heavy + wide + stalls)
        _hand_budget(tmp_path, fleet, "museum", 50)
        config = write_config(
            tmp_path,
            image_size=128,
            max_image_bytes=2 * MIB,
            max_image_pixels=1_000_000,
            memory_per_rank="8MiB",
            image_timeout=1.0,
            cpu_per_worker=1,
        )
        run(config, RunOptions(ranks=1))

    layout = layout_of(config)
    assert assert_exactly_once(tmp_path / "urls.csv", layout) == (12, 6)
    by_url = {
        row["identifier"]: row
        for row in output_rows(layout, "errors.parquet", ["identifier", "error_code", "error_msg"])
    }
    for url in heavy:
        assert by_url[url]["error_code"] == codes.DECOMPRESSION_BOMB
        assert "memory_per_rank 8 MiB" in by_url[url]["error_msg"]
    for url in wide:
        assert by_url[url]["error_code"] == codes.DECOMPRESSION_BOMB
        assert "max_image_pixels 1000000" in by_url[url]["error_msg"]
    for url in stalls:
        assert by_url[url]["error_code"] == codes.IMAGE_TIMEOUT
        assert "image_timeout 1 s" in by_url[url]["error_msg"]
