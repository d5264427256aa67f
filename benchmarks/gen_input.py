"""Synthetic GBIF-like URL lists of any size, written in streamed chunks.

Hosts are Zipf-distributed (a few huge servers, a long tail), some have ports, some are
spelled in upper case or with an explicit default port (same server either way), and a
``bad_fraction`` of rows is replaced by odd rows of every kind: unfetchable identifiers
(empty, whitespace, ftp:, file:, javascript:, data:, unparsable, no host, ports 0 and
99999), an empty uuid, and odd-but-valid URLs that take the slow classification path
(userinfo, IPv6, unicode host, surrounding spaces). Titles hold commas and stray quotes.

    from benchmarks.gen_input import write_synthetic_input
    write_synthetic_input("/tmp/in.csv", 1_000_000)
    write_synthetic_input(p, 300, n_hosts=3, url_template="http://127.0.0.{k1}:8080/{i}.jpg")

``url_template`` placeholders: ``{host}`` (e.g. ``img7.example7.org``, with its port if it
has one), ``{spelled}`` (the same server spelled differently on some rows: upper case or an
explicit default port), ``{scheme}`` (the host's http or https), ``{k}`` / ``{k1}`` (0- /
1-based host index, Zipf-distributed), ``{i}`` (row index), ``{r}`` (a random number) and
``{uuid}``. The default is ``{scheme}://{spelled}/media/{i}/{r}.jpg``. Everything derives
from hashes of the row index, so a seed always gives the same file.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Literal

import polars as pl
import pyarrow.parquet as pq

Format = Literal["csv", "tsv", "parquet"]
CHUNK_ROWS = 1_000_000
ZIPF_EXPONENT = 1.0
DEFAULT_TEMPLATE = "{scheme}://{spelled}/media/{i}/{r}.jpg"
_PLACEHOLDER = re.compile(r"\{(\w+)\}")

# (uuid override or None to keep the row's uuid, identifier or None for a null)
ODD_ROWS: tuple[tuple[str | None, str | None], ...] = (
    (None, ""),
    (None, "   "),
    (None, None),
    (None, "ftp://ftp.example.org/a.jpg"),
    (None, "file:///etc/passwd"),
    (None, "javascript:alert(1)"),
    (None, "data:image/png;base64,iVBORw0KGgo="),
    (None, "http://[::1/a.jpg"),
    (None, "http:///no-host.jpg"),
    (None, "http://port99999.example.org:99999/a.jpg"),
    (None, "http://port0.example.org:0/a.jpg"),
    (None, "not a url at all"),
    ("", "https://img0.example0.org/empty-uuid.jpg"),
    (None, "https://user:pw@Img1.Example1.org/userinfo.jpg"),
    (None, "http://[2001:DB8::1]:8080/ipv6.jpg"),
    (None, "https://bücher.example/unicode.jpg"),
    (None, "  https://img2.example2.org/padded.jpg  "),
)
LICENSES = ("CC_BY_4_0", "CC0_1_0", "http://creativecommons.org/licenses/by-nc/4.0/", None)
TITLES = ("Herbarium sheet, recto", 'Specimen "A', 'label "typus" photo', "Habitus", None)


def write_synthetic_input(
    path: str | Path,
    n_rows: int,
    n_hosts: int = 500,
    bad_fraction: float = 0.001,
    seed: int = 0,
    fmt: Format = "csv",
    url_template: str | None = None,
) -> Path:
    """Write ``n_rows`` rows (uuid, identifier, source_id, license, source, title, extras)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    hosts = _host_table(n_hosts)
    cdf = _zipf_cdf(n_hosts)
    writer: pq.ParquetWriter | None = None
    with open(path, "wb") as handle:
        for start in range(0, max(n_rows, 1), CHUNK_ROWS):
            end = min(n_rows, start + CHUNK_ROWS)
            frame = _chunk(start, end, hosts, cdf, bad_fraction, seed, url_template)
            if fmt == "parquet":
                table = frame.to_arrow()
                writer = writer or pq.ParquetWriter(handle, table.schema)
                writer.write_table(table)
            else:
                separator, quote = ("\t", "never") if fmt == "tsv" else (",", "necessary")
                frame.write_csv(
                    handle, include_header=start == 0, separator=separator, quote_style=quote
                )
        if writer is not None:
            writer.close()
    return path


def _host_table(n_hosts: int) -> pl.DataFrame:
    """Per host: canonical spelling, a variant spelling of the same server, scheme."""
    rows = []
    for k in range(n_hosts):
        name = f"img{k}.example{k % 13}.org"
        scheme = "http" if k % 5 == 0 else "https"
        port = f":{8000 + k}" if k % 17 == 3 else ""
        default = ":80" if scheme == "http" else ":443"
        variant = f"{name.upper()}{port}" if k % 2 else f"{name}{port or default}"
        rows.append((f"{name}{port}", variant, scheme))
    return pl.DataFrame(rows, schema=["host", "variant", "scheme"], orient="row")


