"""What a report shows, read from the output folder alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow.parquet as pq

from distdl.config import Config
from distdl.core.timeseries import Point
from distdl.layout import SUCCESSES_FILE, Layout
from distdl.runtime.metrics import METRICS_FILE, read_metrics
from distdl.status import collect_status

MAX_SIZE_FILES = 400  # successes files sampled for the image size distribution
MAX_SIZE_ROWS = 200_000


@dataclass
class ReportData:
    title: str
    status: dict[str, Any]
    total: list[Point] = field(default_factory=list)
    hosts: dict[str, list[Point]] = field(default_factory=dict)
    runs: list[float] = field(default_factory=list)
    longer_sides: list[int] = field(default_factory=list)  # of the original images, px
    megapixels: list[float] = field(default_factory=list)  # of the original images


def image_sizes(layout: Layout) -> tuple[list[int], list[float]]:
    """Longer side and megapixels of the original images, sampled over the first
    ``MAX_SIZE_FILES`` successes files (at most ``MAX_SIZE_ROWS`` rows; the image column
    is never read)."""
    sides: list[int] = []
    megapixels: list[float] = []
    files = sorted(layout.images.glob(f"server_name=*/partition_id=*/{SUCCESSES_FILE}"))
    for path in files[:MAX_SIZE_FILES]:
        try:
            sizes = pq.read_table(path, columns=["original_size"]).column("original_size")
        except (OSError, ValueError):
            continue  # a damaged file: status counts those
        for size in sizes.to_pylist():
            if size and len(size) == 2:
                sides.append(max(size))
                megapixels.append(size[0] * size[1] / 1e6)
        if len(sides) >= MAX_SIZE_ROWS:
            break
    return sides, megapixels


def gather(config: Config, layout: Layout, title: str) -> ReportData:
    total, hosts, runs = read_metrics(layout.logs / METRICS_FILE)
    sides, megapixels = image_sizes(layout)
    status = collect_status(config, layout)
    return ReportData(title, status, total, hosts, runs, sides, megapixels)
