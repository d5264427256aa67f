"""Reproducible samples for training sets, chosen by a seeded hash of each row's uuid.

The hash is BLAKE2b of the uuid keyed by the seed: stable across runs, versions and
snapshots, so next month's snapshot keeps this month's choice (plus new rows that rank
high enough). A first pass over the planned rows collects (label, hash) pairs; the choice is
then a hash threshold per label, applied in the planning pass:

* ``max_per_label`` keeps each label's K lowest hashes;
* ``rows`` keeps N rows: the N lowest hashes overall (the labels' distribution is kept),
  or with ``balanced`` the rows ranked first within their label, round by round, so every
  label gets as many as it can and the rest go to the larger labels.

The first pass holds 16 bytes per row (a label hash and a row hash) in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import polars as pl

from distdl.config import InputSampling

_LABEL = "__label"
_HASH = "__hash"


def row_hashes(uuids: pl.Series, seed: int) -> pl.Series:
    key = seed.to_bytes(8, "little", signed=True)
    values = [
        int.from_bytes(hashlib.blake2b(u.encode(), digest_size=8, key=key).digest(), "little")
        for u in uuids.to_list()
    ]
    return pl.Series(_HASH, values, dtype=pl.UInt64)


def _labels(frame: pl.DataFrame, sampling: InputSampling) -> pl.Series:
    if sampling.label is None:
        return pl.Series(_LABEL, [0] * frame.height, dtype=pl.UInt64)
    return frame[sampling.label].hash(seed=0).rename(_LABEL)


def thresholds(frames: Iterable[pl.DataFrame], sampling: InputSampling) -> pl.DataFrame:
    """(label, highest chosen hash) for every label with a chosen row."""
    pairs = pl.concat(
        [pl.DataFrame([_labels(f, sampling), row_hashes(f["uuid"], sampling.seed)]) for f in frames]
        or [pl.DataFrame(schema={_LABEL: pl.UInt64, _HASH: pl.UInt64})]
    )
    rank = pl.col(_HASH).rank("ordinal").over(_LABEL).alias("__rank")
    ranked = pairs.with_columns(rank)
    if sampling.max_per_label is not None:
        ranked = ranked.filter(pl.col("__rank") <= sampling.max_per_label)
    if sampling.rows is not None:
        order = ["__rank", _HASH] if sampling.balanced else [_HASH]
        ranked = ranked.sort(order).head(sampling.rows)
    return ranked.group_by(_LABEL).agg(pl.col(_HASH).max())


def chosen(frame: pl.DataFrame, sampling: InputSampling, limits: pl.DataFrame) -> pl.Series:
    """True on the rows the sample keeps."""
    keyed = pl.DataFrame([_labels(frame, sampling), row_hashes(frame["uuid"], sampling.seed)])
    limit = keyed.join(
        limits.rename({_HASH: "__limit"}), on=_LABEL, how="left", maintain_order="left"
    )
    return (limit[_HASH] <= limit["__limit"]).fill_null(False)
