"""The planning rejects: rows that never reach the network, kept as error rows.

They go to ``layout.rejected_dir/errors.parquet`` (schema.ERRORS, ``retry_count`` 0) with a
``completed`` marker beside it, so one glob over the images folder finds every error row
and every input row ends up exactly once in a partition or in an errors file. The file is
written under a temporary name and renamed into place by :meth:`RejectWriter.commit`.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from distdl.io.atomic import atomic_write_bytes, publish, temp_path_for
from distdl.layout import COMPLETED_MARKER, ERRORS_FILE
from distdl.schema import ERRORS

# Rejects are rare and spread thinly over chunks: gather them into sizeable row groups.
_ROW_GROUP_ROWS = 100_000


class RejectWriter:
    def __init__(self, folder: Path) -> None:
        self._final = folder / ERRORS_FILE
        self._marker = folder / COMPLETED_MARKER
        folder.mkdir(parents=True, exist_ok=True)
        self._temp = temp_path_for(self._final)
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(self._temp, ERRORS)
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self.rows = 0

    def write(self, rows: pa.Table) -> None:
        """Add error rows (columns of schema.ERRORS)."""
        if rows.num_rows == 0:
            return
        self._pending.append(rows.select(ERRORS.names).cast(ERRORS))
        self._pending_rows += rows.num_rows
        self.rows += rows.num_rows
        if self._pending_rows >= _ROW_GROUP_ROWS:
            self._flush()

    def commit(self) -> None:
        """Close, rename into place, then mark complete."""
        self._flush()
        assert self._writer is not None
        self._writer.close()
        self._writer = None
        publish(self._temp, self._final)
        atomic_write_bytes(self._marker, b"")

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._temp.unlink(missing_ok=True)

    def _flush(self) -> None:
        if self._pending:
            assert self._writer is not None
            self._writer.write_table(pa.concat_tables(self._pending))
            self._pending = []
            self._pending_rows = 0
