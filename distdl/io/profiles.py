"""The per-host profiles table (CSV): budgets set by hand, measured, or learned.

Columns: ``server_name, total_batches, total_urls, rate_limit, max_rate_limit, crawl_delay,
latency_ms, status, learned_at, unreachable_cause`` (why a host the last run gave up on
did not answer: DNS, refused, timeout, TLS and the certificate error, robots.txt …).
Only ``server_name`` and ``rate_limit`` are required, so a user can write a two-column
table by hand to set budgets. ``rate_limit`` is where a host starts (and what a run learned,
written back at the end, with ``learned_at``); ``max_rate_limit`` is its ceiling.

A hand-written ``server_name`` may spell its server any way a URL may (``Bücher.de``,
``2130706433:8080``): it is read as the server key of :func:`distdl.core.urls.server_key`,
so the budget applies to that server's partitions. Two rows naming one server are refused.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from distdl.core.urls import server_key
from distdl.errors import InputError
from distdl.io.atomic import atomic_write_text


@dataclass(frozen=True)
class HostProfile:
    server_name: str
    rate_limit: float
    max_rate_limit: float | None = None
    total_batches: int | None = None
    total_urls: int | None = None
    crawl_delay: float | None = None
    latency_ms: float | None = None
    status: str | None = None
    learned_at: str | None = None  # set when rate_limit was learned by a download run
    unreachable_cause: str | None = None  # why the last run gave up on the host


_ORDER = [
    "server_name",
    "total_batches",
    "total_urls",
    "rate_limit",
    "max_rate_limit",
    "crawl_delay",
    "latency_ms",
    "status",
    "learned_at",
    "unreachable_cause",
]


def _number(value: object) -> float | None:
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return None if math.isnan(number) else number


def read_profiles(path: Path) -> dict[str, HostProfile]:
    """Profiles by server name; an absent file is an empty table."""
    if not path.exists():
        return {}
    try:
        frame = pl.read_csv(path, infer_schema_length=0)  # all strings: we convert ourselves
    except Exception as exc:
        raise InputError(f"{path}: cannot read the profiles table: {exc}") from None
    missing = {"server_name", "rate_limit"} - set(frame.columns)
    if missing:
        raise InputError(
            f"{path}: the profiles table needs columns server_name and rate_limit "
            f"(missing {', '.join(sorted(missing))}; found {', '.join(frame.columns)})"
        )
    out: dict[str, HostProfile] = {}
    spelled: dict[str, str] = {}
    for row in frame.iter_rows(named=True):
        name = row["server_name"]
        try:
            profile = _profile(row)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{path}: bad row for {name!r}: {exc}") from None
        if profile.server_name in spelled:
            raise InputError(
                f"{path}: rows {spelled[profile.server_name]!r} and {name!r} both name server "
                f"{profile.server_name!r}; keep one"
            )
        spelled[profile.server_name] = str(name)
        out[profile.server_name] = profile
    return out


def _profile(row: dict[str, str | None]) -> HostProfile:
    rate = _number(row["rate_limit"])
    if rate is None or rate <= 0:
        raise ValueError(f"rate_limit must be a positive number, got {row['rate_limit']!r}")

    def optional_int(key: str) -> int | None:
        number = _number(row.get(key) or None)
        return None if number is None else int(number)

    return HostProfile(
        server_name=server_key(str(row["server_name"] or "")),
        rate_limit=rate,
        max_rate_limit=_number(row.get("max_rate_limit") or None),
        total_batches=optional_int("total_batches"),
        total_urls=optional_int("total_urls"),
        crawl_delay=_number(row.get("crawl_delay") or None),
        latency_ms=_number(row.get("latency_ms") or None),
        status=row.get("status") or None,
        learned_at=row.get("learned_at") or None,
        unreachable_cause=row.get("unreachable_cause") or None,
    )


def write_profiles(path: Path, profiles: Iterable[HostProfile]) -> None:
    rows = [asdict(p) for p in sorted(profiles, key=lambda p: p.server_name)]
    frame = pl.DataFrame(
        rows,
        schema={
            "server_name": pl.String,
            "rate_limit": pl.Float64,
            "max_rate_limit": pl.Float64,
            "total_batches": pl.Int64,
            "total_urls": pl.Int64,
            "crawl_delay": pl.Float64,
            "latency_ms": pl.Float64,
            "status": pl.String,
            "learned_at": pl.String,
            "unreachable_cause": pl.String,
        },
    ).select(_ORDER)
    buffer = io.StringIO()
    frame.write_csv(buffer, float_precision=3)
    atomic_write_text(path, buffer.getvalue())
