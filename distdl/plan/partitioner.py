"""Cut each server's rows into partitions of ``batch_size`` rows, in input order, streaming.

Rows arrive chunk by chunk, mixed across servers. Each server buffers its rows until it
has ``batch_size`` of them, then that partition is written as one parquet file. When all
buffers together outgrow the memory budget, the largest ones are spilled to disk
(:mod:`distdl.plan.spill`) and read back when their partition completes. So memory stays
bounded by the budget plus one partition, and the partitions are the same whatever the
budget: partition ``p`` of a server holds its rows ``p * batch_size`` to
``(p + 1) * batch_size - 1``, in input order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa

from distdl.layout import URLS_FILE, partition_subpath
from distdl.plan.spill import SpilledPiece, SpillStore
from distdl.plan.writer import BackgroundParquetWriter
from distdl.schema import URLS

# Buffered bytes as Arrow counts them; the process's RSS grows by ~1.7x that (allocator
# fragmentation over many small tables), measured on 10M rows.
DEFAULT_MEMORY_BUDGET = 192 * 1024 * 1024
SPILL_FOLDER = "_spill"


@dataclass
class _ServerRows:
    """The rows of one server not yet written, oldest first."""

    tables: list[pa.Table] = field(default_factory=list)
    buffered_rows: int = 0
    buffered_bytes: int = 0
    pieces: list[SpilledPiece] = field(default_factory=list)  # of the open partition
    spilled_rows: int = 0
    next_partition: int = 0
    total_rows: int = 0

    @property
    def pending_rows(self) -> int:
        return self.spilled_rows + self.buffered_rows

    def append(self, table: pa.Table) -> None:
        self.tables.append(table)
        self.buffered_rows += table.num_rows
        self.buffered_bytes += table.nbytes
        self.total_rows += table.num_rows

    def take_buffered(self, n_rows: int) -> list[pa.Table]:
        """Remove and return the first ``n_rows`` buffered rows."""
        taken: list[pa.Table] = []
        while n_rows > 0:
            table = self.tables.pop(0)
            if table.num_rows > n_rows:
                self.tables.insert(0, table.slice(n_rows))
                table = table.slice(0, n_rows)
            taken.append(table)
            n_rows -= table.num_rows
        self.buffered_rows = sum(t.num_rows for t in self.tables)
        self.buffered_bytes = sum(t.nbytes for t in self.tables)
        return taken

    def compact(self) -> None:
        """Copy a partly written table's rest, so it stops pinning the written part."""
        if self.tables and self.tables[0].column(0).chunk(0).offset > 0:
            head = self.tables[0]
            # Concatenating with an empty table is Arrow's cheapest deep copy.
            self.tables[0] = pa.concat_tables([head, head.schema.empty_table()]).combine_chunks()


@dataclass(frozen=True)
class ServerTotals:
    total_urls: int
    total_batches: int


class Partitioner:
    """Writes ``root/server_name=<safe>/partition_id=<n>/urls.parquet`` files."""

    def __init__(
        self, root: Path, batch_size: int, memory_budget: int = DEFAULT_MEMORY_BUDGET
    ) -> None:
        self._root = root
        self._batch_size = batch_size
        self._memory_budget = memory_budget
        self._servers: dict[str, _ServerRows] = {}
        self._buffered_bytes = 0
        self._spill = SpillStore(root / SPILL_FOLDER)
        self._writer = BackgroundParquetWriter()

    def add(self, rows: pl.DataFrame) -> None:
        """Add rows (the columns of schema.URLS, then any carried ones) in input order;
        null-server rows are skipped."""
        if rows.height == 0:
            return
        carried = [name for name in rows.columns if name not in URLS.names]
        groups = rows.select([*URLS.names, *carried]).partition_by(
            "server_name", as_dict=True, maintain_order=True, include_key=False
        )
        for (server_name,), group in groups.items():
            if server_name is None:  # rejected rows, written elsewhere
                continue
            server = self._servers.setdefault(server_name, _ServerRows())
            self._buffered_bytes -= server.buffered_bytes
            # to_arrow copies the rows out of the chunk, so the chunk can be freed.
            server.append(group.to_arrow())
            while server.pending_rows >= self._batch_size:
                self._write_partition(server_name, server, self._batch_size)
            server.compact()
            self._buffered_bytes += server.buffered_bytes
        if self._buffered_bytes > self._memory_budget:
            self._spill_largest()

    def finish(self) -> dict[str, ServerTotals]:
        """Write every server's last, partial partition; totals per server."""
        for server_name, server in self._servers.items():
            if server.pending_rows:
                self._write_partition(server_name, server, server.pending_rows)
        self._buffered_bytes = 0
        self.close()
        return {
            name: ServerTotals(server.total_rows, server.next_partition)
            for name, server in self._servers.items()
        }

    def close(self) -> None:
        """Wait for pending writes (raising the first failure) and drop spilled rows."""
        try:
            self._writer.close()
        finally:
            self._spill.close()

    def abort(self) -> None:
        """Stop after a failure elsewhere; write errors are not raised."""
        self._writer.close(raise_errors=False)
        self._spill.close()

    def _write_partition(self, server_name: str, server: _ServerRows, n_rows: int) -> None:
        tables = [self._spill.load(piece) for piece in server.pieces]
        tables += server.take_buffered(n_rows - server.spilled_rows)
        server.pieces = []
        server.spilled_rows = 0
        folder = self._root / partition_subpath(server_name, server.next_partition)
        folder.mkdir(parents=True, exist_ok=True)
        self._writer.submit(_urls_table(server_name, tables), folder / URLS_FILE)
        server.next_partition += 1

    def _spill_largest(self) -> None:
        """Move the biggest buffers to disk, in one file, until half the budget is free."""
        chosen: list[_ServerRows] = []
        by_size = sorted(self._servers.values(), key=lambda s: s.buffered_bytes, reverse=True)
        for server in by_size:
            if self._buffered_bytes <= self._memory_budget // 2 or server.buffered_rows == 0:
                break
            self._buffered_bytes -= server.buffered_bytes
            chosen.append(server)
        if not chosen:
            return
        tables = [pa.concat_tables(server.take_buffered(server.buffered_rows)) for server in chosen]
        for server, piece in zip(chosen, self._spill.spill(tables), strict=True):
            server.pieces.append(piece)
            server.spilled_rows += piece.n_rows


def _urls_table(server_name: str, tables: list[pa.Table]) -> pa.Table:
    """schema.URLS, then the carried columns (licence ids, kept and occurrence columns)."""
    # One chunk per column first: casting dozens of small chunks costs more than the copy.
    table = pa.concat_tables(tables).combine_chunks()
    names = pa.repeat(pa.scalar(server_name, pa.string()), table.num_rows)
    table = table.append_column("server_name", names)
    carried = [_small_strings(field) for field in table.schema if field.name not in URLS.names]
    order = [*URLS.names, *(field.name for field in carried)]
    return table.select(order).cast(pa.schema([*URLS, *carried]))


def _small_strings(field: pa.Field) -> pa.Field:
    """Polars hands strings over as large_string: stored as string, like distdl's own."""
    return field.with_type(pa.string()) if pa.types.is_large_string(field.type) else field
