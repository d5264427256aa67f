from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distdl import schema
from distdl.io.atomic import remove_stale_temps
from distdl.io.markers import is_completed, read_marker, write_marker
from distdl.io.partition_writer import MiB, ParquetStreamWriter, PartitionOutput
from distdl.layout import COMPLETED_MARKER, ERRORS_FILE, SUCCESSES_FILE


def success_row(index: int, image: bytes = b"\xff\xd8jpeg") -> dict[str, object]:
    return {
        "uuid": f"u{index}",
        "source_id": f"s{index}",
        "identifier": f"http://127.0.0.1/{index}.jpg",
        "is_license_full": True,
        "license": "cc-by",
        "source": None,
        "title": "t",
        "original_size": [480, 640],
        "resized_size": [480, 640],
        "hashsum_original": "0" * 32,
        "hashsum_resized": "1" * 32,
        "image": image,
    }


def error_row(index: int) -> dict[str, object]:
    return {
        "uuid": f"e{index}",
        "identifier": f"http://127.0.0.1/{index}",
        "retry_count": 0,
        "error_code": 404,
        "error_msg": "not found",
    }


def visible_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def all_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.timeout(300)
def test_large_images_are_split_into_row_groups_by_bytes(tmp_path: Path) -> None:
    path = tmp_path / "successes.parquet"
    image = os.urandom(100 * 1024)
    writer = ParquetStreamWriter(path, schema.SUCCESSES, max_rows_per_group=100_000)
    for index in range(5000):
        writer.append(success_row(index, image))
    assert writer.commit() == 5000
    parquet = pq.ParquetFile(path)
    assert parquet.metadata.num_rows == 5000
    # 5000 × 100 KB ≈ 500 MB in ≤ 32 MiB groups: at least 15 groups, none holding 33 MiB.
    assert parquet.num_row_groups >= 15
    largest_group = max(parquet.metadata.row_group(i).num_rows for i in range(15))
    assert largest_group * len(image) <= 33 * MiB
    assert parquet.read_row_group(3).column("image")[0].as_py() == image


def test_rows_bound_groups_and_order_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "successes.parquet"
    with ParquetStreamWriter(path, schema.SUCCESSES, max_rows_per_group=10) as writer:
        for index in range(35):
            writer.append(success_row(index))
    parquet = pq.ParquetFile(path)
    assert parquet.num_row_groups == 4
    assert parquet.read().column("uuid").to_pylist() == [f"u{i}" for i in range(35)]


def test_file_is_invisible_until_commit(tmp_path: Path) -> None:
    path = tmp_path / "successes.parquet"
    writer = ParquetStreamWriter(path, schema.SUCCESSES, max_rows_per_group=2)
    for index in range(5):
        writer.append(success_row(index))
    assert writer.temp_path.exists()
    assert not path.exists()
    assert list(tmp_path.glob("*.parquet")) == []
    writer.commit()
    assert all_files(tmp_path) == ["successes.parquet"]


def test_empty_file_keeps_full_schema(tmp_path: Path) -> None:
    path = tmp_path / "errors.parquet"
    assert ParquetStreamWriter(path, schema.ERRORS).commit() == 0
    assert pq.read_schema(path).equals(schema.ERRORS)
    assert pq.read_table(path).num_rows == 0
    assert pl.read_parquet(path).columns == schema.ERRORS.names


def test_written_schema_is_exact_and_blobs_are_stored_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "successes.parquet"
    with ParquetStreamWriter(path, schema.SUCCESSES) as writer:
        writer.append(success_row(0))
    assert pq.read_schema(path).equals(schema.SUCCESSES)
    row_group = pq.ParquetFile(path).metadata.row_group(0)
    columns = {row_group.column(i).path_in_schema: row_group.column(i) for i in range(12)}
    assert columns["image"].compression == "UNCOMPRESSED"
    others = [column for path, column in columns.items() if path != "image"]
    assert {column.compression for column in others} == {"ZSTD"}  # list values too
    assert not columns["image"].has_dictionary_page
    assert columns["image"].statistics is None
    assert columns["uuid"].statistics is not None


def test_missing_nullable_columns_are_null_but_required_ones_refused(tmp_path: Path) -> None:
    path = tmp_path / "errors.parquet"
    with ParquetStreamWriter(path, schema.ERRORS) as writer:
        writer.append({"uuid": "a", "retry_count": 1, "error_code": -1})
        with pytest.raises(ValueError, match="'uuid' must not be null"):
            writer.append({"retry_count": 1, "error_code": -1})
        with pytest.raises(ValueError, match="unknown columns"):
            writer.append({**error_row(0), "typo": 1})
    assert pq.read_table(path).to_pylist() == [
        {"uuid": "a", "identifier": None, "retry_count": 1, "error_code": -1, "error_msg": None}
    ]


