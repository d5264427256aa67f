"""The ``.npy`` file of an RGB pixel buffer, without numpy: format version 1.0, ``|u1``,
C order, shape ``(height, width, 3)`` (see numpy's ``lib.format`` documentation)."""

from __future__ import annotations

import struct

_MAGIC = b"\x93NUMPY\x01\x00"
_ALIGN = 64


def npy_bytes(pixels: bytes, height: int, width: int) -> bytes:
    if len(pixels) != height * width * 3:
        raise ValueError(f"{len(pixels)} bytes is not {height}x{width}x3")
    header = f"{{'descr': '|u1', 'fortran_order': False, 'shape': ({height}, {width}, 3), }}"
    # magic + 2-byte length + header + padding + "\n" is a multiple of 64 bytes
    unpadded = len(_MAGIC) + 2 + len(header) + 1
    header += " " * (-unpadded % _ALIGN) + "\n"
    return _MAGIC + struct.pack("<H", len(header)) + header.encode("latin1") + pixels
