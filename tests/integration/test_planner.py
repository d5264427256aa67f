"""Stage "batched" end to end: input file in, partitions, servers table and rejects out."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distdl.config import Config, parse_config
from distdl.core import codes
from distdl.errors import InputError, StateError
from distdl.layout import COMPLETED_MARKER, ERRORS_FILE, URLS_FILE, Layout
from distdl.plan.partition_files import list_url_partitions, read_url_partition
from distdl.plan.planner import PlanSummary, plan_input, plan_source, read_servers_table
from distdl.plan.reader import open_input
from distdl.schema import ERRORS, URLS

INPUT_HEADER = ("uuid", "identifier", "source_id", "license", "source", "title")


def _load_generator() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "gen_input.py"
    spec = importlib.util.spec_from_file_location("gen_input", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _setup(tmp_path: Path, input_path: Path, batch_size: int) -> tuple[Config, Layout]:
    config = parse_config(
        {
            "path_to_input": str(input_path),
            "path_to_output": str(tmp_path / "out"),
            "downloader_parameters": {"batch_size": batch_size},
        },
        tmp_path,
    )
    return config, Layout.from_config(config)


def _write_parquet(path: Path, rows: list[tuple[str | None, ...]]) -> Path:
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in INPUT_HEADER]
    data = {
        name: pa.array(list(col), pa.string())
        for name, col in zip(INPUT_HEADER, columns, strict=True)
    }
    pq.write_table(pa.table(data), path)
    return path


def _rejects(layout: Layout) -> pa.Table:
    table = pq.read_table(layout.rejected_dir / ERRORS_FILE)
    assert table.schema.equals(ERRORS)
    return table


def _planned_uuids(layout: Layout) -> list[str]:
    uuids: list[str] = []
    for server, pid, n_urls in list_url_partitions(layout):
        table = read_url_partition(layout, server, pid)
        assert table.num_rows == n_urls
        uuids += table.column("uuid").to_pylist()
    return uuids


def _every_path(folder: Path) -> list[Path]:
    return [Path(parent) / name for parent, dirs, files in os.walk(folder) for name in dirs + files]


def test_the_plan_of_a_small_input_is_exact(tmp_path: Path) -> None:
    lines = [
        ",".join(INPUT_HEADER),
        "u01,http://a.org/1.jpg,1,CC0,src1,title 1",
        "u02,https://B.org/2.jpg,002,,,",
        "u03,http://A.ORG:80/3.jpg,3,,,",
        "u04,http://a.org:8080/4.jpg,4,,,",
        "u05,https://b.org:443/5.jpg,5,,,",
        'u06,http://a.org./6.jpg,6,,,"quoted, title"',
        "u07,ftp://a.org/7.jpg,7,,,",
        "u08,https://b.org/8.jpg,8,,,",
        "u09,HTTP://a.org:8080/9.jpg,9,,,",
        "u10, http://a.org/10.jpg ,10,,,",
    ]
    input_path = tmp_path / "in.csv"
    input_path.write_text("\n".join(lines) + "\n")
    config, layout = _setup(tmp_path, input_path, batch_size=2)

    summary = plan_input(config, layout)

    assert summary == PlanSummary(
        total_rows=10,
        planned_rows=9,
        rejected_rows=1,
        servers=3,
        partitions=5,
        ignored_servers=0,
        ignored_rows=0,
    )
    assert list_url_partitions(layout) == [
        ("a.org", 0, 2),
        ("a.org", 1, 2),
        ("a.org:8080", 0, 2),
        ("b.org", 0, 2),
        ("b.org", 1, 1),
    ]
    first = read_url_partition(layout, "a.org", 0)
    assert first.schema.names[len(URLS) :] == ["license_id", "is_license_full"]
    first = first.select(URLS.names)
    assert first.schema.equals(URLS)
    assert first.to_pylist() == [
        {
            "uuid": "u01",
            "identifier": "http://a.org/1.jpg",
            "source_id": "1",
            "license": "CC0",
            "source": "src1",
            "title": "title 1",
            "server_name": "a.org",
        },
        {
            "uuid": "u03",
            "identifier": "http://A.ORG:80/3.jpg",
            "source_id": "3",
            "license": None,
            "source": None,
            "title": None,
            "server_name": "a.org",
        },
    ]
    second = read_url_partition(layout, "a.org", 1)
    assert second.column("uuid").to_pylist() == ["u06", "u10"]
    assert second.column("title").to_pylist() == ["quoted, title", None]
    assert second.column("identifier").to_pylist() == ["http://a.org./6.jpg", "http://a.org/10.jpg"]
    assert read_url_partition(layout, "a.org:8080", 0).column("uuid").to_pylist() == ["u04", "u09"]
    assert read_url_partition(layout, "b.org", 0).column("source_id").to_pylist() == ["002", "5"]
    assert read_url_partition(layout, "b.org", 1).column("uuid").to_pylist() == ["u08"]
    assert (layout.url_partition_dir("b.org", 1) / URLS_FILE).is_file()

    servers = read_servers_table(layout)
    assert servers.to_dicts() == [
        {
            "server_name": "a.org",
            "safe_name": "a.org",
            "total_urls": 4,
            "total_batches": 2,
            "ignored": False,
        },
        {
            "server_name": "a.org:8080",
            "safe_name": "a.org%3A8080",
            "total_urls": 2,
            "total_batches": 1,
            "ignored": False,
        },
        {
            "server_name": "b.org",
            "safe_name": "b.org",
            "total_urls": 3,
            "total_batches": 2,
            "ignored": False,
        },
    ]
    assert _rejects(layout).to_pylist() == [
        {
            "uuid": "u07",
            "identifier": "ftp://a.org/7.jpg",
            "retry_count": 0,
            "error_code": codes.UNSUPPORTED_SCHEME,
            "error_msg": "unsupported scheme 'ftp'",
        }
    ]
    marker = layout.rejected_dir / COMPLETED_MARKER
    assert marker.is_file() and marker.stat().st_size == 0
    leftovers = [p.name for p in layout.urls.parent.iterdir() if p.name != layout.urls.name]
    assert sorted(leftovers) == ["DATASET.md", layout.images.name]  # the card, the rejects


BAD_ROWS = [
    ("empty", "", codes.INVALID_URL),
    ("spaces", "   ", codes.INVALID_URL),
    ("null", None, codes.INVALID_URL),
    ("ftp", "ftp://ftp.example.org/a.jpg", codes.UNSUPPORTED_SCHEME),
    ("file", "file:///etc/passwd", codes.UNSUPPORTED_SCHEME),
    ("javascript", "javascript:alert(1)", codes.UNSUPPORTED_SCHEME),
    ("data", "data:image/png;base64,iVBORw0KGgo=", codes.UNSUPPORTED_SCHEME),
    ("no-scheme", "example.org/a.jpg", codes.UNSUPPORTED_SCHEME),
    ("unparsable", "http://[::1/a.jpg", codes.INVALID_URL),
    ("no-host", "http:///a.jpg", codes.INVALID_URL),
    ("port-99999", "http://example.org:99999/a.jpg", codes.INVALID_URL),
    ("port-0", "http://example.org:0/a.jpg", codes.INVALID_URL),
    ("port-text", "http://example.org:http/a.jpg", codes.INVALID_URL),
    ("inner-space", "http://example.org/a b.jpg", codes.INVALID_URL),
    ("long-host", "http://" + "x" * 300 + "/a.jpg", codes.INVALID_URL),
]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_every_bad_row_becomes_exactly_one_error_row(tmp_path: Path, fmt: str) -> None:
    rows: list[tuple[str | None, ...]] = [
        (f"bad-{name}", identifier, "1", None, None, None) for name, identifier, _ in BAD_ROWS
    ]
    rows += [
        ("", "http://example.org/empty-uuid.jpg", "1", None, None, None),
        (None, "http://example.org/null-uuid.jpg", "1", None, None, None),
        ("  ", "ftp://example.org/blank-uuid-and-bad-url", "1", None, None, None),
        ("good", "http://example.org/good.jpg", "1", None, None, None),
    ]
    input_path = tmp_path / f"in.{fmt}"
    if fmt == "parquet":
        _write_parquet(input_path, rows)
    else:
        pl.DataFrame(rows, schema=list(INPUT_HEADER), orient="row").write_csv(input_path)
    config, layout = _setup(tmp_path, input_path, batch_size=3)

    summary = plan_input(config, layout)

    errors = _rejects(layout).to_pylist()
    assert summary.rejected_rows == len(errors) == len(BAD_ROWS) + 3
    assert summary.planned_rows == 1
    by_uuid = {row["uuid"]: row for row in errors if row["uuid"].startswith("bad-")}
    for name, identifier, code in BAD_ROWS:
        row = by_uuid[f"bad-{name}"]
        assert row["error_code"] == code, name
        assert row["retry_count"] == 0
        assert row["error_msg"]
        if fmt == "parquet":
            assert row["identifier"] == identifier
    keyless = [row for row in errors if not row["uuid"].startswith("bad-")]
    # An empty and a null uuid both come out as "" (a CSV cannot tell them apart anyway).
    assert [row["uuid"] for row in keyless] == ["", "", "  "]
    assert [row["error_code"] for row in keyless] == [
        codes.MISSING_UUID,
        codes.MISSING_UUID,
        codes.UNSUPPORTED_SCHEME,
    ]
    assert _planned_uuids(layout) == ["good"]


HOSTILE_HOSTS = [
    "%2e%2e",
    "..%2F..%2F..%2Ftmp",
    "a%2Fb",
    "%00",
    "_rejected",
    "x" * 63 + "." + "y" * 63 + "." + "z" * 63 + "." + "w" * 61,
    "bücher.example",
    "例え.テスト",
    "[::1]:8080",
    "...",
    "127.0.0.1:80",
    "UPPER.Example.ORG",
]


def test_hostile_host_names_cannot_escape_the_output_folder(tmp_path: Path) -> None:
    rows: list[tuple[str | None, ...]] = [
        (f"u{i}", f"http://{host}/x/../../y.jpg", "1", None, None, None)
        for i, host in enumerate(HOSTILE_HOSTS)
    ]
    input_path = _write_parquet(tmp_path / "in.parquet", rows)
    config, layout = _setup(tmp_path, input_path, batch_size=1)

    summary = plan_input(config, layout)

    urls_root = layout.urls.resolve()
    for path in _every_path(layout.urls):
        assert path.resolve().is_relative_to(urls_root), path
        assert not path.is_symlink()
    for path in _every_path(layout.images):
        assert path.resolve().is_relative_to(layout.images.resolve()), path
    planned = _planned_uuids(layout)
    rejected = _rejects(layout).column("uuid").to_pylist()
    assert sorted(planned + rejected) == sorted(f"u{i}" for i in range(len(HOSTILE_HOSTS)))
    assert summary.servers == len(read_servers_table(layout))
    too_long = [row for row in _rejects(layout).to_pylist() if row["uuid"] == "u5"]
    assert too_long[0]["error_msg"] == "host name too long to be stored as a folder name"


def test_missing_columns_are_reported_and_nothing_is_written(tmp_path: Path) -> None:
    input_path = tmp_path / "in.csv"
    input_path.write_text("uuid,url\nu1,http://a.org/1\n")
    config, layout = _setup(tmp_path, input_path, batch_size=2)
    with pytest.raises(InputError, match=r"identifier, source_id.*columns found: uuid, url"):
        plan_input(config, layout)
    assert not layout.urls.exists()


def test_duplicate_uuids_fail_the_plan_and_keep_the_previous_one(tmp_path: Path) -> None:
    input_path = tmp_path / "in.csv"
    input_path.write_text("uuid,identifier,source_id\nu1,http://a.org/1,1\nu2,http://a.org/2,2\n")
    config, layout = _setup(tmp_path, input_path, batch_size=2)
    plan_input(config, layout)
    before = sorted(p.relative_to(layout.root) for p in _every_path(layout.root))
    rows = ["uuid,identifier,source_id"] + [f"u{i % 7},http://a.org/{i},{i}" for i in range(20)]
    input_path.write_text("\n".join(rows) + "\nbad,ftp://x/y,1\n")

    with pytest.raises(InputError) as caught:
        plan_input(config, layout)

    assert "7 uuid(s) appear more than once, e.g. 'u0', 'u1', 'u2', 'u3', 'u4'" in str(caught.value)
    after = sorted(p.relative_to(layout.root) for p in _every_path(layout.root))
    assert after == before
    assert _planned_uuids(layout) == ["u1", "u2"]
    assert _rejects(layout).num_rows == 0


@pytest.mark.parametrize("header", ["server_name", "ServerName"])
def test_ignored_servers_are_planned_but_not_scheduled(tmp_path: Path, header: str) -> None:
    input_path = tmp_path / "in.csv"
    rows = ["uuid,identifier,source_id"] + [f"u{i},http://h{i % 3}.org/{i},{i}" for i in range(9)]
    input_path.write_text("\n".join(rows) + "\n")
    config, layout = _setup(tmp_path, input_path, batch_size=2)
    layout.root.mkdir(parents=True)
    layout.ignored_table.write_text(f"{header}\nH1.org\nnot-in-input.org\n")

    summary = plan_input(config, layout)

    assert summary.ignored_servers == 1
    assert summary.ignored_rows == 3
    assert summary.servers == 3
    assert summary.partitions == 6
    servers = read_servers_table(layout)
    assert dict(zip(servers["server_name"], servers["ignored"], strict=True)) == {
        "h0.org": False,
        "h1.org": True,
        "h2.org": False,
    }
    assert {server for server, _, _ in list_url_partitions(layout)} == {"h0.org", "h2.org"}
    assert read_url_partition(layout, "h1.org", 1).column("uuid").to_pylist() == ["u7"]


def test_every_spelling_of_a_server_lands_in_its_one_partition_set(tmp_path: Path) -> None:
    spellings = {
        "xn--bcher-kva.de": ["Bücher.de", "BÜCHER.DE.", "xn--bcher-kva.de:80", "XN--BCHER-KVA.de"],
        "127.0.1.5": ["127.0.1.5", "2130706693", "0x7f.0.1.5", "0177.0.1.5", "127.0.1.5."],
        "a.org": ["a.org", "ａ.org", "Ａ．ＯＲＧ", "a.org:443"],
    }
    urls = [
        f"{scheme}://{host}/x.jpg"
        for hosts in spellings.values()
        for host in hosts
        for scheme in ("http", "https")
    ]
    rows = ["uuid,identifier,source_id"] + [f"u{i},{url},{i}" for i, url in enumerate(urls)]
    input_path = tmp_path / "in.csv"
    input_path.write_text("\n".join(rows) + "\n")
    config, layout = _setup(tmp_path, input_path, batch_size=100)
    layout.root.mkdir(parents=True)
    layout.ignored_table.write_text("server_name\nBücher.de\n")

    summary = plan_input(config, layout)

    assert summary.rejected_rows == 0
    servers = read_servers_table(layout)
    totals = dict(zip(servers["server_name"], servers["total_urls"], strict=True))
    assert totals == {key: 2 * len(hosts) for key, hosts in spellings.items()}
    ignored = dict(zip(servers["server_name"], servers["ignored"], strict=True))
    assert ignored == {"xn--bcher-kva.de": True, "127.0.1.5": False, "a.org": False}
    assert {server for server, _, _ in list_url_partitions(layout)} == {"127.0.1.5", "a.org"}


def test_a_malformed_ignored_table_is_an_input_error(tmp_path: Path) -> None:
    input_path = tmp_path / "in.csv"
    input_path.write_text("uuid,identifier,source_id\nu1,http://a.org/1,1\n")
    config, layout = _setup(tmp_path, input_path, batch_size=2)
    layout.root.mkdir(parents=True)
    layout.ignored_table.write_text("host\na.org\n")
    with pytest.raises(InputError, match="columns found: host"):
        plan_input(config, layout)


def test_tsv_with_stray_quotes_is_planned_verbatim(tmp_path: Path) -> None:
    input_path = tmp_path / "multimedia.txt"
    lines = [
        "gbifID\tuuid\tidentifier\tsource_id\ttitle\tlicense",
        '1\tu1\thttp://a.org/1.jpg\t1\tSpecimen "A\tCC0',
        '2\tu2\thttp://a.org/2.jpg\t2\t"B" side, recto\t',
        "3\tu3\thttp://a.org/3.jpg\t3\t\t",
    ]
    input_path.write_text("\n".join(lines) + "\n")
    config, layout = _setup(tmp_path, input_path, batch_size=10)
    plan_input(config, layout)
    table = read_url_partition(layout, "a.org", 0)
    assert table.column("title").to_pylist() == ['Specimen "A', '"B" side, recto', None]
    assert table.column("license").to_pylist() == ["CC0", None, None]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet"])
def test_every_input_row_is_planned_or_rejected_exactly_once(tmp_path: Path, fmt: str) -> None:
    generator = _load_generator()
    input_path = tmp_path / f"in.{fmt}"
    generator.write_synthetic_input(input_path, 20_000, n_hosts=40, bad_fraction=0.02, fmt=fmt)
    _, layout = _setup(tmp_path, input_path, batch_size=97)

    # A tiny memory budget makes the partitioner spill, which must change nothing.
    summary = plan_source(open_input(input_path), layout, 97, memory_budget=64 * 1024)

    expected = pl.read_parquet(input_path) if fmt == "parquet" else None
    if expected is None:
        separator = "\t" if fmt == "tsv" else ","
        expected = pl.read_csv(
            input_path,
            separator=separator,
            quote_char=None if fmt == "tsv" else '"',
            infer_schema=False,
        )
    input_uuids = expected["uuid"].fill_null("").to_list()
    planned = _planned_uuids(layout)
    rejected = _rejects(layout).column("uuid").to_pylist()
    assert sorted(planned + rejected) == sorted(input_uuids)
    assert len(set(planned)) == len(planned)
    assert summary.total_rows == 20_000
    assert summary.planned_rows == len(planned)
    assert summary.rejected_rows == len(rejected) > 0
    servers = read_servers_table(layout)
    assert servers["total_urls"].sum() == len(planned)
    assert not [p for p in _every_path(layout.root) if "tmp" in p.name or p.name.startswith("_")]
    # Within a server, partitions follow the input order.
    position = {uuid: i for i, uuid in enumerate(input_uuids)}
    for server in servers["server_name"]:
        pids = [pid for s, pid, _ in list_url_partitions(layout) if s == server]
        order = [
            position[u]
            for pid in pids
            for u in read_url_partition(layout, server, pid).column("uuid").to_pylist()
        ]
        assert order == sorted(order)


def test_replanning_replaces_the_plan_and_cleans_crashed_leftovers(tmp_path: Path) -> None:
    input_path = tmp_path / "in.csv"
    input_path.write_text("uuid,identifier,source_id\nu1,http://a.org/1,1\n")
    config, layout = _setup(tmp_path, input_path, batch_size=2)
    plan_input(config, layout)
    crashed = layout.urls.with_name(f"{layout.urls.name}.tmp-999999999")
    (crashed / "server_name=x").mkdir(parents=True)
    input_path.write_text("uuid,identifier,source_id\nu2,http://b.org/2,2\n")

    plan_input(config, layout)

    assert not crashed.exists()
    assert _planned_uuids(layout) == ["u2"]
    assert sorted(os.listdir(layout.urls)) == [
        "filtered.json",
        "server_name=b.org",
        "servers.parquet",
    ]


def test_a_urls_folder_linked_outside_the_output_is_never_replaced(tmp_path: Path) -> None:
    input_path = tmp_path / "in.csv"
    input_path.write_text("uuid,identifier,source_id\nu1,http://a.org/1,1\n")
    config, layout = _setup(tmp_path, input_path, batch_size=2)
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    layout.root.mkdir(parents=True)
    layout.urls.symlink_to(outside, target_is_directory=True)

    with pytest.raises(StateError):
        plan_input(config, layout)

    assert (outside / "keep.txt").read_text() == "keep"
    assert layout.urls.is_symlink()


def test_reading_a_plan_that_does_not_exist_is_a_state_error(tmp_path: Path) -> None:
    _, layout = _setup(tmp_path, tmp_path / "in.csv", batch_size=2)
    with pytest.raises(StateError):
        read_servers_table(layout)
    with pytest.raises(StateError):
        list_url_partitions(layout)
    with pytest.raises(StateError):
        read_url_partition(layout, "a.org", 0)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_an_input_without_rows_gives_an_empty_plan(tmp_path: Path, fmt: str) -> None:
    input_path = tmp_path / f"in.{fmt}"
    if fmt == "parquet":
        _write_parquet(input_path, [])
    else:
        input_path.write_text(",".join(INPUT_HEADER) + "\n")
    config, layout = _setup(tmp_path, input_path, batch_size=2)

    summary = plan_input(config, layout)

    assert summary == PlanSummary(0, 0, 0, 0, 0, 0, 0)
    assert list_url_partitions(layout) == []
    assert read_servers_table(layout).columns == [
        "server_name",
        "safe_name",
        "total_urls",
        "total_batches",
        "ignored",
    ]
    assert _rejects(layout).num_rows == 0
    assert (layout.rejected_dir / COMPLETED_MARKER).is_file()
