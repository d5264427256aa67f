"""Stable image ids: the same image gets the same uuid in next month's snapshot.

``uuid = uuid5(IMAGE_NAMESPACE, source_id + "\\t" + identifier_key)`` where
``IMAGE_NAMESPACE = uuid5(NAMESPACE_URL, "https://distdl.invalid/image")``
= ``f8056d7d-667c-5f19-b370-0fd4ee26771b``,
and a null ``source_id`` counts as "". The identifier key is the identifier with the
cosmetic changes a preset knows of undone (iNaturalist appends ``?<timestamp>`` that
changes between snapshots), so those changes keep the uuid.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence

import polars as pl

IMAGE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://distdl.invalid/image")
_PREFIX = hashlib.sha1(IMAGE_NAMESPACE.bytes)


def image_uuid(source_id: str | None, identifier_key: str) -> str:
    """One image's uuid; equal to ``str(uuid.uuid5(IMAGE_NAMESPACE, name))``."""
    digest = _PREFIX.copy()
    digest.update(f"{source_id or ''}\t{identifier_key}".encode())
    raw = bytearray(digest.digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# The RFC 4122 variant bits (10xx) set on a hex digit.
_VARIANT = {f"{d:x}": f"{(d & 0x3) | 0x8:x}" for d in range(16)}


def image_uuids(source_ids: pl.Series, keys: pl.Series) -> pl.Series:
    """:func:`image_uuid` of every row; only the SHA-1 runs per row in Python."""
    names = (source_ids.fill_null("") + "\t" + keys.fill_null("")).cast(pl.Binary).to_list()
    digests: list[bytes] = []
    add = digests.append
    for name in names:
        digest = _PREFIX.copy()
        digest.update(name)
        add(digest.digest())
    hexed = pl.Series("h", digests, dtype=pl.Binary).bin.encode("hex").to_frame()
    h = pl.col("h").str
    formatted = pl.concat_str(
        [
            h.slice(0, 8),
            pl.lit("-"),
            h.slice(8, 4),
            pl.lit("-5"),  # version 5
            h.slice(13, 3),
            pl.lit("-"),
            h.slice(16, 1).replace_strict(_VARIANT),
            h.slice(17, 3),
            pl.lit("-"),
            h.slice(20, 12),
        ]
    )
    return hexed.select(formatted.alias("uuid")).to_series()


def identifier_keys(identifiers: pl.Series, query_free_hosts: Sequence[str]) -> pl.Series:
    """Identifiers with the query string and fragment dropped on the given hosts."""
    if not query_free_hosts:
        return identifiers
    hosts = "|".join(re.escape(host) for host in query_free_hosts)
    pattern = rf"^((?i:https?)://(?i:{hosts})(?::[0-9]+)?/[^?#]*)[?#].*$"
    return identifiers.str.replace(pattern, "${1}")
