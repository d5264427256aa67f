"""Build GBIF-style inputs for tests: the real iNaturalist multimedia.txt, and archives of it."""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "gbif"
INAT_MULTIMEDIA = DATA / "multimedia-inaturalist-2021.txt.gz"
OCCURRENCE_ONLY_ZIP = DATA / "dwca-occurrence-only.zip"
MULTIMEDIA_ROW_TYPE = "http://rs.gbif.org/terms/1.0/Multimedia"
OCCURRENCE_ROW_TYPE = "http://rs.tdwg.org/dwc/terms/Occurrence"
_TERM_NS = {
    "gbifID": "http://rs.gbif.org/terms/1.0/",
    "rightsHolder": "http://purl.org/dc/terms/",
    "scientificName": "http://rs.tdwg.org/dwc/terms/",
    "basisOfRecord": "http://rs.tdwg.org/dwc/terms/",
    "occurrenceID": "http://rs.tdwg.org/dwc/terms/",
    "datasetKey": "http://rs.gbif.org/terms/1.0/",
}


def term(name: str) -> str:
    return _TERM_NS.get(name, "http://purl.org/dc/terms/") + name


def inat_rows() -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the real multimedia.txt, values as written (no quoting)."""
    text = gzip.decompress(INAT_MULTIMEDIA.read_bytes()).decode("utf-8")
    lines = list(csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE))
    return lines[0], [line for line in lines[1:] if line]


def tsv(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    return "\n".join("\t".join(row) for row in [header, *rows]) + "\n"


def _fields(header: Sequence[str], skip: int | None) -> str:
    return "".join(
        f'<field index="{i}" term="{term(name)}"/>' for i, name in enumerate(header) if i != skip
    )


def extension_xml(header: Sequence[str], key_index: int, key_has_term: bool = True) -> str:
    return (
        f'<extension encoding="UTF-8" fieldsTerminatedBy="\\t" linesTerminatedBy="\\n" '
        f'fieldsEnclosedBy="" ignoreHeaderLines="1" rowType="{MULTIMEDIA_ROW_TYPE}">'
        f'<files><location>multimedia.txt</location></files><coreid index="{key_index}"/>'
        f"{_fields(header, None if key_has_term else key_index)}</extension>"
    )


def core_xml(header: Sequence[str], key_index: int) -> str:
    return (
        f'<core encoding="UTF-8" fieldsTerminatedBy="\\t" linesTerminatedBy="\\n" '
        f'fieldsEnclosedBy="" ignoreHeaderLines="1" rowType="{OCCURRENCE_ROW_TYPE}">'
        f'<files><location>occurrence.txt</location></files><id index="{key_index}"/>'
        f"{_fields(header, None)}</core>"
    )


def write_archive(
    path: Path,
    multimedia: tuple[Sequence[str], Sequence[Sequence[str]]] | None,
    core: tuple[Sequence[str], Sequence[Sequence[str]]],
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """A GBIF-style DwC-A zip: occurrence.txt core (id = first column), multimedia.txt."""
    parts = [core_xml(core[0], 0)]
    if multimedia is not None:
        parts.append(extension_xml(multimedia[0], 0))
    meta = (
        '<archive xmlns="http://rs.tdwg.org/dwc/text/" metadata="metadata.xml">'
        + "".join(parts)
        + "</archive>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("meta.xml", meta)
        archive.writestr("occurrence.txt", tsv(*core))
        if multimedia is not None:
            archive.writestr("multimedia.txt", tsv(*multimedia))
        for name, data in (extra_files or {}).items():
            archive.writestr(name, data)
    return path


def inat_core(rows: Sequence[Sequence[str]]) -> tuple[list[str], list[list[str]]]:
    """A core for the iNaturalist rows: one occurrence per gbifID, made-up fields."""
    ids = sorted({row[0] for row in rows})
    header = ["gbifID", "basisOfRecord", "scientificName", "datasetKey"]
    body = [[i, "HUMAN_OBSERVATION", f"Lycorma delicatula {i[-1]}", "50c9509d"] for i in ids]
    return header, body
