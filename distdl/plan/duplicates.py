"""Find duplicate uuids in an input of any size with bounded memory.

A first pass keeps one 64-bit hash per uuid. The hashes go to disk in 16 buckets (by their
top 4 bits), so the check at the end sorts one bucket at a time: memory is a sixteenth of
8 bytes a row (25 MB at 50M rows), never the whole input. Hashes seen twice are only
candidates (two uuids may share a hash); a second pass over the input, run only when there
are candidates, counts the actual uuids behind them. At 50M distinct uuids a false
candidate appears with probability ~1e-4, so the second pass almost only runs on inputs
that do hold duplicates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc

_SEED = 0x5EED
_BUCKET_BITS = 4
_HASHES = pa.schema([pa.field("hash", pa.uint64())])
# Cap on the candidate hashes confirmed in the second pass, which bounds its memory when an
# input holds millions of duplicates (a file concatenated with itself, say).
CONFIRM_LIMIT = 100_000
MAX_EXAMPLES = 5


def hash_uuids(uuids: pl.Series) -> pl.Series:
    return uuids.hash(seed=_SEED).rename("hash")


class UuidHashes:
    """Collects the hash of every non-empty uuid, chunk by chunk, in bucket files."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._paths = [folder / f"bucket-{b:02d}.arrow" for b in range(1 << _BUCKET_BITS)]
        self._sinks = [pa.OSFile(str(path), "wb") for path in self._paths]
        self._writers = [ipc.new_stream(sink, _HASHES) for sink in self._sinks]

    def add(self, uuids: pl.Series) -> None:
        hashes = hash_uuids(uuids).to_frame()
        bucket = (pl.col("hash") // (1 << (64 - _BUCKET_BITS))).cast(pl.UInt8).alias("bucket")
        parts = hashes.with_columns(bucket).partition_by("bucket", as_dict=True, include_key=False)
        for (bucket_id,), part in parts.items():
            self._writers[bucket_id].write_table(part.to_arrow().cast(_HASHES))

    def close(self) -> None:
        for writer, sink in zip(self._writers, self._sinks, strict=True):
            if not sink.closed:
                writer.close()
                sink.close()

    def candidates(self) -> pl.Series:
        """Sorted distinct hashes seen more than once, one bucket in memory at a time."""
        self.close()
        found = [_repeated_in(path) for path in self._paths]
        for path in self._paths:
            path.unlink(missing_ok=True)
        return pl.concat(found).rename("hash")


def _repeated_in(path: Path) -> pl.Series:
    with pa.OSFile(str(path), "rb") as source:
        table = ipc.open_stream(source).read_all()
    hashes = pl.Series("hash", table.column("hash")).sort()
    del table
    n = len(hashes)
    if n < 2:
        return pl.Series("hash", [], dtype=pl.UInt64)
    repeated = hashes.slice(1) == hashes.slice(0, n - 1)
    return hashes.slice(1).filter(repeated).unique(maintain_order=True)


@dataclass(frozen=True)
class DuplicateReport:
    """``count`` uuids appear more than once (an estimate when ``exact`` is False)."""

    count: int
    examples: tuple[str, ...]
    exact: bool

    def describe(self) -> str:
        amount = str(self.count) if self.exact else f"about {self.count}"
        shown = ", ".join(repr(u) for u in self.examples)
        return f"{amount} uuid(s) appear more than once, e.g. {shown}"


def confirm_duplicates(
    uuid_chunks: Iterable[pl.Series], candidates: pl.Series, limit: int = CONFIRM_LIMIT
) -> DuplicateReport | None:
    """Second pass: which candidate hashes are real duplicates. None when none is."""
    checked = candidates.head(limit)
    counts: pl.DataFrame | None = None
    for uuids in uuid_chunks:
        hits = uuids.filter(hash_uuids(uuids).is_in(checked.implode()))
        if len(hits) == 0:
            continue
        chunk_counts = hits.rename("uuid").to_frame().group_by("uuid", maintain_order=True).len()
        merged = chunk_counts if counts is None else pl.concat([counts, chunk_counts])
        counts = merged.group_by("uuid", maintain_order=True).agg(pl.col("len").sum())
    if counts is None:
        return None
    repeated = counts.filter(pl.col("len") > 1)["uuid"]
    if len(repeated) == 0:
        return None
    exact = len(checked) == len(candidates)
    # Beyond the cap, nearly every candidate is a real duplicate: its count is the estimate.
    count = len(repeated) if exact else len(candidates)
    return DuplicateReport(count, tuple(repeated.head(MAX_EXAMPLES).to_list()), exact)
