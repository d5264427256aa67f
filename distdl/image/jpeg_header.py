"""The size, components and EXIF orientation of a plain JPEG, read from its markers alone.

The header probe of every body (:func:`distdl.image.footprint.probe`) runs in the rank's
event loop, once per image: Pillow's ``Image.open`` parses every table of the header in
Python (quantisation tables value by value), about a tenth of what a rank spends per image.
This reader walks the segment lengths to the frame header instead, and reads the
orientation from the first EXIF segment as Pillow would.

It answers only for the JPEGs whose probe it can reproduce exactly: 8-bit baseline,
extended or progressive frames of 1, 3 or 4 components, no MPO index (``APP2 MPF``), no XMP
packet (Pillow reads an orientation from XMP too), a well-formed EXIF orientation or none.
For anything else, or anything odd, it returns None and the caller asks Pillow, whose
verdicts (damaged headers, decompression bombs) and messages are thus unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

_SOI = b"\xff\xd8"
_FRAMES = frozenset({0xC0, 0xC1, 0xC2})  # baseline, extended sequential, progressive
_OTHER_FRAMES = frozenset({0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_SCAN = 0xDA
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length field
_APP1, _APP2 = 0xE1, 0xE2
_EXIF = b"Exif\x00\x00"
_XMP = b"http://ns.adobe.com/xap/1.0/"
_MPF = b"MPF\x00"
_MODES = {1: "L", 3: "RGB", 4: "CMYK"}  # Pillow's mode for each component count
_ORIENTATION_TAG = 0x0112
_SHORT = 3  # TIFF field type
_NORMAL = 1


@dataclass(frozen=True, slots=True)
class JpegHeader:
    size: tuple[int, int]  # (width, height) as stored
    mode: str  # Pillow's mode: L, RGB or CMYK
    orientation: int  # EXIF orientation 1..8, 1 when absent


def read_jpeg_header(data: bytes) -> JpegHeader | None:
    """The header of ``data`` when it is a JPEG this reader vouches for, else None."""
    if not data.startswith(_SOI):
        return None
    position = 2
    frame: tuple[int, int, int] | None = None
    orientation = _NORMAL
    seen_exif = False
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue
        if marker == _SCAN:
            break
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        segment = data[position + 4 : position + 2 + length]
        if length < 2 or len(segment) != length - 2:
            return None
        if _opened_otherwise(marker, segment):
            return None
        if marker in _FRAMES:
            frame = _frame(segment)
            if frame is None:
                return None
        elif marker == _APP1 and segment.startswith(_EXIF) and not seen_exif:
            seen_exif = True  # Pillow keeps the first EXIF segment only
            found = _exif_orientation(segment[len(_EXIF) :])
            if found is None:
                return None
            orientation = found
        position += 2 + length
    else:
        return None  # no scan: truncated, or not a JPEG Pillow would open the same way
    if frame is None:
        return None
    width, height, components = frame
    return JpegHeader((width, height), _MODES[components], orientation)


def _opened_otherwise(marker: int, segment: bytes) -> bool:
    """A segment that makes Pillow open the JPEG another way: another kind of frame, an MPO
    index, or an XMP packet (which may carry an orientation)."""
    if marker in _OTHER_FRAMES:
        return True
    if marker == _APP1:
        return segment.startswith(_XMP)
    return marker == _APP2 and segment.startswith(_MPF)


def _frame(segment: bytes) -> tuple[int, int, int] | None:
    if len(segment) < 6 or segment[0] != 8:
        return None
    height = int.from_bytes(segment[1:3], "big")
    width = int.from_bytes(segment[3:5], "big")
    components = segment[5]
    if width == 0 or height == 0 or components not in _MODES:
        return None
    return width, height, components


def _exif_orientation(tiff: bytes) -> int | None:
    """The orientation in IFD0 of a TIFF structure: 1 when absent, None when the structure
    or the value is anything but plain (the caller then asks Pillow)."""
    if len(tiff) < 8 or tiff[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    order = "little" if tiff[:2] == b"II" else "big"
    ifd = int.from_bytes(tiff[4:8], order)
    if ifd + 2 > len(tiff):
        return None
    entries = int.from_bytes(tiff[ifd : ifd + 2], order)
    end = ifd + 2 + 12 * entries
    if end > len(tiff):
        return None
    for start in range(ifd + 2, end, 12):
        if int.from_bytes(tiff[start : start + 2], order) != _ORIENTATION_TAG:
            continue
        kind = int.from_bytes(tiff[start + 2 : start + 4], order)
        count = int.from_bytes(tiff[start + 4 : start + 8], order)
        value = int.from_bytes(tiff[start + 8 : start + 10], order)
        if kind != _SHORT or count != 1 or not 1 <= value <= 8:
            return None
        return value
    return _NORMAL
