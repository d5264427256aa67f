"""Byte sizes written by people: ``1073741824``, ``"1GiB"``, ``"512 MiB"``, ``"1.5G"``.

Binary units (KiB, MiB, GiB, TiB) are powers of 1024; decimal ones (kB, MB, GB, TB) powers of
1000; a bare letter (``K``, ``M``, ``G``, ``T``) is read as binary, as memory sizes usually are
(Slurm's ``--mem=4G`` means 4 GiB). Case and spaces do not matter.
"""

from __future__ import annotations

import math
import re

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1000**4,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$")


def parse_byte_size(value: int | str) -> int:
    """The number of bytes ``value`` names; ValueError (with the accepted forms) if none."""
    if isinstance(value, bool):
        raise ValueError("expected a number of bytes or a size like '1GiB', got a boolean")
    if isinstance(value, int):
        return value
    match = _SIZE.match(value.lower())
    if match is None or match.group(2) not in _UNITS:
        raise ValueError("expected a number of bytes or a size like '1GiB', '512MiB', '2GB'")
    return math.floor(float(match.group(1)) * _UNITS[match.group(2)])


def format_byte_size(size: int) -> str:
    """``size`` in the largest binary unit that keeps it >= 1, e.g. ``"1.5 GiB"``."""
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(size) >= factor:
            return f"{size / factor:.3g} {unit}"
    return f"{size} B"
