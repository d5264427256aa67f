"""The ignored-servers table: servers the user does not want downloaded (yet).

A CSV with a ``server_name`` column (the original tool wrote ``ServerName``; both are
accepted). Each name is read as ``host`` or ``host:port`` and turned into the server key of
:func:`distdl.core.urls.server_key`, so ``Bücher.de`` ignores the URLs of
``xn--bcher-kva.de`` and ``2130706433`` those of ``127.0.0.1``. Ignored servers are still
planned, so un-ignoring one needs no re-plan; they are only flagged in the servers table
and left out of scheduling.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from distdl.core.urls import server_key
from distdl.errors import InputError

ACCEPTED_COLUMNS = ("server_name", "ServerName")


def read_ignored_servers(path: Path) -> frozenset[str]:
    """Server keys to ignore; empty when no file. A name that is no server is an InputError."""
    if not path.exists():
        return frozenset()
    try:
        table = pl.read_csv(path, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(f"{path}: cannot read the ignored-servers table: {exc}") from None
    column = next((c for c in ACCEPTED_COLUMNS if c in table.columns), None)
    if column is None:
        found = ", ".join(table.columns) or "(none)"
        raise InputError(
            f"{path}: the ignored-servers table needs a 'server_name' (or 'ServerName') "
            f"column; columns found: {found}"
        )
    names = table[column].drop_nulls().str.strip_chars()
    return frozenset(_key(path, name) for name in names.to_list() if name)


def _key(path: Path, name: str) -> str:
    try:
        return server_key(name)
    except ValueError as exc:
        raise InputError(f"{path}: in the ignored-servers table, {exc}") from None
