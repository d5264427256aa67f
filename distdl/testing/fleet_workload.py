"""Fleets and URL lists shaped like GBIF, for benchmarks and ``distdl demo``.

GBIF-like means skewed: a few hosts hold most URLs and tolerate the most traffic, a long
tail holds a handful each. :func:`make_zipf_fleet` gives host ``k`` (1-based rank) a rate
limit of about ``limits[1] * k ** -s``, ``s`` chosen so the last host lands on
``limits[0]``; :func:`zipf_rows` splits a row budget in proportion to ``k ** -exponent``.
"""

from __future__ import annotations

import csv
import math
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from distdl.testing.fleet_spec import HostMode, HostSpec

if TYPE_CHECKING:  # fleet.py re-exports this module's functions
    from distdl.testing.fleet import Fleet

URL_LIST_COLUMNS = ("uuid", "identifier", "source_id", "license", "source", "title")
LICENSES = (
    "http://creativecommons.org/licenses/by/4.0/",
    "http://creativecommons.org/licenses/by-nc/4.0/",
    "http://creativecommons.org/publicdomain/zero/1.0/",
    "All rights reserved",
)
# Identifiers distdl must turn into error rows without touching the network.
BAD_IDENTIFIERS = (
    "",
    "not a url",
    "ftp://127.0.0.1/image.jpeg",
    "http://",
    "http://127.0.0.1:99999/image.jpeg",
    "javascript:alert(1)",
)
# A modest mix of everything that goes wrong on real servers, for benchmarks and the demo.
REALISTIC = HostSpec(
    name="template",
    retry_after=1.0,
    latency=0.02,
    latency_jitter=0.01,
    error_rate_5xx=0.01,
    reset_rate=0.002,
    truncate_rate=0.002,
    not_found_rate=0.02,
    not_image_rate=0.002,
    corrupt_rate=0.002,
    opt_out_rate=0.005,
    redirect_rate=0.02,
)


def make_zipf_fleet(
    n_hosts: int,
    *,
    seed: int = 0,
    limits: tuple[float, float] = (2.0, 60.0),
    template: HostSpec = REALISTIC,
    black_holes: int = 0,
    refused: int = 0,
    prefix: str = "host",
) -> list[HostSpec]:
    """``n_hosts`` specs, biggest first, copying ``template`` but for name, limit and mode.

    Limits get +-20 % noise (seeded). ``black_holes`` and ``refused`` hosts are drawn from
    all but the biggest host.
    """
    low, high = limits
    if n_hosts < 1 or not 0 < low <= high:
        raise ValueError("need n_hosts >= 1 and 0 < limits[0] <= limits[1]")
    if black_holes + refused > n_hosts - 1:
        raise ValueError("black_holes + refused must leave the biggest host normal")
    rng = random.Random(seed)
    slope = math.log(high / low) / math.log(n_hosts) if n_hosts > 1 else 0.0
    special = rng.sample(range(1, n_hosts), black_holes + refused)
    modes: dict[int, HostMode] = dict.fromkeys(special[:black_holes], "black_hole")
    modes.update(dict.fromkeys(special[black_holes:], "refused"))
    width = len(str(n_hosts - 1))
    hosts = []
    for index in range(n_hosts):
        limit = max(low, high * (index + 1) ** -slope) * rng.uniform(0.8, 1.2)
        hosts.append(
            replace(
                template,
                name=f"{prefix}-{index:0{width}d}",
                rate_limit=round(limit, 2),
                mode=modes.get(index, "normal"),
            )
        )
    return hosts


def zipf_rows(
    host_names: Sequence[str], total_rows: int, *, exponent: float = 1.0, min_rows: int = 1
) -> dict[str, int]:
    """Split ``total_rows`` over hosts (in rank order) in proportion to ``rank ** -exponent``,
    each getting at least ``min_rows``; the counts add up to ``total_rows`` exactly."""
    count = len(host_names)
    spare = total_rows - min_rows * count
    if count == 0 or spare < 0:
        raise ValueError(f"{total_rows} rows cannot give {count} hosts {min_rows} each")
    weights = [(rank + 1) ** -exponent for rank in range(count)]
    scale = spare / sum(weights)
    shares = [weight * scale for weight in weights]
    rows = [min_rows + int(share) for share in shares]
    by_remainder = sorted(range(count), key=lambda i: shares[i] - int(shares[i]), reverse=True)
    for index in by_remainder[: total_rows - sum(rows)]:
        rows[index] += 1
    return dict(zip(host_names, rows, strict=True))


def write_url_list(
    fleet: Fleet,
    path: str | Path,
    rows_per_host: Mapping[str, int] | int,
    *,
    fmt: Literal["csv", "tsv", "parquet"] = "csv",
    formats: Sequence[str] = ("jpeg",),
    sizes: Sequence[tuple[int, int]] = ((640, 480),),
    bad_rows: int = 0,
    seed: int = 0,
) -> int:
    """Write a shuffled URL list for a started ``fleet`` and return its row count.

    Columns: ``uuid, identifier, source_id, license, source, title``. Host ``h`` gets
    image ids ``0 .. rows_per_host[h] - 1``, each with a format and size drawn (seeded) from
    ``formats`` and ``sizes``; ``bad_rows`` more rows cycle through :data:`BAD_IDENTIFIERS`.
    """
    if fmt not in ("csv", "tsv", "parquet"):
        raise ValueError(f"fmt must be csv, tsv or parquet, not {fmt!r}")
    rng = random.Random(seed)
    counts = (
        dict.fromkeys(fleet.host_names, rows_per_host)
        if isinstance(rows_per_host, int)
        else dict(rows_per_host)
    )
    rows: list[dict[str, str]] = []
    for host, count in counts.items():
        for image_id in range(count):
            width, height = rng.choice(list(sizes))
            url = fleet.image_url(host, image_id, rng.choice(list(formats)), width, height)
            rows.append(_row(rng, url, f"{host}/{image_id}", host, f"Specimen {image_id}"))
    for index in range(bad_rows):
        bad = BAD_IDENTIFIERS[index % len(BAD_IDENTIFIERS)]
        rows.append(_row(rng, bad, f"bad/{index}", "bad", f"Bad row {index}"))
    rng.shuffle(rows)
    _write_rows(rows, Path(path), fmt)
    return len(rows)


def _row(rng: random.Random, identifier: str, source_id: str, source: str, title: str) -> dict:
    return {
        "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "identifier": identifier,
        "source_id": source_id,
        "license": rng.choice(LICENSES),
        "source": source,
        "title": title,
    }


def _write_rows(rows: list[dict[str, str]], path: Path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        columns = {name: [row[name] for row in rows] for name in URL_LIST_COLUMNS}
        schema = pa.schema([pa.field(name, pa.string()) for name in URL_LIST_COLUMNS])
        pq.write_table(pa.table(columns, schema=schema), path)
        return
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(
            stream, fieldnames=URL_LIST_COLUMNS, delimiter="\t" if fmt == "tsv" else ","
        )
        writer.writeheader()
        writer.writerows(rows)
