"""One chunk of input rows split into rows to plan and error rows.

A row is rejected, as an error row, when its identifier is not a fetchable URL (the code
of :func:`~distdl.core.urls.classify_url`), when its host is too long to be a folder name
(a real DNS name never is), or when its uuid is empty. Nothing is ever dropped silently.
"""

from __future__ import annotations

import polars as pl

from distdl.core import codes
from distdl.layout import partition_subpath
from distdl.plan.classify import classify_identifiers
from distdl.plan.duplicates import UuidHashes

_NAME_MAX = 255  # bytes in one path component on every common file system
# safe_dir_name turns a byte into at most 3 characters: shorter hosts always fit.
_ALWAYS_FITS = (_NAME_MAX - len("server_name=")) // 3
HOST_TOO_LONG_MSG = "host name too long to be stored as a folder name"
MISSING_UUID_MSG = codes.describe(codes.MISSING_UUID)

_Reasons = tuple[pl.Series, pl.Series, pl.Series]  # rows, error codes, error messages


def split_chunk(frame: pl.DataFrame, hashes: UuidHashes) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the chunk with a ``server_name`` column, null on rejected rows; the error rows).

    Rejected rows stay in the first frame (the partitioner skips a null server) because
    filtering a whole chunk costs more than the rare rejects are worth. Non-empty uuids
    are handed to ``hashes`` for the duplicate check.
    """
    verdicts = classify_identifiers(frame["identifier"])
    uuid_given = has_uuid(frame["uuid"])
    hashes.add(frame["uuid"].filter(uuid_given))
    server_name = verdicts.server_name
    reasons: list[_Reasons] = [(verdicts.rejected_rows, verdicts.error_code, verdicts.error_msg)]
    rules = (
        (_unstorable(server_name), codes.INVALID_URL, HOST_TOO_LONG_MSG),
        (~uuid_given, codes.MISSING_UUID, MISSING_UUID_MSG),
    )
    for applies, code, message in rules:
        rows = (server_name.is_not_null() & applies).arg_true()
        if len(rows):
            server_name = server_name.clone().scatter(rows, None)
            reasons.append((rows, _repeat(code, len(rows)), _repeat(message, len(rows))))
    planned = frame.with_columns(identifier=verdicts.url, server_name=server_name)
    return planned, _error_rows(frame, reasons)


def has_uuid(uuids: pl.Series) -> pl.Series:
    """False for a null, empty or all-whitespace uuid."""
    return (uuids.str.strip_chars().str.len_bytes() > 0).fill_null(False)


def _unstorable(server_name: pl.Series) -> pl.Series:
    long_names = server_name.filter(server_name.str.len_bytes() > _ALWAYS_FITS).unique()
    too_long = [name for name in long_names.to_list() if not _fits(name)]
    return server_name.is_in(pl.Series(too_long, dtype=pl.String).implode()).fill_null(False)


def _fits(server_name: str) -> bool:
    folder = partition_subpath(server_name, 0).parts[0]
    return len(folder.encode("utf-8")) <= _NAME_MAX


def _repeat(value: int | str, n: int) -> pl.Series:
    return pl.Series([value] * n, dtype=pl.Int64 if isinstance(value, int) else pl.String)


def _error_rows(frame: pl.DataFrame, reasons: list[_Reasons]) -> pl.DataFrame:
    """Error rows (schema.ERRORS columns), in input order."""
    why = pl.DataFrame(
        {
            "row": pl.concat([rows.cast(pl.UInt32) for rows, _, _ in reasons]),
            "error_code": pl.concat([code for _, code, _ in reasons]),
            "error_msg": pl.concat([message for _, _, message in reasons]),
        }
    ).sort("row")
    rows = why["row"]
    return pl.DataFrame(
        {
            "uuid": frame["uuid"].gather(rows).fill_null(""),
            "identifier": frame["identifier"].gather(rows),
            "retry_count": _repeat(0, len(rows)),
            "error_code": why["error_code"],
            "error_msg": why["error_msg"],
        }
    )
