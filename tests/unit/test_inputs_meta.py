"""meta.xml parsing: the real 2013 GBIF archive, and the attributes the DwC text guide defines."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from distdl.errors import InputError
from distdl.inputs.meta import parse_meta, term_name

REAL_ZIP = Path(__file__).resolve().parents[1] / "data" / "gbif" / "dwca-occurrence-only.zip"


def test_the_real_archive_core_is_keyed_by_occurrence_id() -> None:
    with zipfile.ZipFile(REAL_ZIP) as archive:
        meta = parse_meta(archive.read("meta.xml"))
    core = meta.core
    assert core.location == "occurrence.txt"
    assert (core.delimiter, core.line_end, core.quote, core.header_lines) == ("\t", "\n", "", 0)
    assert core.key_index == 0 and core.key_name == "occurrenceID"
    assert core.columns[6] == "scientificName" and core.columns[5] == "basisOfRecord"
    assert len(core.columns) == 64
    assert meta.extensions == () and meta.multimedia() is None


def _meta(extension: str, core_key: str = '<id index="0"/>') -> bytes:
    return (
        '<archive xmlns="http://rs.tdwg.org/dwc/text/">'
        '<core rowType="http://rs.tdwg.org/dwc/terms/Occurrence"><files><location>occ.txt'
        f'</location></files>{core_key}<field index="0" term="http://rs.gbif.org/terms/1.0/gbifID"/>'
        f"</core>{extension}</archive>"
    ).encode()


def test_an_extension_key_without_a_term_takes_the_core_key_name() -> None:
    extension = (
        '<extension rowType="http://rs.tdwg.org/ac/terms/Multimedia" fieldsTerminatedBy="\\t" '
        'ignoreHeaderLines="1" fieldsEnclosedBy="">'
        '<files><location>ac.txt</location></files><coreid index="0"/>'
        '<field index="1" term="http://rs.tdwg.org/ac/terms/accessURI"/>'
        '<field term="http://purl.org/dc/terms/type" default="StillImage"/></extension>'
    )
    media = parse_meta(_meta(extension)).multimedia()
    assert media is not None
    assert media.location == "ac.txt" and media.key_name == "gbifID"
    assert media.columns == {0: "gbifID", 1: "accessURI"}
    assert media.defaults == {"type": "StillImage"}
    assert (media.delimiter, media.quote, media.header_lines) == ("\t", "", 1)


def test_absent_attributes_take_the_guides_defaults() -> None:
    meta = parse_meta(_meta(""))
    assert (meta.core.delimiter, meta.core.quote, meta.core.encoding) == (",", '"', "UTF-8")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"<archive", "not valid XML"),
        (b"<archive/>", "one <core>"),
        (_meta("").replace(b"occ.txt", b""), "no <files>"),
    ],
)
def test_broken_meta_is_an_input_error(text: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_meta(text)


def test_terms_are_named_by_the_last_segment() -> None:
    assert term_name("http://rs.tdwg.org/dwc/terms/scientificName") == "scientificName"
    assert term_name("http://purl.org/dc/terms/identifier/") == "identifier"
    assert term_name("identifier") == "identifier"
