"""What an output folder holds: totals read from the completion markers, and run summaries."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

from distdl.core.codes import describe
from distdl.core.text import plural
from distdl.io.atomic import atomic_write_text
from distdl.io.markers import partition_dirs, read_marker
from distdl.layout import ERRORS_FILE, Layout

if TYPE_CHECKING:  # the coordinator imports the table stack: not for a launching process
    from distdl.runtime.coordinator import RunReport


@dataclass
class DatasetTotals:
    partitions_done: int = 0
    partitions_planned: int = 0
    successes: int = 0
    errors: int = 0
    rejected_rows: int = 0
    ignored_rows: int = 0
    ignored_servers: int = 0
    errors_by_code: Counter[int] = field(default_factory=Counter)


def _scan_done(layout: Layout, totals: DatasetTotals, with_codes: bool) -> None:
    for _, _, folder in partition_dirs(layout.images):
        marker = read_marker(folder)
        if marker is None:
            continue
        if folder == layout.rejected_dir:
            totals.rejected_rows += pq.read_metadata(folder / ERRORS_FILE).num_rows
        else:
            totals.partitions_done += 1
            totals.successes += int(marker.get("successes", 0) or 0)
            totals.errors += int(marker.get("errors", 0) or 0)
        if with_codes:
            codes = pq.read_table(folder / ERRORS_FILE, columns=["error_code"])
            totals.errors_by_code.update(codes.column("error_code").to_pylist())


def dataset_totals(layout: Layout, *, with_codes: bool = False) -> DatasetTotals:
    """What the output folder holds. pyarrow only: this also writes the line a stop prints,
    and a stop may land in the middle of importing Polars."""
    totals = DatasetTotals()
    if layout.servers_table.exists():
        columns = ["ignored", "total_urls", "total_batches"]
        servers = pq.read_table(layout.servers_table, columns=columns).to_pylist()
        ignored = [row for row in servers if row["ignored"]]
        totals.partitions_planned = sum(
            row["total_batches"] for row in servers if not row["ignored"]
        )
        totals.ignored_servers = len(ignored)
        totals.ignored_rows = sum(row["total_urls"] for row in ignored)
    _scan_done(layout, totals, with_codes)
    return totals


def render_run(report: RunReport, totals: DatasetTotals, slowest: int = 5) -> str:
    seconds = max(report.seconds, 1e-9)
    lines = [
        f"this run: {plural(report.partitions_completed, 'partition')}, "
        f"{plural(report.successes, 'image')}, {plural(report.errors, 'error row')} "
        f"in {report.seconds:.1f} s "
        f"({report.successes / seconds:.1f} img/s, "
        f"{report.bytes_downloaded / seconds / 1e6:.2f} MB/s)",
        f"requests: {report.requests}, answered 429/503: {report.throttled} "
        f"({100 * report.throttled / max(report.requests, 1):.2f}%)",
    ]
    lines += render_totals(totals)
    if report.errors_by_code:
        lines.append("errors this run by code:")
        for code, count in report.errors_by_code.most_common():
            lines.append(f"  {code:>5}  {count:>8}  {describe(code)}")
    hosts = sorted(
        report.hosts.items(), key=lambda kv: -(kv[1].last_finish or 0) + (kv[1].first_start or 0)
    )
    if hosts:
        lines.append(f"slowest hosts (of {len(hosts)}):")
        for name, tally in hosts[:slowest]:
            span = (tally.last_finish or 0) - (tally.first_start or 0)
            lines.append(
                f"  {name:<32} {span:7.1f} s  {tally.successes:>7} images  "
                f"{tally.requests:>7} requests  {tally.throttled:>5} throttled"
            )
    if report.unreachable:
        lines.append(f"unreachable hosts (their rows are errors; {len(report.unreachable)}):")
        lines += [f"  {name:<32} {why}" for name, why in sorted(report.unreachable.items())]
    return "\n".join(lines)


def render_totals(totals: DatasetTotals) -> list[str]:
    lines = [
        f"dataset: {totals.partitions_done}/{totals.partitions_planned} partitions done, "
        f"{plural(totals.successes, 'image')}, {plural(totals.errors, 'download error')}, "
        f"{totals.rejected_rows} rejected at planning",
    ]
    if totals.ignored_servers:
        lines.append(
            f"ignored: {plural(totals.ignored_rows, 'row')} on "
            f"{plural(totals.ignored_servers, 'server')} "
            "(listed in ignored_table; not scheduled)"
        )
    return lines


def save_run_summary(layout: Layout, report: RunReport) -> Path:
    """Keep every run's figures in schedules_folder as JSON, for later comparison."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = layout.schedules / f"run-{stamp}.json"
    data = asdict(report)
    data["errors_by_code"] = {str(k): v for k, v in report.errors_by_code.items()}
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")
    return path
