"""Join occurrence fields (``scientificName``, ``basisOfRecord``, …) onto image rows, streaming.

A real ``occurrence.txt`` is hundreds of GB, so neither side is ever held whole: both are
spilled to disk in buckets by a hash of the core id (Arrow IPC files in a work folder), then
each bucket's image rows are joined with that bucket's occurrence rows. Memory is one bucket
of each side: there is one bucket per :data:`TEXT_BYTES_PER_BUCKET` of the larger file
(``occurrence.txt`` or ``multimedia.txt``, uncompressed), and only the columns wanted are
spilled, so a bucket holds far less than that. Joined rows come out in chunks of at most
``CHUNK_ROWS``, grouped by bucket, in input order within a bucket. An image whose occurrence
is missing keeps null fields.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc

from distdl.errors import InputError
from distdl.inputs.mapping import KEY_COLUMN
from distdl.inputs.sources import TableSource
from distdl.plan.reader import CHUNK_ROWS

TEXT_BYTES_PER_BUCKET = 128 * 1024 * 1024
_SEED = 0x0CC


class BucketFiles:
    """Tables appended to one Arrow IPC stream per bucket."""

    def __init__(self, folder: Path, buckets: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.paths = [folder / f"bucket-{b:05d}.arrow" for b in range(buckets)]
        self._writers: dict[int, tuple[pa.OSFile, ipc.RecordBatchStreamWriter]] = {}

    def add(self, frame: pl.DataFrame, key: str) -> None:
        buckets = (frame[key].hash(seed=_SEED) % len(self.paths)).alias("__bucket")
        parts = frame.with_columns(buckets).partition_by(
            "__bucket", as_dict=True, include_key=False
        )
        for (bucket,), part in parts.items():
            table = part.to_arrow()
            if bucket not in self._writers:
                sink = pa.OSFile(str(self.paths[bucket]), "wb")
                self._writers[bucket] = (sink, ipc.new_stream(sink, table.schema))
            self._writers[bucket][1].write_table(table)

    def close(self) -> None:
        for sink, writer in self._writers.values():
            writer.close()
            sink.close()
        self._writers.clear()

    def read(self, bucket: int) -> pl.DataFrame | None:
        path = self.paths[bucket]
        if not path.exists():
            return None
        with pa.OSFile(str(path), "rb") as source:
            frame = pl.from_arrow(ipc.open_stream(source).read_all())
        assert isinstance(frame, pl.DataFrame)
        return frame


def core_fields_available(core: TableSource, fields: list[str]) -> None:
    missing = [name for name in fields if name not in core.names]
    if missing:
        raise InputError(
            f"{core.where}: input_occurrence_fields names {', '.join(missing)}, which the "
            f"occurrence core does not have; it has: {', '.join(core.names)}"
        )


def join_occurrences(
    images: Iterator[pl.DataFrame],
    core: TableSource,
    fields: list[str],
    folder: Path,
    text_bytes: int,
) -> Iterator[pl.DataFrame]:
    """Image rows (with the ``__key`` column) plus ``fields`` from the core, bucket by bucket."""
    if core.key is None:
        raise InputError(f"{core.where}: meta.xml declares no <id> for the core: cannot join")
    core_fields_available(core, fields)
    buckets = max(1, -(-text_bytes // TEXT_BYTES_PER_BUCKET))
    image_buckets = BucketFiles(folder / "images", buckets)
    core_buckets = BucketFiles(folder / "core", buckets)
    try:
        for frame in images:
            image_buckets.add(frame, KEY_COLUMN)
        image_buckets.close()
        wanted = list(dict.fromkeys([core.key, *fields]))
        for table in core.read(wanted):
            occurrences = pl.from_arrow(table)
            assert isinstance(occurrences, pl.DataFrame)
            # The key may be a wanted field too (occurrenceID in older archives).
            keyed = occurrences.select(pl.col(core.key).alias(KEY_COLUMN), *map(pl.col, fields))
            core_buckets.add(keyed, KEY_COLUMN)
        core_buckets.close()
        for bucket in range(buckets):
            for joined in _joined_bucket(image_buckets, core_buckets, bucket, fields):
                yield from joined.iter_slices(CHUNK_ROWS)
    finally:
        image_buckets.close()
        core_buckets.close()
        shutil.rmtree(folder, ignore_errors=True)


def _joined_bucket(
    images: BucketFiles, core: BucketFiles, bucket: int, fields: list[str]
) -> Iterator[pl.DataFrame]:
    rows = images.read(bucket)
    if rows is None:
        return
    occurrences = core.read(bucket)
    if occurrences is None:
        occurrences = pl.DataFrame(
            schema={KEY_COLUMN: pl.String, **dict.fromkeys(fields, pl.String)}
        )
    occurrences = occurrences.unique(subset=KEY_COLUMN, keep="first", maintain_order=True)
    clashing = [name for name in fields if name in rows.columns]
    if clashing:
        rows = rows.drop(clashing)  # the occurrence's value wins over a carried column
    yield rows.join(occurrences, on=KEY_COLUMN, how="left", maintain_order="left")