def test_append_table_writes_bounded_groups_after_buffered_rows(tmp_path: Path) -> None:
    path = tmp_path / "errors.parquet"
    table = pa.Table.from_pylist([error_row(i) for i in range(1, 26)], schema=schema.ERRORS)
    shuffled = table.select(list(reversed(table.column_names)))
    with ParquetStreamWriter(path, schema.ERRORS, max_rows_per_group=10) as writer:
        writer.append(error_row(0))
        writer.append_table(shuffled)
        assert writer.num_rows == 26
    parquet = pq.ParquetFile(path)
    assert parquet.num_row_groups == 4  # 1 buffered row, then 10 + 10 + 5
    assert parquet.read().column("uuid").to_pylist() == [f"e{i}" for i in range(26)]


def test_abort_and_exception_leave_nothing(tmp_path: Path) -> None:
    path = tmp_path / "successes.parquet"
    path.write_bytes(b"previous committed file")
    with (
        pytest.raises(RuntimeError, match="boom"),
        ParquetStreamWriter(path, schema.SUCCESSES, max_rows_per_group=1) as writer,
    ):
        writer.append(success_row(0))
        raise RuntimeError("boom")
    assert all_files(tmp_path) == ["successes.parquet"]
    assert path.read_bytes() == b"previous committed file"
    with pytest.raises(RuntimeError, match="aborted"):
        writer.append(success_row(1))


def test_commit_twice_is_refused(tmp_path: Path) -> None:
    writer = ParquetStreamWriter(tmp_path / "e.parquet", schema.ERRORS)
    writer.commit()
    with pytest.raises(RuntimeError, match="committed"):
        writer.commit()


def test_partition_output_writes_files_then_marker(tmp_path: Path) -> None:
    partition = tmp_path / "server_name=a.org" / "partition_id=3"
    with PartitionOutput(partition) as output:
        for index in range(4):
            output.add_success(success_row(index))
        output.add_error(error_row(9))
        assert not is_completed(partition)
        output.commit({"attempt": 2, "server_name": "a.org", "successes": 999})
    assert all_files(partition) == [COMPLETED_MARKER, ERRORS_FILE, SUCCESSES_FILE]
    marker = read_marker(partition)
    assert marker is not None
    assert marker["successes"] == 4 and marker["errors"] == 1 and marker["attempt"] == 2
    assert {"completed_at", "host", "elapsed_s", "server_name"} <= marker.keys()
    assert pq.read_table(partition / SUCCESSES_FILE).num_rows == 4
    assert pq.read_schema(partition / ERRORS_FILE).equals(schema.ERRORS)


def test_marker_is_written_only_after_both_files_are_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distdl.io import partition_writer

    seen: list[list[str]] = []

    def spy(partition_dir: Path, summary: dict[str, object]) -> None:
        seen.append(visible_files(partition_dir))
        write_marker(partition_dir, summary)

    monkeypatch.setattr(partition_writer, "write_marker", spy)
    output = PartitionOutput(tmp_path)
    output.add_success(success_row(0))
    output.commit({})
    assert seen == [[ERRORS_FILE, SUCCESSES_FILE]]


def test_failed_commit_leaves_partition_not_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_marker(tmp_path, {"attempt": 1})  # an earlier, finished attempt
    output = PartitionOutput(tmp_path)
    output.add_error(error_row(0))

    def failing_commit() -> int:
        raise OSError("disk full")

    monkeypatch.setattr(output.errors, "commit", failing_commit)
    with pytest.raises(OSError, match="disk full"):
        output.commit({"attempt": 2})
    assert not is_completed(tmp_path)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_partition_output_aborts_without_commit(tmp_path: Path) -> None:
    partition = tmp_path / "p"
    with PartitionOutput(partition, max_rows_per_group=1) as output:
        output.add_success(success_row(0))
        output.add_success(success_row(1))
    assert not partition.exists() or all_files(partition) == []


_KILLED_WRITER = """
import sys
from pathlib import Path
from distdl import schema
from distdl.io.partition_writer import ParquetStreamWriter

writer = ParquetStreamWriter(Path(sys.argv[1]), schema.ERRORS, max_rows_per_group=100)
index = 0
while True:
    writer.append({"uuid": str(index), "retry_count": 0, "error_code": 404})
    index += 1
    if index == 1000:
        print("flushed", flush=True)
"""


def test_sigkill_mid_write_keeps_old_file_and_leaves_only_a_hidden_temp(tmp_path: Path) -> None:
    path = tmp_path / "errors.parquet"
    with ParquetStreamWriter(path, schema.ERRORS) as writer:
        writer.append(error_row(0))
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "flushed\n"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert pq.read_table(path).column("uuid").to_pylist() == ["e0"]
    assert [p.name for p in tmp_path.glob("*.parquet")] == ["errors.parquet"]
    assert remove_stale_temps(tmp_path) == 1
    assert all_files(tmp_path) == ["errors.parquet"]


