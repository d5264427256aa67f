"""Vectorised URL classification: a whole chunk of identifiers at Arrow speed.

:func:`distdl.core.urls.classify_url` is the reference. Most identifiers are plain
``http(s)://host[:port]/path`` URLs, which a conservative regular expression recognises and
maps to the same ``server_name`` as the reference (lower-cased host, trailing dots dropped,
default port dropped, port rendered as a number). Anything the pattern does not fully
match, or whose port is out of range, goes through ``classify_url`` itself, one by one.
A property test keeps both paths in agreement.
"""

from __future__ import annotations

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


def classify_identifiers(identifiers: pl.Series) -> pl.DataFrame:
    """One row per identifier: ``url``, ``server_name``, ``error_code``, ``error_msg``.

    Accepted rows have a ``server_name``, ``error_code`` 0 and a null ``error_msg``; their
    ``url`` is the identifier with surrounding whitespace removed (what was validated).
    Rejected rows have a null ``server_name`` and ``url`` is the identifier as given.
    """
    identifiers = identifiers.cast(pl.String)
    server_name = fast_server_names(identifiers)
    n = len(identifiers)
    frame = pl.DataFrame(
        [
            identifiers.rename("url"),
            server_name,
            pl.repeat(0, n, dtype=pl.Int64, eager=True).rename("error_code"),
            pl.repeat(None, n, dtype=pl.String, eager=True).rename("error_msg"),
        ]
    )
    undecided = server_name.is_null().arg_true()
    if len(undecided) == 0:
        return frame
    return _apply_reference(frame, identifiers, undecided)


def _apply_reference(frame: pl.DataFrame, identifiers: pl.Series, rows: pl.Series) -> pl.DataFrame:
    texts = identifiers.gather(rows).to_list()
    verdicts = [classify_url(text) for text in texts]
    urls = [text.strip() if v.ok else text for text, v in zip(texts, verdicts, strict=True)]
    return frame.with_columns(
        frame["url"].clone().scatter(rows, urls),
        frame["server_name"].clone().scatter(rows, [v.server_name for v in verdicts]),
        frame["error_code"].clone().scatter(rows, [v.error_code for v in verdicts]),
        frame["error_msg"].clone().scatter(rows, [v.error_msg or None for v in verdicts]),
    )
