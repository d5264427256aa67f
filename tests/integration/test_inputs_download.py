"""A GBIF archive goes straight into `distdl run`: carried columns reach successes.parquet."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml
from gbif_archives import OCCURRENCE_ONLY_ZIP, write_archive
from support import layout_of, output_rows

from distdl.api import RunOptions, run
from distdl.layout import ERRORS_FILE, SUCCESSES_FILE
from distdl.testing.fleet import HostSpec
from distdl.testing.fleet_thread import FleetThread
from distdl.testing.fleet_workload import write_url_list

pytestmark = pytest.mark.timeout(120)

MULTIMEDIA = ["gbifID", "type", "format", "identifier", "license", "rightsHolder", "creator"]


def _config(folder: Path, input_name: str, **settings: object) -> Path:
    data = {
        "path_to_input": input_name,
        "path_to_output": "out",
        "downloader_parameters": {"batch_size": 20, "default_rate_limit": 20},
        **settings,
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_occurrence_fields_licence_ids_and_kept_columns_reach_successes(tmp_path: Path) -> None:
    with FleetThread([HostSpec("museum", rate_limit=50)], seed=2) as fleet:
        write_url_list(fleet, tmp_path / "urls.csv", {"museum": 12})
        urls = pl.read_csv(tmp_path / "urls.csv")["identifier"].to_list()
        images = [
            [str(100 + n // 2), "StillImage", "image/jpeg", url, "CC BY 4.0", "Museum", "Ann"]
            for n, url in enumerate(urls)
        ]
        sound = ["100", "Sound", "audio/mpeg", urls[0] + ".mp3", "CC0", "Museum", "Ann"]
        core = (
            ["gbifID", "scientificName"],
            [[str(100 + n), f"Species {n}"] for n in range(len(urls) // 2)],
        )
        write_archive(tmp_path / "gbif.zip", (MULTIMEDIA, [*images, sound]), core)
        config = _config(tmp_path, "gbif.zip", input_occurrence_fields=["scientificName"])

        run(config, RunOptions(ranks=1))

    layout = layout_of(config)
    files = sorted(layout.images.glob(f"server_name=*/partition_id=*/{SUCCESSES_FILE}"))
    successes = pl.concat([pl.read_parquet(f).drop("image") for f in files]).to_dicts()
    errors = output_rows(layout, ERRORS_FILE, ["uuid"])
    assert len(successes) + len(errors) == len(images)  # the Sound row was never a download
    assert len(successes) > 0
    for row in successes:
        assert row["license_id"] == "CC-BY-4.0" and row["is_license_full"] is True
        assert row["creator"] == "Ann" and row["type"] == "StillImage"
        assert row["scientificName"] == f"Species {int(row['source_id']) - 100}"
    assert "| sampling |" not in (layout.root / "DATASET.md").read_text()
    assert "| type | 1 |" in (layout.root / "DATASET.md").read_text()


def test_distdl_run_on_an_archive_without_multimedia_exits_3_saying_why(tmp_path: Path) -> None:
    config = _config(tmp_path, str(OCCURRENCE_ONLY_ZIP))
    result = subprocess.run(
        [sys.executable, "-m", "distdl", "run", str(config), "--until", "batched"],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert result.returncode == 3, result.stderr
    assert "no multimedia extension" in result.stderr
    assert "Ask GBIF for a download that includes multimedia" in result.stderr
