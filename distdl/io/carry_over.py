"""Re-downloading only the failures (``--retry-errors CODES``) without losing or doubling rows.

A partition picked for a retry loses its marker (so it is not done) but keeps its files.
When a worker takes it up again it carries the rows already settled into the new files —
every success, and every error whose code is not being retried and whose uuid did not
succeed — and fetches only the rest. The same rule makes a crash between the renames of a
commit harmless: whatever files are whole are carried over, the rest is fetched again.
A file that does not read as parquet (half-written by an older version, or damaged) is
skipped with a warning: its rows are fetched again and the next commit replaces it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distdl.io.markers import is_completed, partition_dirs, remove_marker
from distdl.io.partition_writer import PartitionOutput
from distdl.layout import ERRORS_FILE, SUCCESSES_FILE, Layout

log = logging.getLogger("distdl.worker")

_BATCH_ROWS = 256  # successes carry images: read them back a few at a time


def _readable(path: Path) -> pq.ParquetFile | None:
    """``path`` opened as parquet; None when it is missing or has no valid footer."""
    if not path.exists():
        return None
    try:
        return pq.ParquetFile(path)
    except pa.ArrowInvalid as exc:
        log.warning("%s is not a whole parquet file (%s): its rows are fetched again", path, exc)
        return None


def carry_over(directory: Path, output: PartitionOutput, retry_codes: Iterable[int]) -> set[str]:
    """Copy the settled rows of ``directory``'s committed files into ``output``; their uuids."""
    settled: set[str] = set()
    successes = _readable(directory / SUCCESSES_FILE)
    if successes is not None:
        for batch in successes.iter_batches(batch_size=_BATCH_ROWS):
            output.successes.append_table(pa.Table.from_batches([batch]))
            settled.update(batch.column("uuid").to_pylist())
    errors = _readable(directory / ERRORS_FILE)
    if errors is not None:
        table = errors.read()
        retried = pc.is_in(table["error_code"], value_set=pa.array(sorted(retry_codes), pa.int64()))
        already = pc.is_in(table["uuid"], value_set=pa.array(sorted(settled), pa.string()))
        kept = table.filter(pc.and_(pc.invert(retried), pc.invert(already)))
        output.errors.append_table(kept)
        settled.update(kept.column("uuid").to_pylist())
    return settled


def requeue_error_partitions(layout: Layout, codes: Iterable[int]) -> int:
    """Take the marker off every done partition holding an error row with one of ``codes``."""
    wanted = pa.array(sorted(set(codes)), pa.int64())
    requeued = 0
    for _, _, directory in partition_dirs(layout.images):
        if directory == layout.rejected_dir or not is_completed(directory):
            continue  # planning rejects are invalid URLs: retrying cannot change them
        table = pq.read_table(directory / ERRORS_FILE, columns=["error_code"])
        if pc.any(pc.is_in(table["error_code"], value_set=wanted)).as_py():
            remove_marker(directory)
            requeued += 1
    return requeued
