"""Exports: a dataset version materialised for training code (WebDataset, Hugging Face).

Both read the version partition by partition (through its selection when it has one) and
write into a hidden temporary folder that is renamed to the destination at the end: the
destination exists only once the export is whole.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa

from distdl.config import load_config
from distdl.errors import ToolError
from distdl.io.atomic import fsync_dir, temp_path_for
from distdl.io.lock import OutputLock
from distdl.layout import Layout
from distdl.tools.versions import DatasetVersion

FORMATS = ("webdataset", "huggingface")
BATCH_ROWS = 256  # rows read at once: bounds memory by a few hundred stored images


def export_version(
    config_path: str | os.PathLike[str],
    version: str,
    to: str | os.PathLike[str],
    fmt: str = "webdataset",
    shard_size: int = 10_000,
) -> str:
    """Write ``version`` (``"download"`` or a tool version) to the new folder ``to``."""
    from distdl.tools.exports.huggingface import write_huggingface
    from distdl.tools.exports.webdataset import write_webdataset
    from distdl.tools.pipeline import open_version

    if fmt not in FORMATS:
        raise ToolError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
    config = load_config(config_path)
    layout = Layout.from_config(config)
    destination = Path(to).resolve()
    if destination.exists():
        raise ToolError(f"{destination} exists already: export into a new folder")
    with OutputLock(layout.root, f"distdl export {config_path} {version}"):
        source = open_version(layout, version)
        temp = temp_path_for(destination)
        temp.mkdir(parents=True)
        try:
            writer = write_webdataset if fmt == "webdataset" else write_huggingface
            count = writer(source, temp, shard_size)
            os.replace(temp, destination)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        fsync_dir(destination.parent)
    return f"{version}: {count} rows exported as {fmt} to {destination}"


def batches(source: DatasetVersion) -> Iterator[pa.Table]:
    """Every row of ``source`` with its ``server_name`` (the real name, not the folder's)
    and ``partition_id``, a partition at a time, in at most BATCH_ROWS rows per table."""
    for ref in source.partitions():
        table = source.read(ref)
        server = unquote(ref.server_name)  # folder names percent-encode (safe_dir_name)
        table = table.append_column("server_name", pa.array([server] * table.num_rows, pa.string()))
        table = table.append_column(
            "partition_id", pa.array([ref.partition_id] * table.num_rows, pa.int64())
        )
        for start in range(0, table.num_rows, BATCH_ROWS):
            yield table.slice(start, BATCH_ROWS)
