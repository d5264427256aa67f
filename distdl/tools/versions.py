"""Dataset versions: the download itself, and each tool's output under ``{tools_folder}/<name>/``.

A version is a set of partitions (``server_name=<safe>/partition_id=<n>``, the download's
own keys) whose rows have the successes schema. Tools never copy what they do not change:

* the **download** version reads ``{images_folder}/…/successes.parquet`` of every partition
  with a ``completed`` marker;
* an **images** version (``resize``) holds its own ``successes.parquet`` per partition;
* a **selection** version (``size_based``, ``duplication_based``, ``image_verification``)
  holds only ``selection.parquet`` (the kept uuids) per partition and reads its rows through
  its input version, so a filter over terabytes of images writes megabytes.

Partition keys are folder names: ``server_name`` is the percent-encoded name of the server
folder (see :func:`distdl.core.urls.safe_dir_name`), exactly as on disk.
A version's *fingerprint* changes whenever the rows it would give change (a partition
downloaded or redone, a tool version rebuilt), which is how stale results are recognised.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distdl.io.markers import partition_dirs
from distdl.layout import COMPLETED_MARKER, REJECTED_SERVER_DIR, SUCCESSES_FILE, Layout
from distdl.schema import SUCCESSES

DOWNLOAD = "download"  # the name of the download as an input version
SELECTION_FILE = "selection.parquet"
REMOVED_FILE = "removed.parquet"
OutputKind = Literal["selection", "images"]
KEY_COLUMNS = ("server_name", "partition_id")


@dataclass(frozen=True, order=True)
class PartitionRef:
    server_name: str  # the server folder's name (percent-encoded), as on disk
    partition_id: int

    @property
    def subpath(self) -> Path:
        return Path(f"server_name={self.server_name}") / f"partition_id={self.partition_id}"


class DatasetVersion(Protocol):
    name: str

    def partitions(self) -> list[PartitionRef]: ...

    def read(self, ref: PartitionRef, columns: Sequence[str] | None = None) -> pa.Table:
        """One partition's rows (``columns`` of the successes schema; None: all)."""
        ...

    def scan(self, columns: Sequence[str]) -> pl.LazyFrame:
        """Every row's ``columns`` plus ``server_name`` and ``partition_id``, lazily."""
        ...

    def fingerprint(self) -> str: ...


def _scan_files(files: dict[PartitionRef, Path], columns: Sequence[str]) -> pl.LazyFrame:
    """``columns`` of one parquet file per partition, tagged with the partition's key."""
    wanted = list(dict.fromkeys(columns))
    if not files:
        empty = pl.from_arrow(SUCCESSES.empty_table().select(wanted))
        assert isinstance(empty, pl.DataFrame)
        return empty.lazy().with_columns(
            pl.lit(None, pl.String).alias("server_name"),
            pl.lit(None, pl.Int64).alias("partition_id"),
        )
    paths = [os.fspath(path) for path in files.values()]
    keys = pl.LazyFrame(
        {
            "_file": paths,
            "server_name": [ref.server_name for ref in files],
            "partition_id": [ref.partition_id for ref in files],
        },
        schema={"_file": pl.String, "server_name": pl.String, "partition_id": pl.Int64},
    )
    scanned = pl.scan_parquet(paths, include_file_paths="_file")
    return scanned.select([*wanted, "_file"]).join(keys, on="_file").drop("_file")


def digest(parts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


class DownloadVersion:
    """The download: every completed partition's successes."""

    name = DOWNLOAD

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def _files(self) -> dict[PartitionRef, Path]:
        files = {}
        for server, partition_id, folder in partition_dirs(self.layout.images):
            path = folder / SUCCESSES_FILE
            done = (folder / COMPLETED_MARKER).is_file()
            if server != REJECTED_SERVER_DIR and done and path.is_file():
                files[PartitionRef(server, partition_id)] = path
        return dict(sorted(files.items()))

    def partitions(self) -> list[PartitionRef]:
        return list(self._files())

    def read(self, ref: PartitionRef, columns: Sequence[str] | None = None) -> pa.Table:
        path = self.layout.images / ref.subpath / SUCCESSES_FILE
        return pq.read_table(path, columns=list(columns) if columns is not None else None)

    def scan(self, columns: Sequence[str]) -> pl.LazyFrame:
        return _scan_files(self._files(), columns)

    def fingerprint(self) -> str:
        """Changes when a partition is added, redone or removed (its marker and file change)."""
        parts = []
        for ref, path in self._files().items():
            marker = (path.parent / COMPLETED_MARKER).read_bytes()
            parts.append(
                f"{ref.subpath}|{path.stat().st_size}|{hashlib.sha256(marker).hexdigest()}"
            )
        return digest(parts)


class ToolVersion:
    """A finished tool's output, read through its input when it is a selection."""

    def __init__(
        self, name: str, root: Path, kind: OutputKind, source: DatasetVersion, identity: str
    ) -> None:
        self.name = name
        self.root = root
        self.kind = kind
        self.source = source
        self._identity = identity  # version.json and the verified marker, as written

    def _files(self) -> dict[PartitionRef, Path]:
        own = SELECTION_FILE if self.kind == "selection" else SUCCESSES_FILE
        files = {}
        for server, partition_id, folder in partition_dirs(self.root):
            if (folder / COMPLETED_MARKER).is_file() and (folder / own).is_file():
                files[PartitionRef(server, partition_id)] = folder / own
        return dict(sorted(files.items()))

    def partitions(self) -> list[PartitionRef]:
        return list(self._files())

    def read(self, ref: PartitionRef, columns: Sequence[str] | None = None) -> pa.Table:
        folder = self.root / ref.subpath
        if self.kind == "images":
            return pq.read_table(folder / SUCCESSES_FILE, columns=_listed(columns))
        kept = pq.read_table(folder / SELECTION_FILE, columns=["uuid"]).column("uuid")
        wanted = None if columns is None else list(dict.fromkeys([*columns, "uuid"]))
        rows = self.source.read(ref, wanted)
        rows = rows.filter(pc.is_in(rows.column("uuid"), value_set=kept))
        return rows if columns is None else rows.select(list(columns))

    def scan(self, columns: Sequence[str]) -> pl.LazyFrame:
        if self.kind == "images":
            return _scan_files(self._files(), columns)
        kept = _scan_files(self._files(), ["uuid"])
        rows = self.source.scan(list(dict.fromkeys([*columns, "uuid"])))
        joined = rows.join(kept, on=["uuid", *KEY_COLUMNS], how="semi")
        return joined.select([*dict.fromkeys(columns), *KEY_COLUMNS])

    def fingerprint(self) -> str:
        return self._identity


def _listed(columns: Sequence[str] | None) -> list[str] | None:
    return list(columns) if columns is not None else None
