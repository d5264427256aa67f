"""Arrow schemas of every table distdl writes: the single source of truth.

An empty table is written with the same schema as a full one, so readers never have to
guess types from data.
"""

from __future__ import annotations

import pyarrow as pa

# One planned URL, as stored in {urls_folder}/server_name=<safe>/partition_id=<n>/urls.parquet
URLS = pa.schema(
    [
        pa.field("uuid", pa.string(), nullable=False),
        pa.field("identifier", pa.string(), nullable=False),
        pa.field("source_id", pa.string()),
        pa.field("license", pa.string()),
        pa.field("source", pa.string()),
        pa.field("title", pa.string()),
        pa.field("server_name", pa.string(), nullable=False),
    ]
)

SUCCESSES = pa.schema(
    [
        pa.field("uuid", pa.string(), nullable=False),
        pa.field("source_id", pa.string()),
        pa.field("identifier", pa.string(), nullable=False),
        pa.field("is_license_full", pa.bool_()),
        pa.field("license", pa.string()),
        pa.field("source", pa.string()),
        pa.field("title", pa.string()),
        pa.field("original_size", pa.list_(pa.int64())),  # [height, width]
        pa.field("resized_size", pa.list_(pa.int64())),  # [height, width]
        pa.field("hashsum_original", pa.string()),  # MD5 hex of the downloaded bytes
        pa.field("hashsum_resized", pa.string()),  # MD5 hex of the stored image bytes
        pa.field("image", pa.binary()),
    ]
)

ERRORS = pa.schema(
    [
        pa.field("uuid", pa.string(), nullable=False),
        pa.field("identifier", pa.string()),
        pa.field("retry_count", pa.int64(), nullable=False),
        pa.field("error_code", pa.int64(), nullable=False),  # HTTP status or distdl.core.codes
        pa.field("error_msg", pa.string()),
    ]
)


def successes_schema(urls: pa.Schema) -> pa.Schema:
    """SUCCESSES, then the columns a partition's planned URLs carry beyond schema.URLS
    (``license_id``, kept input columns, occurrence fields: see distdl.inputs)."""
    carried = [f for f in urls if f.name not in URLS.names and f.name not in SUCCESSES.names]
    return pa.schema([*SUCCESSES, *carried])


OPTIONAL_INPUT_COLUMNS = ("license", "source", "title")
REQUIRED_INPUT_COLUMNS = ("uuid", "identifier", "source_id")
