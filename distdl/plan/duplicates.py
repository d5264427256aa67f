"""Find duplicate uuids in an input of any size with bounded memory.

A first pass keeps one 64-bit hash per uuid (8 bytes a row, 400 MB for 50M rows), sorts
them and keeps the hashes seen twice. Those are only candidates: two different uuids may
share a hash. A second pass over the input, run only when there are candidates, counts the
actual uuids behind them. At 50M distinct uuids a false candidate appears with probability
~1e-4, so the second pass almost only runs on inputs that do hold duplicates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

_SEED = 0x5EED
# Cap on the candidate hashes confirmed in the second pass, which bounds its memory when an
# input holds millions of duplicates (a file concatenated with itself, say).
CONFIRM_LIMIT = 100_000
MAX_EXAMPLES = 5


def hash_uuids(uuids: pl.Series) -> pl.Series:
    return uuids.hash(seed=_SEED)


class UuidHashes:
    """Collects the hash of every non-empty uuid, chunk by chunk."""

    def __init__(self) -> None:
        self._parts: list[pl.Series] = []

    def add(self, uuids: pl.Series) -> None:
        self._parts.append(hash_uuids(uuids))

    def candidates(self) -> pl.Series:
        """Sorted distinct hashes seen more than once. Frees the collected hashes."""
        if not self._parts:
            return pl.Series("hash", [], dtype=pl.UInt64)
        hashes = pl.concat(self._parts, rechunk=False).sort()
        self._parts = []
        n = len(hashes)
        repeated = hashes.slice(1) == hashes.slice(0, n - 1)
        return hashes.slice(1).filter(repeated).unique(maintain_order=True).rename("hash")


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
