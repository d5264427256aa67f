"""The uuids an earlier output already stored, so a new snapshot fetches only new images.

Only their 64-bit hashes are held (8 bytes per stored image: 200 MB for 25M images). Two
distinct uuids sharing a hash is a ~1e-5 chance at 25M x 25M rows; such a row would be
skipped as if stored. Error rows of the earlier output are not skipped: they are retried.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from distdl.errors import InputError
from distdl.plan.duplicates import hash_uuids

_SUCCESSES_GLOB = "**/successes.parquet"


def stored_uuid_hashes(previous_output: Path) -> pl.Series:
    """Sorted hashes of every uuid in the earlier output's successes files."""
    if not previous_output.is_dir():
        raise InputError(f"previous_output: {previous_output} is not a folder")
    parts = [
        hash_uuids(pl.Series("uuid", pq.read_table(path, columns=["uuid"]).column("uuid")))
        for path in sorted(previous_output.glob(_SUCCESSES_GLOB))
    ]
    if not parts:
        raise InputError(f"previous_output: no successes.parquet under {previous_output}")
    return pl.concat(parts).unique().sort()


class PreviousOutput:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._hashes = stored_uuid_hashes(folder)

    def drop(self, frame: pl.DataFrame) -> tuple[pl.DataFrame, int]:
        stored = hash_uuids(frame["uuid"]).is_in(self._hashes.implode())
        dropped = int(stored.sum())
        return (frame.filter(~stored) if dropped else frame), dropped
