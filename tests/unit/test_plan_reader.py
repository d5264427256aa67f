"""Reading CSV, TSV and parquet inputs as chunks of string columns."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distdl.errors import InputError
from distdl.plan import reader
from distdl.plan.reader import INPUT_COLUMNS, detect_format, open_input


def _rows(path: Path, fmt: reader.InputFormat | None = None) -> list[dict[str, str | None]]:
    source = open_input(path, fmt)
    tables = list(source.chunks())
    for table in tables:
        assert table.schema == pa.schema([(name, pa.string()) for name in INPUT_COLUMNS])
    return [row for table in tables for row in table.to_pylist()]


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.csv", "csv"),
        ("a.CSV", "csv"),
        ("a.tsv", "tsv"),
        ("multimedia.txt", "tsv"),
        ("a.parquet", "parquet"),
        ("a.pq", "parquet"),
        ("a.csv.gz", "csv"),
        ("a.tsv.zst", "tsv"),
    ],
)
def test_the_format_follows_the_extension(name: str, fmt: str) -> None:
    assert detect_format(Path(name)) == fmt


def test_an_unknown_extension_needs_the_override() -> None:
    with pytest.raises(InputError, match="cannot tell the input format"):
        detect_format(Path("urls.json"))
    assert detect_format(Path("urls.json"), "tsv") == "tsv"


def test_the_override_wins_over_the_extension(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("uuid\tidentifier\tsource_id\nu1\thttp://a/1,2\t7\n")
    assert _rows(path, "tsv")[0]["identifier"] == "http://a/1,2"


def test_a_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        open_input(tmp_path / "absent.csv")


def test_an_unreadable_parquet_file_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(InputError, match="cannot read"):
        open_input(path)


def test_missing_columns_are_named_with_the_columns_found(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("uuid,url,title\nu1,http://a/1,t\n")
    with pytest.raises(InputError) as caught:
        open_input(path)
    message = str(caught.value)
    assert "missing required column(s) identifier, source_id" in message
    assert "columns found: uuid, url, title" in message


def test_values_stay_strings_and_absent_optional_columns_are_null(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        "extra,source_id,identifier,uuid,license\n1,007,http://a/1,u1,\n2,8.50,x,u2,CC0\n"
    )
    assert _rows(path) == [
        {
            "uuid": "u1",
            "identifier": "http://a/1",
            "source_id": "007",
            "license": None,
            "source": None,
            "title": None,
        },
        {
            "uuid": "u2",
            "identifier": "x",
            "source_id": "8.50",
            "license": "CC0",
            "source": None,
            "title": None,
        },
    ]


def test_tsv_quotes_are_plain_characters(tmp_path: Path) -> None:
    path = tmp_path / "multimedia.txt"
    lines = [
        "uuid\tidentifier\tsource_id\ttitle",
        'u1\thttp://a/1\t1\tSpecimen "A',
        'u2\thttp://a/2\t2\t"quoted, with comma"',
        "u3\thttp://a/3\t3\tplain",
    ]
    path.write_text("\n".join(lines) + "\n")
    titles = [row["title"] for row in _rows(path)]
    assert titles == ['Specimen "A', '"quoted, with comma"', "plain"]


def test_csv_quoting_is_honoured_and_a_bom_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text('\ufeffuuid,identifier,source_id,title\nu1,http://a/1,1,"Herbarium, ""A"""\n')
    assert _rows(path)[0]["title"] == 'Herbarium, "A"'


def test_quoted_newlines_across_blocks_are_reread_without_losing_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tiny blocks force Arrow's fast parser to split inside a quoted newline.
    monkeypatch.setattr(reader, "CSV_BLOCK_BYTES", 256)
    monkeypatch.setattr(reader, "CHUNK_ROWS", 7)
    lines = ["uuid,identifier,source_id,title"]
    for i in range(300):
        title = '"two\nlines, here"' if i % 5 == 0 else "one line"
        lines.append(f"u{i},http://a/{i},{i},{title}")
    path = tmp_path / "in.csv"
    path.write_text("\n".join(lines) + "\n")
    rows = _rows(path)
    assert [row["uuid"] for row in rows] == [f"u{i}" for i in range(300)]
    assert rows[0]["title"] == "two\nlines, here"
    assert rows[1]["title"] == "one line"


def test_a_malformed_row_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "in.tsv"
    path.write_text("uuid\tidentifier\tsource_id\nu1\thttp://a/1\n")
    with pytest.raises(InputError, match="cannot read the input"):
        _rows(path)


def test_compressed_csv_is_read(tmp_path: Path) -> None:
    path = tmp_path / "in.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("uuid,identifier,source_id\nu1,http://a/1,1\n")
    assert [row["uuid"] for row in _rows(path)] == ["u1"]


def test_parquet_columns_of_any_type_become_strings(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    table = pa.table(
        {
            "uuid": ["u1", None],
            "identifier": pa.array(["http://a/1", "http://a/2"], pa.large_string()),
            "source_id": pa.array([12, 13], pa.int64()),
            "title": pa.array(["t", "t"]).dictionary_encode(),
            "unused": [1.5, 2.5],
        }
    )
    pq.write_table(table, path)
    assert _rows(path) == [
        {
            "uuid": "u1",
            "identifier": "http://a/1",
            "source_id": "12",
            "license": None,
            "source": None,
            "title": "t",
        },
        {
            "uuid": None,
            "identifier": "http://a/2",
            "source_id": "13",
            "license": None,
            "source": None,
            "title": "t",
        },
    ]


def test_large_inputs_arrive_in_bounded_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader, "CHUNK_ROWS", 1000)
    path = tmp_path / "in.parquet"
    frame = pl.DataFrame(
        {
            "uuid": [f"u{i}" for i in range(5000)],
            "identifier": "http://a/",
            "source_id": "1",
        }
    )
    frame.write_parquet(path, row_group_size=1000)
    sizes = [table.num_rows for table in open_input(path).chunks()]
    assert sum(sizes) == 5000
    assert max(sizes) <= 1000
