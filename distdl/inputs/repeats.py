"""Rows repeating an earlier row's derived uuid (same source_id and identifier key) are one image.

Within a chunk, later repeats are dropped at once. Repeats across chunks are found by the
planner's uuid hashes after a first pass; only then is the input planned again, with those
few hashes known, and here a set holding the uuids behind them (so memory grows with the
number of repeated images, not with the input) drops every occurrence after the first.
"""

from __future__ import annotations

import polars as pl

from distdl.plan.duplicates import hash_uuids


class RepeatDropper:
    def __init__(self, repeated_hashes: pl.Series | None = None) -> None:
        self._candidates = repeated_hashes
        self._seen: set[str] = set()

    def drop(self, frame: pl.DataFrame) -> tuple[pl.DataFrame, int]:
        """(the rows that are first occurrences, how many were dropped)."""
        first = frame["uuid"].is_first_distinct()
        if self._candidates is not None and len(self._candidates):
            first = first & self._first_across_chunks(frame["uuid"])
        dropped = frame.height - int(first.sum())
        return (frame.filter(first) if dropped else frame), dropped

    def _first_across_chunks(self, uuids: pl.Series) -> pl.Series:
        assert self._candidates is not None
        suspects = hash_uuids(uuids).is_in(self._candidates.implode()).arg_true().to_list()
        keep = [True] * len(uuids)
        for row in suspects:
            uuid = uuids[row]
            if uuid in self._seen:
                keep[row] = False
            else:
                self._seen.add(uuid)
        return pl.Series(keep, dtype=pl.Boolean)
