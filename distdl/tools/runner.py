"""The runner stage on one rank: its share of the schedule, one partition at a time.

Rank ``r`` of ``n`` takes the schedule rows whose ``rank % n == r``: a schedule made for
another number of ranks is still covered exactly once. A partition is done exactly when its
``completed`` marker exists; its files are written under temporary names and renamed
before the marker, so a rank killed at any point leaves either a finished partition or one
that the next run does again from the start (rewriting its files by rename).
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

from distdl import schema
from distdl.errors import DistdlError, ToolError
from distdl.io.markers import is_completed, write_marker
from distdl.io.partition_writer import ParquetStreamWriter
from distdl.layout import SUCCESSES_FILE
from distdl.tools.versions import KEY_COLUMNS, REMOVED_FILE, SELECTION_FILE, PartitionRef

if TYPE_CHECKING:
    from distdl.tools.bases import PartitionResult, RunnerToolBase

log = logging.getLogger("distdl.tools")
SELECTION_SCHEMA = pa.schema([pa.field("uuid", pa.string(), nullable=False)])


def my_share(schedule: pl.DataFrame, rank: int, world_size: int) -> pl.DataFrame:
    return schedule.filter((pl.col("rank") % world_size) == rank).sort(KEY_COLUMNS)


def run_partitions(runner: RunnerToolBase) -> dict[str, int]:
    """Process this rank's partitions without a marker; counts of what was done."""
    context = runner.context
    folder = context.folder
    share = my_share(pl.read_parquet(folder.schedule_table), context.rank, context.world_size)
    todo = [
        row
        for row in share.iter_rows(named=True)
        if not is_completed(
            folder.partition_dir(PartitionRef(row["server_name"], row["partition_id"]))
        )
    ]
    selected, nothing = _selected_rows(folder.filter_table, pl.DataFrame(todo, schema=share.schema))
    done = {"partitions": 0, "skipped": share.height - len(todo), "kept": 0, "removed": 0}
    for row in todo:
        ref = PartitionRef(row["server_name"], row["partition_id"])
        filtering = selected.get((ref.server_name, ref.partition_id), nothing)
        try:
            kept, removed = _process(runner, ref, filtering)
        except DistdlError:
            raise
        except Exception as exc:  # a tool's bug: name the partition, keep the traceback
            log.exception("%s: %s failed", context.folder.name, ref.subpath)
            raise ToolError(
                f"{context.folder.name}: partition {ref.subpath} failed: "
                f"{type(exc).__name__}: {exc}; fix the cause and run the tool again"
            ) from exc
        done["partitions"] += 1
        done["kept"] += kept
        done["removed"] += removed
    return done


def _selected_rows(
    filter_table: os.PathLike[str], todo: pl.DataFrame
) -> tuple[dict[tuple[str, int], pl.DataFrame], pl.DataFrame]:
    """The filter table's rows of the partitions still to do, by partition, and an empty
    frame of the same columns (a partition the filter selected nothing from)."""
    table = pl.scan_parquet(filter_table).join(
        todo.lazy().select(KEY_COLUMNS), on=list(KEY_COLUMNS), how="semi"
    )
    frame = table.collect()
    by_partition = {
        (str(key[0]), int(key[1])): group  # type: ignore[arg-type]
        for key, group in frame.group_by(list(KEY_COLUMNS))
    }
    return by_partition, frame.clear()


def _process(runner: RunnerToolBase, ref: PartitionRef, filtering: pl.DataFrame) -> tuple[int, int]:
    context = runner.context
    columns = None if runner.columns is None else list(dict.fromkeys(["uuid", *runner.columns]))
    rows = context.input.read(ref, columns)
    result = runner.apply_filter(rows, filtering, ref.server_name, ref.partition_id)
    kept, removed = _checked(runner, ref, rows, result)
    out = context.folder.partition_dir(ref)
    out.mkdir(parents=True, exist_ok=True)
    if runner.output_kind == "images":
        kept_file, kept_schema = SUCCESSES_FILE, schema.SUCCESSES
    else:
        kept_file, kept_schema, kept = SELECTION_FILE, SELECTION_SCHEMA, kept.select(["uuid"])
    with ParquetStreamWriter(out / kept_file, kept_schema) as writer:
        writer.append_table(kept)
    with ParquetStreamWriter(out / REMOVED_FILE, removed.schema) as writer:
        writer.append_table(removed)
    write_marker(
        out,
        {
            "input_rows": rows.num_rows,
            "kept": kept.num_rows,
            "removed": removed.num_rows,
            "rank": context.rank,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        },
    )
    log.debug(
        "%s: %s done (%d kept, %d removed)",
        context.folder.name,
        ref.subpath,
        kept.num_rows,
        removed.num_rows,
    )
    return kept.num_rows, removed.num_rows


def _checked(
    runner: RunnerToolBase, ref: PartitionRef, rows: pa.Table, result: PartitionResult
) -> tuple[pa.Table, pa.Table]:
    """Every input row is kept or removed, exactly once: a runner may not lose one."""
    name = type(runner).__name__
    kept, removed = result.kept, result.removed
    for column in ("uuid", "reason"):
        if column not in removed.column_names:
            raise ToolError(f"{name}: the removed table of {ref.subpath} has no {column!r}")
    removed = removed.cast(
        pa.schema(
            [
                pa.field(f.name, pa.string() if f.name in ("uuid", "reason") else f.type)
                for f in removed.schema
            ]
        )
    )
    seen = kept.column("uuid").to_pylist() + removed.column("uuid").to_pylist()
    expected = rows.column("uuid").to_pylist()
    if len(seen) != len(expected) or set(seen) != set(expected):
        raise ToolError(
            f"{name}: {ref.subpath} had {len(expected)} rows, the runner kept "
            f"{kept.num_rows} and removed {removed.num_rows} (every row exactly once)"
        )
    return kept, removed
