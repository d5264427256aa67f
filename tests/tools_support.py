"""A small real download from the simulated fleet, shaped for hand counts of the tools.

Rows (the fleet serves one picture per ``image_id % 8``, format and size, so equal ids mod 8
at one format and size are byte-identical, on any host):

* host ``a``: ids 0-9 as 640x480 JPEG (8 pictures: 8≡0 and 9≡1 repeat), ids 10-13 as
  160x120 PNG (4 small pictures);
* host ``b``: ids 0-5 as 640x480 JPEG (repeats of ``a``'s 0-5), ids 6-9 as 300x200 JPEG.

24 successes, 16 distinct originals (8 duplicates), 4 with a longer side below 224.
"""

from __future__ import annotations

import csv
import uuid
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import yaml

from distdl.api import RunOptions, run
from distdl.config import load_config
from distdl.layout import Layout
from distdl.testing.fleet import HostSpec
from distdl.testing.fleet_thread import FleetThread
from distdl.tools.apply import ToolOutcome, apply_tools
from distdl.tools.pipeline import open_version

SUCCESSES = 24
DUPLICATES = 8
SMALL = 4  # longer side below THRESHOLD
THRESHOLD = 224
IMAGE_SIZE = 256  # the download's stored longer side
BATCH_SIZE = 3

_HOSTS = [HostSpec("a", rate_limit=500), HostSpec("b", rate_limit=500)]
_ROWS = {
    "a": [(i, "jpeg", 640, 480) for i in range(10)] + [(i, "png", 160, 120) for i in range(10, 14)],
    "b": [(i, "jpeg", 640, 480) for i in range(6)] + [(i, "jpeg", 300, 200) for i in range(6, 10)],
}


@dataclass(frozen=True)
class Download:
    config: Path
    output: Path


def write_tools_config(folder: Path, **tools_parameters: object) -> Path:
    data = {
        "path_to_input": "urls.csv",
        "path_to_output": "out",
        "downloader_parameters": {
            "batch_size": BATCH_SIZE,
            "default_rate_limit": 200,
            "image_size": IMAGE_SIZE,
        },
        "tools_parameters": {"threshold_size": THRESHOLD, **tools_parameters},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def make_download(folder: Path) -> Download:
    folder.mkdir(parents=True, exist_ok=True)
    with FleetThread(_HOSTS, seed=1) as fleet:
        with (folder / "urls.csv").open("w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(["uuid", "identifier", "source_id", "license", "source", "title"])
            for host, rows in _ROWS.items():
                for image_id, fmt, width, height in rows:
                    url = fleet.image_url(host, image_id, fmt, width, height)
                    key = f"{host}-{image_id}"
                    writer.writerow(
                        [str(uuid.uuid5(uuid.NAMESPACE_URL, key)), url, key, "", host, key]
                    )
        config = write_tools_config(folder)
        # Known budgets: no slow start, so the download takes a second or two.
        lines = ["server_name,rate_limit"] + [f"{fleet.server_name(h)},200" for h in _ROWS]
        (folder / "out").mkdir(exist_ok=True)
        (folder / "out" / "servers_profiles.csv").write_text("\n".join(lines) + "\n")
        run(config, RunOptions(ranks=1))
    return Download(config, folder / "out")


def apply(download: Download, tool: str, **options: object) -> ToolOutcome:
    options.setdefault("ranks", 1)
    return apply_tools(download.config, tool, **options)


def version_rows(download: Download, name: str, columns: list[str]) -> pl.DataFrame:
    layout = Layout.from_config(load_config(download.config))
    return open_version(layout, name).scan(columns).collect()


def removed_rows(download: Download, name: str) -> pl.DataFrame:
    layout = Layout.from_config(load_config(download.config))
    files = sorted((layout.tools / name).glob("server_name=*/partition_id=*/removed.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal")


def download_rows(download: Download, columns: list[str]) -> pl.DataFrame:
    return version_rows(download, "download", columns)


def set_tools_parameters(download: Download, **parameters: object) -> None:
    data = yaml.safe_load(download.config.read_text())
    data["tools_parameters"].update(parameters)
    download.config.write_text(yaml.safe_dump(data))