def _failing_writes(monkeypatch: pytest.MonkeyPatch, *, at: int, code: int = 28) -> None:
    """The ``at``-th row-group write (and every later one) fails as on a full disk."""
    real = pq.ParquetWriter.write_table
    calls = {"n": 0}

    def write_table(self: pq.ParquetWriter, table: pa.Table, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] >= at:
            raise OSError(code, "Error writing bytes to file. Detail: [errno] disk trouble")
        real(self, table, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", write_table)


def test_a_failed_write_names_the_file_keeps_its_rows_and_fails_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distdl.errors import OutputWriteError

    path = tmp_path / "successes.parquet"
    writer = ParquetStreamWriter(path, schema.SUCCESSES, max_rows_per_group=2)
    _failing_writes(monkeypatch, at=2)
    writer.append(success_row(0))
    writer.append(success_row(1))  # first group written
    writer.append(success_row(2))
    with pytest.raises(OutputWriteError) as failed:
        writer.append(success_row(3))
    assert str(failed.value) == f"cannot write {path}: No space left on device (ENOSPC)"
    assert writer.num_rows == 4  # the group that failed is still held, not dropped
    with pytest.raises(OutputWriteError):  # everything after the failure is refused too
        writer.append(success_row(4))
    with pytest.raises(OutputWriteError):
        writer.commit()
    assert all_files(tmp_path) == []  # no temp left, nothing published


def test_a_file_whose_close_fails_quietly_is_never_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyarrow's close after a failed write returns quietly, leaving no footer."""
    from distdl.errors import OutputWriteError

    monkeypatch.setattr(pq.ParquetWriter, "close", lambda self: None)
    writer = ParquetStreamWriter(tmp_path / "errors.parquet", schema.ERRORS)
    writer.append(error_row(0))
    with pytest.raises(OutputWriteError, match="does not read back"):
        writer.commit()
    assert all_files(tmp_path) == []


def test_a_write_error_inside_a_partition_leaves_no_marker_and_the_old_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distdl.errors import OutputWriteError

    with PartitionOutput(tmp_path, planned_rows=1) as first:
        first.add_error(error_row(0))
        first.commit({})
    old = {name: (tmp_path / name).read_bytes() for name in (ERRORS_FILE, SUCCESSES_FILE)}
    remove_marker_and_retry = PartitionOutput(tmp_path, planned_rows=3)
    remove_marker_and_retry.add_error(error_row(0))
    remove_marker_and_retry.add_success(success_row(1))
    remove_marker_and_retry.add_success(success_row(2))
    _failing_writes(monkeypatch, at=1, code=122)  # EDQUOT
    with pytest.raises(OutputWriteError, match=r"Disk quota exceeded \(EDQUOT\)"):
        remove_marker_and_retry.commit({})
    assert not is_completed(tmp_path)
    assert {name: (tmp_path / name).read_bytes() for name in old} == old
    assert all_files(tmp_path) == [ERRORS_FILE, SUCCESSES_FILE]  # no temp left either


def test_the_marker_is_refused_unless_the_rows_add_up_to_the_plan(tmp_path: Path) -> None:
    from distdl.io.partition_writer import IncompletePartitionError

    output = PartitionOutput(tmp_path, planned_rows=3)
    output.add_success(success_row(0))
    output.add_error(error_row(1))
    with pytest.raises(IncompletePartitionError, match="1 successes \\+ 1 errors, but 3"):
        output.commit({})
    assert not is_completed(tmp_path)
    complete = PartitionOutput(tmp_path, planned_rows=2)
    complete.add_success(success_row(0))
    complete.add_error(error_row(1))
    complete.commit({})
    marker = read_marker(tmp_path)
    assert marker is not None and marker["planned_rows"] == 2


_LIMITED_WRITER = """
import os, resource, sys
from pathlib import Path
from distdl.errors import OutputWriteError
from distdl.io.partition_writer import PartitionOutput
sys.path.insert(0, sys.argv[2])
from test_partition_writer import success_row

resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))
try:
    with PartitionOutput(Path(sys.argv[1]), planned_rows=8, max_rows_per_group=2) as output:
        for index in range(8):
            output.add_success(success_row(index, image=os.urandom(16_000)))
        output.commit({})
except OutputWriteError as exc:
    print(exc)
"""


def test_a_file_size_limit_is_a_named_error_and_never_a_marker(tmp_path: Path) -> None:
    partition = tmp_path / "partition_id=0"
    child = subprocess.run(
        [sys.executable, "-c", _LIMITED_WRITER, str(partition), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == (
        f"cannot write {partition / SUCCESSES_FILE}: File too large (EFBIG)"
    )
    assert not is_completed(partition) and all_files(partition) == []
