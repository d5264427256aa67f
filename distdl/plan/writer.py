"""Parquet files written on a background thread, overlapping the planner's other work.

Arrow releases the GIL while encoding and compressing, so on two cores the main thread
parses and classifies the next chunk meanwhile. The queue is bounded in bytes, and a write
failure surfaces at the next :meth:`BackgroundParquetWriter.submit` or at ``close``.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

MAX_QUEUED_BYTES = 64 * 1024 * 1024


def write_urls_parquet(table: pa.Table, path: Path) -> None:
    # Dictionaries only pay off on low-cardinality columns; statistics are never used.
    pq.write_table(
        table,
        path,
        compression="zstd",
        use_dictionary=["server_name", "license", "title"],
        write_statistics=False,
    )


class BackgroundParquetWriter:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plan-writer")
        self._queued: deque[tuple[Future[None], int]] = deque()
        self._queued_bytes = 0

    def submit(self, table: pa.Table, path: Path) -> None:
        while self._queued and self._queued_bytes + table.nbytes > MAX_QUEUED_BYTES:
            self._wait_oldest(raise_errors=True)
        self._queued.append((self._pool.submit(write_urls_parquet, table, path), table.nbytes))
        self._queued_bytes += table.nbytes

    def close(self, raise_errors: bool = True) -> None:
        """Wait for every queued write; raise the first failure unless told not to."""
        try:
            while self._queued:
                self._wait_oldest(raise_errors)
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _wait_oldest(self, raise_errors: bool) -> None:
        future, size = self._queued.popleft()
        self._queued_bytes -= size
        if raise_errors:
            future.result()
        else:
            future.exception()