def _zipf_cdf(n_hosts: int) -> pl.Series:
    weights = [1.0 / (k + 1) ** ZIPF_EXPONENT for k in range(n_hosts)]
    total = sum(weights)
    running, cdf = 0.0, []
    for weight in weights:
        running += weight / total
        cdf.append(running)
    return pl.Series("cdf", cdf)


def _uniform(index: pl.Expr, seed: int, stream: int) -> pl.Expr:
    """A uniform float in [0, 1) from a hash of the row index."""
    bits = index.hash(seed=seed * 1000 + stream) // (1 << 11)
    return bits.cast(pl.Float64) / float(1 << 53)


def _pick(index: pl.Expr, seed: int, stream: int, n: int) -> pl.Expr:
    return (index.hash(seed=seed * 1000 + stream) % n).cast(pl.Int64)


def _chunk(
    start: int,
    end: int,
    hosts: pl.DataFrame,
    cdf: pl.Series,
    bad_fraction: float,
    seed: int,
    url_template: str | None,
) -> pl.DataFrame:
    i = pl.col("i")
    base = pl.DataFrame({"i": pl.int_range(start, end, dtype=pl.Int64, eager=True)})
    uniform = base.select(_uniform(i, seed, 1)).to_series()
    k = cdf.search_sorted(uniform).clip(0, hosts.height - 1).cast(pl.Int64)
    frame = base.with_columns(
        k.alias("k"),
        hosts["host"].gather(k),
        hosts["variant"].gather(k),
        hosts["scheme"].gather(k),
    )
    frame = frame.with_columns(
        uuid=pl.concat_str(
            [i.hash(seed=seed * 1000 + 2).cast(pl.String), pl.lit("-"), i.cast(pl.String)]
        ),
        spelled=pl.when(_pick(i, seed, 3, 4) == 0).then("variant").otherwise("host"),
        r=_pick(i, seed, 4, 10**9).cast(pl.String),
    )
    frame = frame.with_columns(identifier=_render(url_template or DEFAULT_TEMPLATE))
    frame = _with_odd_rows(frame, bad_fraction, seed)
    return frame.select(
        "uuid",
        "identifier",
        _pick(i, seed, 5, 10**7).cast(pl.String).str.zfill(8).alias("source_id"),
        _choice(i, seed, 6, LICENSES).alias("license"),
        pl.concat_str([pl.lit("https://www.gbif.org/occurrence/"), i.cast(pl.String)]).alias(
            "source"
        ),
        _choice(i, seed, 7, TITLES).alias("title"),
        pl.lit("StillImage").alias("type"),
        pl.lit("image/jpeg").alias("format"),
    )


def _render(template: str) -> pl.Expr:
    fields = {
        "scheme": pl.col("scheme"),
        "spelled": pl.col("spelled"),
        "host": pl.col("host"),
        "k": pl.col("k").cast(pl.String),
        "k1": (pl.col("k") + 1).cast(pl.String),
        "i": pl.col("i").cast(pl.String),
        "r": pl.col("r"),
        "uuid": pl.col("uuid"),
    }
    pieces: list[pl.Expr] = []
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        pieces.append(pl.lit(template[position : match.start()]))
        if match.group(1) not in fields:
            raise ValueError(f"unknown placeholder {match.group(0)} in url_template")
        pieces.append(fields[match.group(1)])
        position = match.end()
    pieces.append(pl.lit(template[position:]))
    return pl.concat_str(pieces)


def _choice(index: pl.Expr, seed: int, stream: int, values: tuple[str | None, ...]) -> pl.Expr:
    picked = _pick(index, seed, stream, len(values))
    expr = pl.lit(None, pl.String)
    for position, value in enumerate(values):
        expr = pl.when(picked == position).then(pl.lit(value, pl.String)).otherwise(expr)
    return expr


def _with_odd_rows(frame: pl.DataFrame, bad_fraction: float, seed: int) -> pl.DataFrame:
    i = pl.col("i")
    is_odd = _uniform(i, seed, 8) < bad_fraction
    kind = _pick(i, seed, 9, len(ODD_ROWS))
    identifier, uuid = pl.col("identifier"), pl.col("uuid")
    for position, (odd_uuid, odd_identifier) in enumerate(ODD_ROWS):
        chosen = is_odd & (kind == position)
        identifier = pl.when(chosen).then(pl.lit(odd_identifier, pl.String)).otherwise(identifier)
        if odd_uuid is not None:
            uuid = pl.when(chosen).then(pl.lit(odd_uuid)).otherwise(uuid)
    return frame.with_columns(identifier=identifier, uuid=uuid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--bad-fraction", type=float, default=0.001)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", choices=["csv", "tsv", "parquet"], default=None)
    parser.add_argument("--url-template", default=None)
    args = parser.parse_args()
    fmt = args.format or {".tsv": "tsv", ".txt": "tsv", ".parquet": "parquet"}.get(
        args.path.suffix.lower(), "csv"
    )
    write_synthetic_input(
        args.path, args.rows, args.hosts, args.bad_fraction, args.seed, fmt, args.url_template
    )


if __name__ == "__main__":
    main()
