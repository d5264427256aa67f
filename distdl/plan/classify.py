"""Vectorised URL classification: a whole chunk of identifiers at Arrow speed.

:func:`distdl.core.urls.classify_url` is the reference. Most identifiers are plain
``http(s)://host[:port]/path`` URLs, which a conservative regular expression recognises; for
those only the origin (``scheme://host[:port]``) decides the server, and a chunk holds few
distinct origins. An origin whose host is a plain ASCII name (``[a-z0-9._-]``, not ending in
a number) or a dotted-quad IPv4 address is mapped vectorised, as the reference maps it
(lower-cased, trailing dots and ports 80 and 443 dropped). Any other origin (an IDN, a
fullwidth or numeric spelling) is handed to ``classify_url`` itself, once per distinct
origin. Identifiers the pattern does not fully match go through ``classify_url`` one by one.
A property test keeps both paths in agreement.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from distdl.core.urls import classify_url

# Deliberately narrow: no userinfo, no brackets, no '%', a host that starts with a letter,
# a digit or a non-ASCII character (never a dot), and no whitespace anywhere, so neither
# urlsplit's stripping nor classify_url's whitespace rule can disagree with it. Non-ASCII
# whitespace, separators and control or format characters are the reference's to judge.
# Group 1 is the origin (scheme://host[:port]): all that decides a simple URL's server.
_NON_ASCII = r"[^\x00-\x7f\s\p{Z}\p{C}]"
_HOST = rf"(?:[A-Za-z0-9]|{_NON_ASCII})(?:[A-Za-z0-9._-]|{_NON_ASCII})*"
SIMPLE_URL = rf"^([Hh][Tt][Tt][Pp][Ss]?://{_HOST}(?::[0-9]{{1,5}})?)(?:[/?#][!-~]*)?$"
_ORIGIN = r"^[^:]+://(?P<host>[^:]+)(?::(?P<port>[0-9]+))?$"
_PLAIN_NAME = r"^[a-z0-9._-]+$"
# WHATWG reads a host whose last label is a number as IPv4 (``127.1``, ``0x7f.1``, ...).
_ENDS_IN_A_NUMBER = r"(?:^|\.)(?:[0-9]+|0x[0-9a-f]*)$"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = rf"^{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}$"
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
    """The server name of each origin, null where the reference rejects it."""
    parts = (
        origins.rename("origin")
        .to_frame()
        .with_columns(pl.col("origin").str.extract_groups(_ORIGIN).alias("m"))
        .select(
            pl.col("origin"),
            pl.col("m")
            .struct.field("host")
            .str.to_lowercase()
            .str.strip_chars_end(".")
            .alias("host"),
            pl.col("m").struct.field("port").cast(pl.Int64).alias("port"),
        )
    )
    host = pl.col("host")
    plain = host.str.contains(_PLAIN_NAME) & (
        ~host.str.contains(_ENDS_IN_A_NUMBER) | host.str.contains(_DOTTED_QUAD)
    )
    port = pl.col("port")
    with_port = pl.concat_str([host, pl.lit(":"), port.cast(pl.String)])
    keeps_port = port.is_not_null() & ~port.is_in([80, 443])
    named = pl.when(keeps_port).then(with_port).otherwise(host)
    # Port 0 and ports above 65535 are rejections: leave them to the reference's messages.
    decidable = port.is_null() | port.is_between(1, _MAX_PORT)
    names = parts.select(
        pl.col("origin"),
        plain.alias("plain"),
        pl.when(plain & decidable).then(named).alias("server_name"),
    )
    return _reference_names(names).get_column("server_name")


def _reference_names(names: pl.DataFrame) -> pl.DataFrame:
    """Fill in the server names of the origins that are not plain, from the reference."""
    rows = names.get_column("plain").not_().arg_true()
    if len(rows) == 0:
        return names
    verdicts = [classify_url(origin) for origin in names.get_column("origin").gather(rows)]
    decided = pl.Series([v.server_name for v in verdicts], dtype=pl.String)
    return names.with_columns(names.get_column("server_name").clone().scatter(rows, decided))


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
