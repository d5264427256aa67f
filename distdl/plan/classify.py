"""Vectorised URL classification: a whole chunk of identifiers at Arrow speed.

:func:`distdl.core.urls.classify_url` is the reference. Most identifiers are plain
``http(s)://host[:port]/path`` URLs, which a conservative regular expression recognises and
maps to the same ``server_name`` as the reference (lower-cased host, trailing dots dropped,
default port dropped, port rendered as a number). Anything the pattern does not fully
match, or whose port is out of range, goes through ``classify_url`` itself, one by one.
A property test keeps both paths in agreement.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from distdl.core.urls import classify_url

# Deliberately narrow: ASCII only, no userinfo, no brackets, no '%', a host that starts with
# a letter or digit (so it never strips down to nothing), and no whitespace anywhere, so
# neither urlsplit's stripping nor classify_url's whitespace rule can disagree with it.
# Group 1 is the origin (scheme://host[:port]): all that decides a simple URL's server.
SIMPLE_URL = (
    r"^([Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9][A-Za-z0-9._-]*(?::[0-9]{1,5})?)"
    r"(?:[/?#][!-~]*)?$"
)
_ORIGIN = r"^(?P<scheme>[^:]+)://(?P<host>[^:]+)(?::(?P<port>[0-9]+))?$"
_MAX_PORT = 65535


def fast_server_names(identifiers: pl.Series) -> pl.Series:
    """``server_name`` where the simple pattern decides it, null where it cannot.

    A chunk holds a few hundred distinct origins for hundreds of thousands of rows, so the
    origin is extracted per row and normalised once per distinct value.
    """
    origins = identifiers.str.extract(SIMPLE_URL, 1)
    distinct = origins.drop_nulls().unique()
    if len(distinct) == 0:
        return pl.Series("server_name", [None] * len(identifiers), dtype=pl.String)
    names = _server_names_of_origins(distinct)
    return origins.replace_strict(distinct, names, default=None).rename("server_name")


def _server_names_of_origins(origins: pl.Series) -> pl.Series:
    """Lower-case the host, drop trailing dots and the scheme's default port, like classify_url."""
    parts = (
        origins.rename("origin")
        .to_frame()
        .select(pl.col("origin").str.extract_groups(_ORIGIN).alias("m"))
        .select(
            pl.col("m").struct.field("scheme").str.to_lowercase().alias("scheme"),
            pl.col("m")
            .struct.field("host")
            .str.to_lowercase()
            .str.strip_chars_end(".")
            .alias("host"),
            pl.col("m").struct.field("port").cast(pl.Int64).alias("port"),
        )
    )
    port = pl.col("port")
    default_port = pl.when(pl.col("scheme") == "http").then(80).otherwise(443)
    with_port = pl.concat_str([pl.col("host"), pl.lit(":"), port.cast(pl.String)])
    keeps_port = port.is_not_null() & (port != default_port)
    named = pl.when(keeps_port).then(with_port).otherwise(pl.col("host"))
    # Port 0 and ports above 65535 are rejections: leave them to the reference's messages.
    decidable = port.is_null() | port.is_between(1, _MAX_PORT)
    return parts.select(pl.when(decidable).then(named).alias("server_name")).to_series()


@dataclass(frozen=True)
class Classified:
    """The verdicts on a chunk of identifiers.

    ``server_name`` is null exactly on rejected rows. ``url`` is the identifier, with
    surrounding whitespace removed where the reference accepted a padded one (what was
    validated is what gets fetched). Rejections are listed sparsely, as they are rare:
    ``rejected_rows`` (ascending row numbers) with their ``error_code`` and ``error_msg``.
    """

    server_name: pl.Series
    url: pl.Series
    rejected_rows: pl.Series
    error_code: pl.Series
    error_msg: pl.Series


def classify_identifiers(identifiers: pl.Series) -> Classified:
    identifiers = identifiers.cast(pl.String).rename("url")
    server_name = fast_server_names(identifiers)
    undecided = server_name.is_null().arg_true()
    texts = identifiers.gather(undecided).to_list()
    verdicts = [classify_url(text) for text in texts]
    if any(v.ok for v in verdicts):
        accepted = pl.Series([v.ok for v in verdicts], dtype=pl.Boolean)
        rows = undecided.filter(accepted)
        stripped = [text.strip() for text, v in zip(texts, verdicts, strict=True) if v.ok]
        identifiers = identifiers.clone().scatter(rows, stripped)
        names = [v.server_name for v in verdicts if v.ok]
        server_name = server_name.clone().scatter(rows, names)
    rejected = [(row, v) for row, v in zip(undecided.to_list(), verdicts, strict=True) if not v.ok]
    return Classified(
        server_name=server_name,
        url=identifiers,
        rejected_rows=pl.Series("row", [row for row, _ in rejected], dtype=pl.UInt32),
        error_code=pl.Series("error_code", [v.error_code for _, v in rejected], dtype=pl.Int64),
        error_msg=pl.Series("error_msg", [v.error_msg for _, v in rejected], dtype=pl.String),
    )
