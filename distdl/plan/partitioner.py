"""Cut each server's rows into partitions of ``batch_size`` rows, in input order, streaming.

Rows arrive chunk by chunk, mixed across servers. Each server buffers its rows until it
has ``batch_size`` of them, then that partition is written as one parquet file. When all
buffers together outgrow the memory budget, the largest ones are spilled to Arrow IPC
pieces on disk and read back when their partition completes. So memory stays bounded by
the budget plus one partition, no file stays open between chunks, and the partitions are
the same whatever the budget: partition ``p`` of a server holds its rows
``p * batch_size`` to ``(p + 1) * batch_size - 1`` in input order.
"""

from __future__ import annotations

import itertools
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from distdl.layout import URLS_FILE, partition_subpath
from distdl.schema import URLS

DEFAULT_MEMORY_BUDGET = 512 * 1024 * 1024
SPILL_FOLDER = "_spill"
_PARQUET_COMPRESSION = "zstd"


@dataclass
class _ServerRows:
    """The rows of one server not yet written, oldest first."""

    frames: list[pl.DataFrame] = field(default_factory=list)
    buffered_rows: int = 0
    buffered_bytes: int = 0
    pieces: list[Path] = field(default_factory=list)  # spilled rows of the open partition
    spilled_rows: int = 0
    next_partition: int = 0
    total_rows: int = 0

    @property
    def pending_rows(self) -> int:
        return self.spilled_rows + self.buffered_rows

    def append(self, frame: pl.DataFrame) -> None:
        self.frames.append(frame)
        self.buffered_rows += frame.height
        self.buffered_bytes += frame.estimated_size()
        self.total_rows += frame.height

    def take_buffered(self, n_rows: int) -> list[pl.DataFrame]:
        """Remove and return the first ``n_rows`` buffered rows."""
        taken: list[pl.DataFrame] = []
        while n_rows > 0:
            frame = self.frames.pop(0)
            if frame.height > n_rows:
                # Copy the tail so it does not pin (or be billed for) the whole frame.
                tail = pl.from_arrow(frame.slice(n_rows).to_arrow())
                assert isinstance(tail, pl.DataFrame)
                self.frames.insert(0, tail)
                frame = frame.head(n_rows)
            taken.append(frame)
            n_rows -= frame.height
        self.buffered_rows = sum(f.height for f in self.frames)
        self.buffered_bytes = sum(f.estimated_size() for f in self.frames)
        return taken


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
        self._spill_names = itertools.count()

    def add(self, rows: pl.DataFrame) -> None:
        """Add planned rows (columns of schema.URLS) in input order."""
        if rows.height == 0:
            return
        groups = rows.partition_by("server_name", as_dict=True, maintain_order=True)
        for (server_name,), group in groups.items():
            server = self._servers.setdefault(str(server_name), _ServerRows())
            self._buffered_bytes -= server.buffered_bytes
            server.append(group)
            while server.pending_rows >= self._batch_size:
                self._write_partition(str(server_name), server, self._batch_size)
            self._buffered_bytes += server.buffered_bytes
        if self._buffered_bytes > self._memory_budget:
            self._spill_largest()

    def finish(self) -> dict[str, ServerTotals]:
        """Write every server's last, partial partition; totals per server."""
        for server_name, server in self._servers.items():
            if server.pending_rows:
                self._write_partition(server_name, server, server.pending_rows)
        shutil.rmtree(self._root / SPILL_FOLDER, ignore_errors=True)
        self._buffered_bytes = 0
        return {
            name: ServerTotals(server.total_rows, server.next_partition)
            for name, server in self._servers.items()
        }

    def _write_partition(self, server_name: str, server: _ServerRows, n_rows: int) -> None:
        tables = [_read_piece(piece) for piece in server.pieces]
        frames = server.take_buffered(n_rows - server.spilled_rows)
        tables += [_to_urls_table(frame) for frame in frames]
        folder = self._root / partition_subpath(server_name, server.next_partition)
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        pq.write_table(table, folder / URLS_FILE, compression=_PARQUET_COMPRESSION)
        for piece in server.pieces:
            piece.unlink()
        server.pieces = []
        server.spilled_rows = 0
        server.next_partition += 1

    def _spill_largest(self) -> None:
        """Move the biggest buffers to disk until half the budget is free."""
        by_size = sorted(self._servers.values(), key=lambda s: s.buffered_bytes, reverse=True)
        for server in by_size:
            if self._buffered_bytes <= self._memory_budget // 2 or server.buffered_rows == 0:
                break
            self._buffered_bytes -= server.buffered_bytes
            self._spill(server)

    def _spill(self, server: _ServerRows) -> None:
        folder = self._root / SPILL_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        piece = folder / f"{next(self._spill_names)}.arrow"
        n_rows = server.buffered_rows
        table = pa.concat_tables([_to_urls_table(f) for f in server.take_buffered(n_rows)])
        with pa.OSFile(str(piece), "wb") as sink, ipc.new_file(sink, URLS) as writer:
            writer.write_table(table)
        server.pieces.append(piece)
        server.spilled_rows += n_rows


def _to_urls_table(frame: pl.DataFrame) -> pa.Table:
    return frame.select(URLS.names).to_arrow().cast(URLS)


def _read_piece(piece: Path) -> pa.Table:
    with pa.OSFile(str(piece), "rb") as source:
        return ipc.open_file(source).read_all()
