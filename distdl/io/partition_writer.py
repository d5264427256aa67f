"""Streaming parquet writers: bounded memory, published by rename, partitions by marker.

:class:`ParquetStreamWriter` writes one parquet file under a hidden temporary name, one row
group at a time, so memory stays bounded by the group limits whatever the partition size;
:meth:`~ParquetStreamWriter.commit` renames it into place. :class:`PartitionOutput` pairs
the successes and errors writers of one image partition and writes the ``completed``
marker only after both files are in place.

Write failures are loud. After a failed write pyarrow closes the file and a later
``close()`` returns quietly, leaving a file without a footer; so every write is checked,
the first failure puts the writer in a ``failed`` state that refuses everything after it,
a buffered row group is dropped only once it is written, and a file is published only
after its footer has been read back with the expected row count. Every ``OSError`` (no
space, quota, file too large, I/O error, permissions) becomes an
:class:`~distdl.errors.OutputWriteError` naming the file and the cause.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.parquet as pq

from distdl import schema as schemas
from distdl.errors import OutputWriteError
from distdl.io.atomic import publish, temp_path_for
from distdl.io.markers import marker_path, remove_marker, write_marker
from distdl.layout import ERRORS_FILE, SUCCESSES_FILE
from distdl.testing import faults

MiB = 1024 * 1024
DEFAULT_ROWS_PER_GROUP = 256
DEFAULT_BYTES_PER_GROUP = 32 * MiB
# Error rows are a few hundred bytes: one group per typical partition instead of dozens.
ERROR_ROWS_PER_GROUP = 16_384
_ROW_OVERHEAD_BYTES = 64  # rough cost of a row's non-blob values in the estimate


class IncompletePartitionError(RuntimeError):
    """A partition's rows do not add up to its plan: a bug, never marked done."""


def _is_blob(field: pa.Field) -> bool:
    return pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type)


@functools.lru_cache(maxsize=16)
def column_codecs(schema: pa.Schema, codec: str) -> dict[str, str]:
    """The codec of each parquet column of ``schema`` (keyed by its path: a list column's
    values are ``name.list.element``): ``codec``, except none for binary columns."""
    sink = pa.BufferOutputStream()
    pq.write_table(schema.empty_table(), sink)
    columns = pq.ParquetFile(pa.BufferReader(sink.getvalue())).schema
    blobs = {field.name for field in schema if _is_blob(field)}
    paths = [columns.column(i).path for i in range(len(columns))]
    return {path: "none" if path in blobs else codec for path in paths}


_SIZED = (bytes, str, bytearray, memoryview)  # a tuple: isinstance is slower with a union


def _value_bytes(value: object) -> int:
    return len(value) if isinstance(value, _SIZED) else 0


