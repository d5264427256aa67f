"""Stage "batched": plan the input into per-server partitions of URLs, streaming.

Every input row ends up exactly once either in a partition
(``{urls}/server_name=<safe>/partition_id=<n>/urls.parquet``), or, when its identifier is
not a fetchable URL or its uuid is empty, as an error row in
``layout.rejected_dir/errors.parquet``, or, when the input layer's filters set it aside
(:mod:`distdl.inputs`: not an image, a repeat, already stored, not sampled), counted by
reason in ``{urls}/filtered.json``: filtered rows are not downloads. Memory is bounded by
a chunk of input plus the partitioner's budget, never by the input: what grows with it
(spilled rows, the 8-byte uuid hashes of the duplicate check) waits on disk in the
staging folder.

The plan appears atomically: it is built in a staging folder and renamed into place only
when complete, after the rejects file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from distdl.config import Config
from distdl.core.urls import safe_dir_name
from distdl.errors import InputError, StateError
from distdl.inputs.pipeline import PreparedInput, prepare_input
from distdl.inputs.provenance import CardFacts, write_provenance
from distdl.inputs.tally import write_filtered
from distdl.layout import SERVERS_TABLE, Layout
from distdl.plan.chunk import has_uuid, split_chunk
from distdl.plan.duplicates import UuidHashes, confirm_duplicates
from distdl.plan.ignored import read_ignored_servers
from distdl.plan.partition_files import BATCH_SIZE_KEY
from distdl.plan.partitioner import DEFAULT_MEMORY_BUDGET, Partitioner, ServerTotals
from distdl.plan.reader import InputSource
from distdl.plan.rejects import RejectWriter
from distdl.plan.staging import create_staging_dir, discard_staging_dir, swap_into_place

log = logging.getLogger("distdl.plan")

SERVERS_SCHEMA = pa.schema(
    [
        pa.field("server_name", pa.string(), nullable=False),
        pa.field("safe_name", pa.string(), nullable=False),
        pa.field("total_urls", pa.int64(), nullable=False),
        pa.field("total_batches", pa.int64(), nullable=False),
        pa.field("ignored", pa.bool_(), nullable=False),
    ]
)
_PROGRESS_EVERY_ROWS = 10_000_000
_HASHES_FOLDER = "_uuid_hashes"
_JOIN_FOLDER = "_occurrence_join"


@dataclass(frozen=True)
class PlanSummary:
    """Counts of a plan. ``total_rows == planned_rows + rejected_rows`` (the rows that reach
    the planner); ``filtered_rows`` more were read and set aside by the input layer.
    Ignored servers' rows are planned (and counted in ``planned_rows``, ``servers`` and
    ``partitions``)."""

    total_rows: int
    planned_rows: int
    rejected_rows: int
    servers: int
    partitions: int
    ignored_servers: int
    ignored_rows: int
    filtered_rows: int = 0


def plan_input(
    config: Config, layout: Layout, input_format: Literal["csv", "tsv", "parquet"] | None = None
) -> PlanSummary:
    """Read ``config.path_to_input`` and write the plan; raise InputError on bad input."""
    source = prepare_input(config, input_format)
    ignored = read_ignored_servers(layout.ignored_table)
    summary = plan_source(source, layout, config.downloader_parameters.batch_size, ignored)
    write_provenance(layout.root, source.source.archive, _card_facts(source, summary))
    return summary


def _card_facts(source: PreparedInput, summary: PlanSummary) -> CardFacts:
    counts = {
        "read from the input": source.tally.rows_read,
        "set aside while planning (filtered)": summary.filtered_rows,
        "planned for download": summary.planned_rows,
        "rejected as error rows (no fetchable URL)": summary.rejected_rows,
    }
    return CardFacts(
        source=str(source.path),
        description=source.preset.description,
        counts=counts,
        tally=source.tally,
        licences=source.licences,
        filters=source.filters_applied,
    )


def plan_source(
    source: InputSource | PreparedInput,
    layout: Layout,
    batch_size: int,
    ignored: frozenset[str] = frozenset(),
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> PlanSummary:
    """:func:`plan_input` on an opened input, with the partitioner's memory budget exposed.

    Derived uuids repeat exactly when rows repeat an image: repeats within a chunk are
    dropped as they come; repeats across chunks show up in the uuid hashes, and the input
    is then planned once more with those hashes known, dropping every repeat.
    """
    while True:
        summary = _plan_once(source, layout, batch_size, ignored, memory_budget)
        if summary is not None:
            return summary


def _plan_once(
    source: InputSource | PreparedInput,
    layout: Layout,
    batch_size: int,
    ignored: frozenset[str],
    memory_budget: int,
) -> PlanSummary | None:
    """The plan, or None when repeated derived uuids were found and need another pass."""
    staging = create_staging_dir(layout)
    rejects = RejectWriter(layout.rejected_dir)
    partitioner = Partitioner(staging, batch_size, memory_budget)
    hashes = UuidHashes(staging / _HASHES_FOLDER)
    prepared = source if isinstance(source, PreparedInput) else None
    if prepared is not None:
        prepared.work_folder = staging / _JOIN_FOLDER
    try:
        total_rows = _stream_rows(source, partitioner, rejects, hashes)
        totals = partitioner.finish()
        candidates = hashes.candidates()
        if _repeats_need_a_pass(prepared, candidates):
            assert prepared is not None
            log.info("planning: %d uuids repeat across chunks, planning again", len(candidates))
            prepared.repeated_hashes = candidates
            raise _PlanAgain
        _check_duplicates(source, candidates)
        (staging / _HASHES_FOLDER).rmdir()
        servers = _servers_table(totals, ignored)
        _write_servers_table(servers, staging / SERVERS_TABLE, batch_size)
        if prepared is not None:
            write_filtered(staging, prepared.tally, prepared.filters_applied)
        rejects.commit()
        swap_into_place(layout, staging)
    except BaseException as exc:
        partitioner.abort()  # its writer thread must stop before the staging folder goes
        hashes.close()
        rejects.abort()
        discard_staging_dir(layout, staging)
        if isinstance(exc, _PlanAgain):
            return None
        raise
    filtered = prepared.tally.filtered if prepared is not None else 0
    return _summarise(total_rows, rejects.rows, servers, filtered)


def _repeats_need_a_pass(prepared: PreparedInput | None, candidates: pl.Series) -> bool:
    """Derived uuids repeating across chunks, not yet known to the input layer."""
    if prepared is None or not prepared.derives_uuid or prepared.repeated_hashes is not None:
        return False
    return len(candidates) > 0


class _PlanAgain(Exception):
    """Raised inside a planning pass to discard it and plan again."""


def _stream_rows(
    source: InputSource | PreparedInput,
    partitioner: Partitioner,
    rejects: RejectWriter,
    hashes: UuidHashes,
) -> int:
    total = 0
    for table in source.chunks():
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        planned, rejected = split_chunk(frame, hashes)
        partitioner.add(planned)
        rejects.write(rejected.to_arrow())
        if (total + frame.height) // _PROGRESS_EVERY_ROWS > total // _PROGRESS_EVERY_ROWS:
            log.info("planning: %d rows read", total + frame.height)
        total += frame.height
    return total


def _check_duplicates(source: InputSource | PreparedInput, candidates: pl.Series) -> None:
    if len(candidates) == 0:
        return
    log.info("planning: %d possible duplicate uuids, confirming", len(candidates))
    report = confirm_duplicates(_uuid_chunks(source), candidates)
    if report is not None:
        raise InputError(f"{source.path}: duplicate uuids: {report.describe()}")


def _uuid_chunks(source: InputSource | PreparedInput) -> Iterator[pl.Series]:
    for table in source.chunks():
        uuids = pl.Series("uuid", table.column("uuid"))
        yield uuids.filter(has_uuid(uuids))


def _servers_table(totals: dict[str, ServerTotals], ignored: frozenset[str]) -> pa.Table:
    names = sorted(totals)
    return pa.Table.from_pydict(
        {
            "server_name": names,
            "safe_name": [safe_dir_name(name) for name in names],
            "total_urls": [totals[name].total_urls for name in names],
            "total_batches": [totals[name].total_batches for name in names],
            "ignored": [name in ignored for name in names],
        },
        schema=SERVERS_SCHEMA,
    )


def _write_servers_table(servers: pa.Table, path: Path, batch_size: int) -> None:
    metadata = {BATCH_SIZE_KEY: str(batch_size).encode()}
    pq.write_table(servers.replace_schema_metadata(metadata), path)


def _summarise(
    total_rows: int, rejected_rows: int, servers: pa.Table, filtered_rows: int
) -> PlanSummary:
    urls = servers.column("total_urls").to_pylist()
    batches = servers.column("total_batches").to_pylist()
    ignored = servers.column("ignored").to_pylist()
    return PlanSummary(
        total_rows=total_rows,
        planned_rows=sum(urls),
        rejected_rows=rejected_rows,
        servers=servers.num_rows,
        partitions=sum(batches),
        ignored_servers=sum(ignored),
        ignored_rows=sum(n for n, skip in zip(urls, ignored, strict=True) if skip),
        filtered_rows=filtered_rows,
    )


def read_servers_table(layout: Layout) -> pl.DataFrame:
    """server_name, safe_name, total_urls, total_batches, ignored: one row per server."""
    try:
        frame = pl.read_parquet(layout.servers_table)
    except FileNotFoundError:
        raise StateError(f"no plan found at {layout.urls}: run the batched stage") from None
    return frame
