"""Inputs told apart by content, and header names checked before anything is read."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distdl.errors import InputError
from distdl.inputs.columns import find_column, normalised_names
from distdl.inputs.sources import detect_kind, open_source


def test_kinds_are_told_by_content_not_extension(tmp_path: Path) -> None:
    tsv = tmp_path / "a.csv"
    tsv.write_text("gbifID\tidentifier\n1\thttp://a.org/x\n")
    csv = tmp_path / "b.txt"
    csv.write_text("uuid,identifier,source_id\n")
    compressed = tmp_path / "c.bin"
    compressed.write_bytes(gzip.compress(b"uuid\tidentifier\n"))
    table = tmp_path / "d.dat"
    pq.write_table(pa.table({"uuid": ["u"]}), table)
    archive = tmp_path / "e.txt"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("meta.xml", "<archive/>")
    assert [detect_kind(p) for p in (tsv, csv, compressed, table, archive)] == [
        "tsv",
        "csv",
        "tsv",
        "parquet",
        "dwca",
    ]


def test_binary_junk_names_the_override(tmp_path: Path) -> None:
    junk = tmp_path / "x"
    junk.write_bytes(b"\x00\x01\x02garbage")
    with pytest.raises(InputError, match="--input-format csv, tsv or parquet"):
        detect_kind(junk)


def test_a_folder_needs_meta_xml(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no meta\.xml"):
        detect_kind(tmp_path)


def test_a_compressed_text_is_read_with_its_columns(tmp_path: Path) -> None:
    path = tmp_path / "m.txt.gz"
    path.write_bytes(gzip.compress(b'gbifID\tidentifier\ttitle\n7\thttp://a.org/1\ta "quoted\n'))
    source = open_source(path)
    assert source.names == ("gbifID", "identifier", "title")
    (table,) = list(source.read(["identifier", "gbifID", "title"]))
    assert table.to_pylist() == [
        {"identifier": "http://a.org/1", "gbifID": "7", "title": 'a "quoted'}
    ]


def test_header_uris_are_term_names_and_repeats_are_named() -> None:
    names = normalised_names(["http://purl.org/dc/terms/identifier", "gbifID"], "f")
    assert names == ("identifier", "gbifID")
    with pytest.raises(InputError, match="more than once: identifier"):
        normalised_names(["identifier", "http://purl.org/dc/terms/identifier"], "f")


def test_a_name_matches_exactly_or_case_insensitively_when_unique() -> None:
    names = ("License", "license", "Title")
    assert find_column(names, "license", "f") == "license"
    assert find_column(names, "title", "f") == "Title"
    assert find_column(names, "creator", "f") is None
    with pytest.raises(InputError, match="'LICENSE' is ambiguous"):
        find_column(names, "LICENSE", "f")
