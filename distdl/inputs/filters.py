"""Row filters applied while planning, each with the reason it is tallied under.

A rule sees a mapped chunk (distdl columns, ``license_id`` and the ``__`` helper columns)
and says where it drops rows. Values match case-insensitively, with ``*`` and ``?`` globs
(``image/*``, ``*.inaturalist.org``). A row with no type or format is kept by those filters
(GBIF leaves them empty on many still images); a missing value never matches any other
allow-list. Rules on occurrence fields (basisOfRecord, datasetKey) run after the join.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from distdl.config import InputFilters
from distdl.errors import InputError

Rule = Callable[[pl.DataFrame], pl.Series]  # True where the rule drops the row
# Filters whose column lives in the occurrence core: their rows are joined first.
CORE_ROLES = {"basis_of_record": "basisOfRecord", "dataset": "datasetKey"}


@dataclass(frozen=True)
class Filter:
    reason: str
    drops: Rule


def _pattern(patterns: list[str]) -> str:
    # fnmatch.translate gives "(?s:...)\Z"; the regex engine wants the inner part.
    inner = [
        fnmatch.translate(p.lower()).removeprefix("(?s:").removesuffix(r")\Z") for p in patterns
    ]
    return "^(?s:" + "|".join(inner) + ")$"


def _matches(column: pl.Series, patterns: list[str]) -> pl.Series:
    if not patterns:
        return column.str.len_bytes() < 0  # matches nothing; null stays null
    return column.str.to_lowercase().str.contains(_pattern(patterns))


def _column(frame: pl.DataFrame, role: str) -> pl.Series:
    if role == "license":
        return frame["license_id"]
    if role == "host":
        return frame["identifier"].str.extract(
            r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?([^:/?#]+)", 1
        )
    name = "__" + role
    if name not in frame.columns:
        raise InputError(f"input_filters: the input has no {role} column to filter on")
    return frame[name]


def _allow(role: str, patterns: list[str], keep_missing: bool) -> Rule:
    return lambda frame: ~_matches(_column(frame, role), patterns).fill_null(keep_missing)


def _deny(role: str, patterns: list[str]) -> Rule:
    return lambda frame: _matches(_column(frame, role), patterns).fill_null(False)


def _references_only(frame: pl.DataFrame) -> pl.Series:
    no_identifier = (frame["identifier"].str.strip_chars().str.len_bytes() == 0).fill_null(True)
    if "__references" not in frame.columns:
        return pl.Series([False] * frame.height, dtype=pl.Boolean)
    has_page = (frame["__references"].str.strip_chars().str.len_bytes() > 0).fill_null(False)
    return no_identifier & has_page


def build_filters(
    configured: InputFilters, defaults: dict[str, list[str]]
) -> tuple[list[Filter], list[Filter]]:
    """(rules on the image rows, rules on joined occurrence fields), in tally order."""

    def value(key: str) -> list[str] | None:
        given = getattr(configured, key)
        return given if given is not None else defaults.get(key)

    rows: list[Filter] = [Filter("references_only", _references_only)]
    core: list[Filter] = []
    if (types := value("types")) is not None:
        rows.append(Filter("type", _allow("type", types, keep_missing=True)))
    if (formats := value("formats")) is not None:
        rows.append(Filter("format", _allow("format", formats, keep_missing=True)))
    if (licenses := value("licenses")) is not None:
        rows.append(Filter("license", _allow("license", licenses, keep_missing=False)))
    for reason, role, target in (
        ("publisher", "publisher", rows),
        ("host", "host", rows),
        ("dataset", "dataset", core),
    ):
        if (included := value(f"include_{role}s")) is not None:
            target.append(Filter(reason, _allow(role, included, keep_missing=False)))
        if (excluded := value(f"exclude_{role}s")) is not None:
            target.append(Filter(reason, _deny(role, excluded)))
    if (basis := value("basis_of_record")) is not None:
        core.append(Filter("basis_of_record", _allow("basis_of_record", basis, keep_missing=False)))
    return rows, core


def describe_filters(configured: InputFilters, defaults: dict[str, list[str]]) -> dict[str, object]:
    """The filters in force, for filtered.json and DATASET.md."""
    applied: dict[str, object] = dict(defaults)
    applied.update({k: v for k, v in configured.model_dump().items() if v is not None})
    return applied


def apply_filters(
    frame: pl.DataFrame, filters: list[Filter], counts: Callable[[str, int], None]
) -> pl.DataFrame:
    """The rows no rule drops; each dropped row is counted under the first rule dropping it."""
    for rule in filters:
        if frame.height == 0:
            break
        drops = rule.drops(frame)
        dropped = int(drops.sum())
        if dropped:
            counts(rule.reason, dropped)
            frame = frame.filter(~drops)
    return frame
