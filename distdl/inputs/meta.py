"""Parse a Darwin Core Archive's ``meta.xml``: which file holds which rows, and how to read it.

Terms are named by their URI's last segment (``http://purl.org/dc/terms/identifier`` ->
``identifier``). A file's ``id`` (core) or ``coreid`` (extension) column is named after the
core's id term (``gbifID`` in today's GBIF downloads, ``occurrenceID`` in older ones) unless
the extension declares a term for it, so a core id and its images' key share one name.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from distdl.errors import InputError

MULTIMEDIA_ROW_TYPES = (
    "http://rs.gbif.org/terms/1.0/Multimedia",
    "http://rs.tdwg.org/ac/terms/Multimedia",  # Audubon Core
)
# What the DwC text guide says when an attribute is absent.
_DEFAULTS = {
    "fieldsTerminatedBy": ",",
    "linesTerminatedBy": "\n",
    "fieldsEnclosedBy": '"',
    "ignoreHeaderLines": "0",
    "encoding": "UTF-8",
}
_ESCAPES = {"\\t": "\t", "\\n": "\n", "\\r": "\r", "\\r\\n": "\r\n", "\\\\": "\\"}


@dataclass(frozen=True)
class DataFile:
    """One core or extension file of an archive."""

    row_type: str
    location: str
    delimiter: str
    line_end: str
    quote: str  # "" means fields are never enclosed
    header_lines: int
    encoding: str
    key_index: int | None  # the id (core) or coreid (extension) column
    columns: dict[int, str]  # column index -> term name, including the key's name
    defaults: dict[str, str]  # terms given one value for every row

    @property
    def key_name(self) -> str | None:
        return None if self.key_index is None else self.columns.get(self.key_index)


@dataclass(frozen=True)
class ArchiveMeta:
    core: DataFile
    extensions: tuple[DataFile, ...]

    def multimedia(self) -> DataFile | None:
        for row_type in MULTIMEDIA_ROW_TYPES:
            for extension in self.extensions:
                if extension.row_type == row_type:
                    return extension
        return None


def term_name(uri: str) -> str:
    """``http://rs.tdwg.org/dwc/terms/scientificName`` -> ``scientificName``."""
    return uri.rstrip("/").rsplit("/", 1)[-1].rsplit("#", 1)[-1]


def parse_meta(xml_text: bytes | str, where: str = "meta.xml") -> ArchiveMeta:
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise InputError(f"{where}: not valid XML: {exc}") from None
    cores = [e for e in root if _local(e.tag) == "core"]
    if len(cores) != 1:
        raise InputError(f"{where}: expected one <core> element, found {len(cores)}")
    core = _data_file(cores[0], "id", None, where)
    extensions = tuple(
        _data_file(e, "coreid", core.key_name, where) for e in root if _local(e.tag) == "extension"
    )
    return ArchiveMeta(core, extensions)


def _data_file(element: ET.Element, key_tag: str, core_key: str | None, where: str) -> DataFile:
    attrs = {name: element.get(name, default) for name, default in _DEFAULTS.items()}
    locations = [e.text.strip() for e in element.iter() if _local(e.tag) == "location" and e.text]
    if not locations:
        raise InputError(f"{where}: <{_local(element.tag)}> names no <files><location>")
    columns: dict[int, str] = {}
    defaults: dict[str, str] = {}
    key_index: int | None = None
    for child in element:
        tag = _local(child.tag)
        if tag == key_tag:
            key_index = _index(child, where)
        elif tag == "field":
            term = term_name(child.get("term", ""))
            if child.get("index") is None:
                defaults[term] = child.get("default", "")
            else:
                columns[_index(child, where)] = term
    if key_index is not None and key_index not in columns:
        columns[key_index] = core_key or key_tag
    return DataFile(
        row_type=element.get("rowType", ""),
        location=locations[0],
        delimiter=_unescape(attrs["fieldsTerminatedBy"]),
        line_end=_unescape(attrs["linesTerminatedBy"]),
        quote=_unescape(attrs["fieldsEnclosedBy"]),
        header_lines=int(attrs["ignoreHeaderLines"] or 0),
        encoding=attrs["encoding"] or "UTF-8",
        key_index=key_index,
        columns=columns,
        defaults=defaults,
    )


def _index(element: ET.Element, where: str) -> int:
    try:
        return int(element.get("index", ""))
    except ValueError:
        raise InputError(f"{where}: <{_local(element.tag)}> has no numeric index") from None


def _unescape(value: str) -> str:
    return _ESCAPES.get(value, value)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
