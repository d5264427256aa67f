"""Buffered rows moved to disk when the partitioner's memory budget is exceeded.

One spill writes the rows of many servers into a single Arrow IPC file, one piece per
server (file operations are slow on shared file systems; hundreds of tiny files per spill
would be slower than the spill itself). A piece is read back, by random access, when its
server's partition completes; the file is deleted once all its pieces have been read.
"""

from __future__ import annotations

import itertools
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc


@dataclass
class _SpillFile:
    path: Path
    unread_pieces: int


@dataclass(frozen=True)
class SpilledPiece:
    file: _SpillFile = field(compare=False)
    first_batch: int
    n_batches: int
    n_rows: int


class SpillStore:
    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._names = itertools.count()

    def spill(self, tables: list[pa.Table]) -> list[SpilledPiece]:
        """Write ``tables`` (one schema) to one file; a piece for each, in order."""
        self._folder.mkdir(parents=True, exist_ok=True)
        spill_file = _SpillFile(self._folder / f"{next(self._names)}.arrow", len(tables))
        schema = tables[0].schema
        pieces: list[SpilledPiece] = []
        batch_index = 0
        with pa.OSFile(str(spill_file.path), "wb") as sink, ipc.new_file(sink, schema) as writer:
            for table in tables:
                batches = (table if table.schema == schema else table.cast(schema)).to_batches()
                for batch in batches:
                    writer.write_batch(batch)
                pieces.append(SpilledPiece(spill_file, batch_index, len(batches), table.num_rows))
                batch_index += len(batches)
        return pieces

    def load(self, piece: SpilledPiece) -> pa.Table:
        """Read a piece back; it cannot be read twice."""
        with pa.OSFile(str(piece.file.path), "rb") as source:
            reader = ipc.open_file(source)
            batches = [reader.get_batch(piece.first_batch + i) for i in range(piece.n_batches)]
            table = pa.Table.from_batches(batches, schema=reader.schema)
        piece.file.unread_pieces -= 1
        if piece.file.unread_pieces == 0:
            piece.file.path.unlink()
        return table

    def close(self) -> None:
        shutil.rmtree(self._folder, ignore_errors=True)
