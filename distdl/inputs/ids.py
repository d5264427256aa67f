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


def image_uuids(source_ids: pl.Series, keys: pl.Series) -> pl.Series:
    values = [
        image_uuid(s, k or "") for s, k in zip(source_ids.to_list(), keys.to_list(), strict=True)
    ]
    return pl.Series("uuid", values, dtype=pl.String)


def identifier_keys(identifiers: pl.Series, query_free_hosts: Sequence[str]) -> pl.Series:
    """Identifiers with the query string and fragment dropped on the given hosts."""
    if not query_free_hosts:
        return identifiers
    hosts = "|".join(re.escape(host) for host in query_free_hosts)
    pattern = rf"^((?i:https?)://(?i:{hosts})(?::[0-9]+)?/[^?#]*)[?#].*$"
    return identifiers.str.replace(pattern, "${1}")
