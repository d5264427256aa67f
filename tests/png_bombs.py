"""Decompression bombs for tests: PNGs of many pixels in few bytes (all zeros)."""

from __future__ import annotations

import struct
import zlib

_BYTES_PER_PIXEL = {0: 1, 2: 3, 6: 4}  # PNG colour types: grey, RGB, RGBA


def png_bomb(width: int, height: int, color_type: int = 0) -> bytes:
    """A valid PNG of ``width`` x ``height`` black pixels; 9000x9000 grey is about 80 kB."""
    compressor = zlib.compressobj(9)
    row = bytes(1 + width * _BYTES_PER_PIXEL[color_type])  # filter byte 0, then pixels
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", b"".join(parts))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