class ParquetStreamWriter:
    """One parquet file, written in row groups as rows arrive, visible only once committed.

    A row group is flushed when ``max_rows_per_group`` rows or ``max_bytes_per_group``
    bytes (estimated from ``bytes``/``str`` values) are buffered. Binary columns (images,
    already compressed) get neither dictionary encoding, statistics nor ``compression``:
    zstd barely shrinks JPEG bytes (only their repeated tables) and would multiply the CPU
    of writing them, in the rank that drives the decoders (figures: benchmarks/README.md).
    Used as a context manager it commits on a clean exit and aborts on an exception.
    """

    def __init__(
        self,
        path: Path,
        schema: pa.Schema,
        *,
        max_rows_per_group: int = DEFAULT_ROWS_PER_GROUP,
        max_bytes_per_group: int = DEFAULT_BYTES_PER_GROUP,
        compression: str = "zstd",
    ) -> None:
        if max_rows_per_group < 1 or max_bytes_per_group < 1:
            raise ValueError("row group bounds must be positive")
        self.path = Path(path)
        self.schema = schema
        self.max_rows_per_group = max_rows_per_group
        self.max_bytes_per_group = max_bytes_per_group
        self._compression = compression
        self._temp = temp_path_for(self.path)
        self._writer: pq.ParquetWriter | None = None
        self._names = frozenset(schema.names)
        self._required = tuple(f.name for f in schema if not f.nullable)
        self._columns: dict[str, list[object]] = {name: [] for name in schema.names}
        self._buffered_rows = 0
        self._buffered_bytes = 0
        self._written_rows = 0
        self._state = "open"
        self._failure: OutputWriteError | None = None

    @property
    def num_rows(self) -> int:
        """Rows appended so far, written or still buffered."""
        return self._written_rows + self._buffered_rows

    @property
    def temp_path(self) -> Path:
        return self._temp

    def append(self, row: Mapping[str, object]) -> None:
        """Buffer one row (missing nullable columns are null); flush a group when full."""
        self._require_open()
        if not row.keys() <= self._names:
            unknown = row.keys() - self._names
            raise ValueError(f"{self.path.name}: unknown columns {sorted(unknown)}")
        for name in self._required:
            if row.get(name) is None:
                raise ValueError(f"{self.path.name}: column {name!r} must not be null")
        size = _ROW_OVERHEAD_BYTES
        for name, column in self._columns.items():
            value = row.get(name)
            column.append(value)
            size += _value_bytes(value)
        self._buffered_rows += 1
        self._buffered_bytes += size
        if (
            self._buffered_rows >= self.max_rows_per_group
            or self._buffered_bytes >= self.max_bytes_per_group
        ):
            self.flush()

    def append_table(self, table: pa.Table) -> None:
        """Write a whole table (columns in any order) in row groups within the bounds."""
        self._require_open()
        self.flush()
        table = table.select(self.schema.names).cast(self.schema)
        if table.num_rows == 0:
            return
        average_row_bytes = max(1, table.nbytes // table.num_rows)
        by_bytes = max(1, self.max_bytes_per_group // average_row_bytes)
        group_rows = min(self.max_rows_per_group, by_bytes)
        for start in range(0, table.num_rows, group_rows):
            self._write(table.slice(start, group_rows))

    def flush(self) -> None:
        """Write the buffered rows as one row group (nothing when the buffer is empty).

        The buffer is emptied only once the group is written: a failed write keeps it.
        """
        self._require_open()
        if self._buffered_rows == 0:
            return
        self._write(pa.Table.from_pydict(self._columns, schema=self.schema))
        self._columns = {name: [] for name in self.schema.names}
        self._buffered_rows = 0
        self._buffered_bytes = 0

    def commit(self) -> int:
        """Flush, close, check the footer, then rename into place; return the row count.

        An empty file still carries the full schema. Raises OutputWriteError (and deletes
        the temporary file) when any step fails or the file does not read back whole.
        """
        try:
            self._require_open()
            self.flush()
            self._guarded("parquet.close", self._open_writer().close)
            self._verify()
            self._guarded("parquet.publish", lambda: publish(self._temp, self.path))
        except BaseException:
            self.abort()
            raise
        self._state = "committed"
        return self._written_rows

    def abort(self) -> None:
        """Drop everything written so far; the final path is left untouched."""
        if self._state in ("committed", "aborted"):
            return
        self._state = "aborted"
        if self._writer is not None:
            # The temp is deleted anyway: a close error changes nothing.
            with contextlib.suppress(Exception):
                self._writer.close()
        self._temp.unlink(missing_ok=True)
        self._columns = {name: [] for name in self.schema.names}

    def _write(self, table: pa.Table) -> None:
        def write() -> None:
            self._open_writer().write_table(table, row_group_size=max(1, table.num_rows))

        self._guarded("parquet.write", write)
        self._written_rows += table.num_rows

    def _guarded(self, point: str, action: Callable[[], object]) -> None:
        """Run one step of writing the file; its first failure fails the writer for good.

        pyarrow leaves its writer unusable after any error, so even a non-OS error (a bug)
        must not be followed by a quiet close and a publish.
        """
        try:
            faults.hit(point, self._temp)
            action()
        except OSError as exc:
            self._state = "failed"
            self._failure = OutputWriteError(self.path, exc)
            raise self._failure from exc
        except BaseException:
            self._state = "failed"
            raise

    def _verify(self) -> None:
        """Read the closed file's footer back: it must exist and count every written row."""
        try:
            rows = pq.ParquetFile(self._temp).metadata.num_rows
        except OSError as exc:
            raise OutputWriteError(self.path, exc) from exc
        except pa.ArrowException as exc:
            problem = f"the written file does not read back ({exc})"
            raise OutputWriteError(self.path, problem) from exc
        if rows != self._written_rows:
            raise OutputWriteError(
                self.path, f"its footer counts {rows} rows, {self._written_rows} were written"
            )

    def _open_writer(self) -> pq.ParquetWriter:
        if self._writer is None:
            self._temp.parent.mkdir(parents=True, exist_ok=True)
            plain = [f.name for f in self.schema if not _is_blob(f)]
            self._writer = pq.ParquetWriter(
                self._temp,
                self.schema,
                compression=column_codecs(self.schema, self._compression),
                use_dictionary=plain,
                write_statistics=plain,
            )
        return self._writer

    def _require_open(self) -> None:
        if self._failure is not None:
            raise self._failure  # the write that failed named the file and the cause
        if self._state != "open":
            raise RuntimeError(f"{self.path.name}: writer already {self._state}")

    def __enter__(self) -> ParquetStreamWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        elif self._state == "open":
            self.commit()


class PartitionOutput:
    """The successes and errors files of one image partition, then its ``completed`` marker.

    A partition is done exactly when its marker exists. :meth:`commit` removes any old
    marker, renames both files into place, reads their footers back, and only then writes
    the new marker, so a crash or a write error at any point leaves either a done partition
    with whole files or a not-done one. ``planned_rows`` is the partition's row count in the
    plan: the marker is refused unless successes + errors add up to it (None skips that
    check, for writers used on their own). Used as a context manager it aborts unless
    :meth:`commit` was called.
    """

    def __init__(
        self,
        partition_dir: Path,
        *,
        planned_rows: int | None = None,
        successes_schema: pa.Schema = schemas.SUCCESSES,
        max_rows_per_group: int = DEFAULT_ROWS_PER_GROUP,
        max_bytes_per_group: int = DEFAULT_BYTES_PER_GROUP,
    ) -> None:
        self.partition_dir = Path(partition_dir)
        self.planned_rows = planned_rows
        self.successes = ParquetStreamWriter(
            self.partition_dir / SUCCESSES_FILE,
            successes_schema,
            max_rows_per_group=max_rows_per_group,
            max_bytes_per_group=max_bytes_per_group,
        )
        self.errors = ParquetStreamWriter(
            self.partition_dir / ERRORS_FILE,
            schemas.ERRORS,
            max_rows_per_group=max(max_rows_per_group, ERROR_ROWS_PER_GROUP),
            max_bytes_per_group=max_bytes_per_group,
        )
        self._started = time.monotonic()
        self._committed = False

    def add_success(self, row: Mapping[str, object]) -> None:
        self.successes.append(row)

    def add_error(self, row: Mapping[str, object]) -> None:
        self.errors.append(row)

    def commit(self, summary: Mapping[str, object]) -> None:
        """Publish both files, then the marker holding ``summary`` plus counts, time, host.

        ``summary`` carries what only the caller knows (attempt, server name, …); the row
        counts are always the writers' own (and ``planned_rows`` when known),
        ``completed_at``/``host``/``pid``/``elapsed_s`` are filled in unless given.

        Raises OutputWriteError when a file cannot be written or does not read back, and
        IncompletePartitionError when the rows do not add up to the plan; either way no
        marker is written.
        """
        try:
            remove_marker(self.partition_dir)
        except OSError as exc:
            self.abort()
            raise OutputWriteError(marker_path(self.partition_dir), exc) from exc
        try:
            successes = self.successes.commit()
            errors = self.errors.commit()
        except BaseException:
            self.abort()
            raise
        self._check_complete(successes, errors)
        marker = {
            "completed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "elapsed_s": round(time.monotonic() - self._started, 3),
            **summary,
            "successes": successes,
            "errors": errors,
        }
        if self.planned_rows is not None:
            marker["planned_rows"] = self.planned_rows
        try:
            faults.hit("marker.write", marker_path(self.partition_dir))
            write_marker(self.partition_dir, marker)
        except OSError as exc:
            raise OutputWriteError(marker_path(self.partition_dir), exc) from exc
        self._committed = True

    def commit_settled(self) -> None:
        """Publish both files without a marker: a partition stopped by a signal keeps the
        rows it settled, and the carry-over finishes it later. Footers are checked as in
        :meth:`commit`; a failure raises OutputWriteError and publishes nothing more."""
        try:
            self.successes.commit()
            self.errors.commit()
        except BaseException:
            self.abort()
            raise
        self._committed = True

    def _check_complete(self, successes: int, errors: int) -> None:
        """The published files' own footers must count what was written, and the plan."""
        for writer, written in ((self.successes, successes), (self.errors, errors)):
            try:
                rows = pq.read_metadata(writer.path).num_rows
            except OSError as exc:
                raise OutputWriteError(writer.path, exc) from exc
            except pa.ArrowException as exc:
                raise OutputWriteError(writer.path, f"does not read back ({exc})") from exc
            if rows != written:
                raise OutputWriteError(writer.path, f"holds {rows} rows, {written} were written")
        if self.planned_rows is not None and successes + errors != self.planned_rows:
            raise IncompletePartitionError(
                f"{self.partition_dir}: {successes} successes + {errors} errors, but "
                f"{self.planned_rows} rows were planned; not marking it done"
            )

    def abort(self) -> None:
        """Delete the temporary files; committed files and markers are left as they are."""
        self.successes.abort()
        self.errors.abort()

    def __enter__(self) -> PartitionOutput:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._committed:
            self.abort()
