"""Base classes of the three tool families, with the original tool's names.

* **Filter** (:class:`PythonFilterToolBase`): which partitions and rows a tool touches.
  :meth:`~PythonFilterToolBase.select` gets the input version's metadata as a Polars
  ``LazyFrame`` (never the image blobs) and returns the rows to remove with a ``reason``;
  :meth:`~FilterToolBase.run` writes ``partitions.parquet`` and ``filter_table.parquet``.
* **Scheduler** (:class:`DefaultScheduler`): gives every partition a rank, biggest first to
  the least loaded rank; :meth:`~DefaultScheduler.schedule` is the policy to override.
* **Runner** (:class:`MPIRunnerTool`): :meth:`~MPIRunnerTool.apply_filter` turns one input
  partition into a :class:`PartitionResult` (rows kept, rows removed and why). It never
  writes: the runner stage writes the files and the partition's marker, on every rank alike.

Every tool gets a :class:`ToolContext` (``cfg``): the typed config, the output layout, the
input version and the folder of the version being written.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from distdl.errors import ToolError
from distdl.tools.folder import ToolFolder, write_table
from distdl.tools.versions import KEY_COLUMNS, DatasetVersion, OutputKind

if TYPE_CHECKING:
    from distdl.config import Config, ToolsParameters
    from distdl.layout import Layout

# tools_parameters keys that say how to run, not what to produce: not part of a version.
RUN_ONLY_PARAMETERS = ("num_workers", "max_nodes", "workers_per_node", "cpu_per_worker")
REMOVED_COLUMNS = ("uuid", "reason")


@dataclass
class ToolContext:
    config: Config
    layout: Layout
    tool_name: str  # the registered name
    folder: ToolFolder  # where this version is written ({tools_folder}/<name or override>)
    input: DatasetVersion
    rank: int = 0
    world_size: int = 1


class ToolsBase:
    filter_family: ClassVar[str] = ""

    def __init__(self, cfg: ToolContext) -> None:
        self.context = cfg
        self.config: Config = cfg.config
        self.params: ToolsParameters = cfg.config.tools_parameters
        self.filter_name: str = cfg.tool_name
        self.logger = logging.getLogger(f"distdl.tools.{cfg.tool_name}")
        self.tools_path: Path = cfg.layout.tools
        self.downloaded_images_path: Path = cfg.layout.images
        self.total_workers: int = cfg.world_size

    def run(self) -> object:
        raise NotImplementedError


class FilterToolBase(ToolsBase):
    filter_family = "filter"
    columns: ClassVar[tuple[str, ...]] = ()  # metadata columns select() reads

    def select(self, rows: pl.LazyFrame) -> pl.LazyFrame | None:
        """Rows to remove: ``uuid, server_name, partition_id, reason`` (+ any other columns,
        kept in the removed table). None: the runner decides on every row itself."""
        return None

    def run(self) -> dict[str, int]:
        source = self.context.input
        counts = source.scan(["uuid"]).group_by(*KEY_COLUMNS).len("rows")
        partitions = pl.DataFrame(
            {
                "server_name": [ref.server_name for ref in source.partitions()],
                "partition_id": [ref.partition_id for ref in source.partitions()],
            },
            schema={"server_name": pl.String, "partition_id": pl.Int64},
        )
        partitions = (
            partitions.lazy()
            .join(counts, on=list(KEY_COLUMNS), how="left")
            .with_columns(pl.col("rows").fill_null(0).cast(pl.Int64))
            .sort(KEY_COLUMNS)
            .collect(engine="streaming")
        )
        selected = self.select(source.scan(["uuid", *self.columns]))
        removed = (
            _empty_removed()
            if selected is None
            else _checked_selection(selected.collect(engine="streaming"))
        )
        folder = self.context.folder
        write_table(folder.partitions_table, partitions.to_arrow())
        write_table(folder.filter_table, removed.sort([*KEY_COLUMNS, "uuid"]).to_arrow())
        return {
            "partitions": partitions.height,
            "rows": int(partitions["rows"].sum()),
            "selected": removed.height,
        }


class PythonFilterToolBase(FilterToolBase):
    """The filter of tools that look at every partition (``resize``, ``image_verification``)
    or that select rows with Polars (``size_based``, ``duplication_based``)."""


def _empty_removed() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "uuid": pl.String,
            "server_name": pl.String,
            "partition_id": pl.Int64,
            "reason": pl.String,
        }
    )


def _checked_selection(selected: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in ("uuid", *KEY_COLUMNS, "reason") if c not in selected.columns]
    if missing:
        raise ToolError(f"a filter's select() must return columns {missing} too")
    return selected.with_columns(pl.col("partition_id").cast(pl.Int64))


class SchedulerToolBase(ToolsBase):
    filter_family = "scheduler"


class DefaultScheduler(SchedulerToolBase):
    def schedule(self, partitions: pl.DataFrame, workers: int) -> pl.DataFrame:
        """``partitions`` (server_name, partition_id, rows) with a ``rank`` each: biggest
        first, each to the rank with the fewest rows so far (ties: the lowest rank)."""
        loads = [(0, rank) for rank in range(max(1, workers))]
        ordered = partitions.sort(["rows", *KEY_COLUMNS], descending=[True, False, False])
        ranks = []
        for rows in ordered["rows"]:
            load, rank = heapq.heappop(loads)
            ranks.append(rank)
            heapq.heappush(loads, (load + max(1, int(rows)), rank))
        return ordered.with_columns(pl.Series("rank", ranks, dtype=pl.Int64))

    def run(self) -> dict[str, int]:
        folder = self.context.folder
        partitions = pl.read_parquet(folder.partitions_table)
        schedule = self.schedule(partitions, self.total_workers)
        if "rank" not in schedule.columns or schedule.height != partitions.height:
            raise ToolError("a scheduler must give every partition exactly one rank")
        write_table(folder.schedule_table, schedule.sort(KEY_COLUMNS).to_arrow())
        return {"partitions": schedule.height, "workers": self.total_workers}


@dataclass(frozen=True)
class PartitionResult:
    kept: pa.Table  # selection: a "uuid" column at least; images: the successes schema
    removed: pa.Table  # "uuid", "reason", and any other columns the tool explains with

    @classmethod
    def from_reasons(cls, rows: pa.Table, reasons: Mapping[str, str]) -> PartitionResult:
        """Keep every row of ``rows`` but those whose uuid ``reasons`` maps to a reason."""
        uuids = rows.column("uuid")
        dropped = pc.is_in(uuids, value_set=pa.array(list(reasons), pa.string()))
        removed = pa.table(
            {
                "uuid": pa.array(list(reasons), pa.string()),
                "reason": pa.array(list(reasons.values()), pa.string()),
            }
        )
        return cls(rows.filter(pc.invert(dropped)), removed)


class RunnerToolBase(ToolsBase):
    filter_family = "runner"
    output_kind: ClassVar[OutputKind] = "selection"
    columns: ClassVar[tuple[str, ...] | None] = None  # input columns read; None: all

    @classmethod
    def version_parameters(cls, config: Config) -> dict[str, Any]:
        """What shapes this tool's output: part of the version's identity."""
        params = config.tools_parameters.model_dump()
        return {k: v for k, v in params.items() if k not in RUN_ONLY_PARAMETERS}

    def apply_filter(
        self, rows: pa.Table, filtering_df: pl.DataFrame, server_name: str, partition_id: int
    ) -> PartitionResult:
        raise NotImplementedError(f"{type(self).__name__} must implement apply_filter")

    def run(self) -> dict[str, int]:
        """Process this rank's partitions not done yet (see distdl.tools.runner)."""
        from distdl.tools.runner import run_partitions

        return run_partitions(self)


class MPIRunnerTool(RunnerToolBase):
    """A runner whose partitions are spread over MPI ranks (every runner is)."""


class FilterRunnerTool(MPIRunnerTool):
    """Keeps every row but those the filter selected; reads uuids only, never images."""

    columns = ("uuid",)

    def apply_filter(
        self, rows: pa.Table, filtering_df: pl.DataFrame, server_name: str, partition_id: int
    ) -> PartitionResult:
        removed = filtering_df.drop([c for c in KEY_COLUMNS if c in filtering_df.columns])
        uuids = rows.column("uuid")
        dropped = pc.is_in(uuids, value_set=pa.array(removed["uuid"].to_list(), pa.string()))
        here = removed.filter(pl.col("uuid").is_in(uuids.to_pylist()))
        return PartitionResult(rows.filter(pc.invert(dropped)), here.to_arrow())


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
