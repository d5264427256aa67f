"""Content hashes written to successes.parquet."""

from __future__ import annotations

import hashlib


def md5_hex(data: bytes) -> str:
    """MD5 hex digest, as the original tool wrote it (a content id, not a security check)."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()
