"""Reading a finished plan: which partitions exist, and one partition's URLs.

pyarrow only: the downloading ranks read partitions and need not import the planner's
Polars (a few hundred milliseconds of every rank's start).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from distdl.errors import StateError
from distdl.layout import URLS_FILE, Layout
from distdl.schema import URLS

# The servers table's metadata key for the plan's batch size: it lets list_url_partitions
# size every partition without opening it.
BATCH_SIZE_KEY = b"distdl.batch_size"


def list_url_partitions(layout: Layout) -> list[tuple[str, int, int]]:
    """(server_name, partition_id, n_urls) of every partition of a non-ignored server."""
    try:
        servers = pq.read_table(layout.servers_table)
    except FileNotFoundError:
        raise StateError(f"no plan found at {layout.urls}: run the batched stage") from None
    metadata = servers.schema.metadata or {}
    batch_size = int(metadata[BATCH_SIZE_KEY]) if BATCH_SIZE_KEY in metadata else None
    partitions: list[tuple[str, int, int]] = []
    for row in servers.to_pylist():
        if row["ignored"]:
            continue
        for pid in range(row["total_batches"]):
            if batch_size is None:
                n_urls = pq.read_metadata(_partition_file(layout, row["server_name"], pid)).num_rows
            else:
                n_urls = min(batch_size, row["total_urls"] - pid * batch_size)
            partitions.append((row["server_name"], pid, n_urls))
    return partitions


def read_url_partition(layout: Layout, server_name: str, partition_id: int) -> pa.Table:
    """The planned URLs of one partition, in input order: schema.URLS, then the columns the
    input layer carries (``license_id``, ``is_license_full``, kept and occurrence columns)."""
    path = _partition_file(layout, server_name, partition_id)
    try:
        table = pq.ParquetFile(path).read()
    except FileNotFoundError:
        raise StateError(f"planned partition {path} is missing: re-plan the input") from None
    carried = [field for field in table.schema if field.name not in URLS.names]
    order = [*URLS.names, *(field.name for field in carried)]
    return table.select(order).cast(pa.schema([*URLS, *carried]))


def _partition_file(layout: Layout, server_name: str, partition_id: int) -> Path:
    return layout.url_partition_dir(server_name, partition_id) / URLS_FILE
