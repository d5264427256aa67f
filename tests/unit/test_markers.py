from __future__ import annotations

from pathlib import Path

from distdl.io.markers import (
    completed_partitions,
    is_completed,
    marker_path,
    read_marker,
    remove_marker,
    write_marker,
)
from distdl.layout import COMPLETED_MARKER, partition_subpath


def test_marker_round_trip(tmp_path: Path) -> None:
    partition = tmp_path / "p"
    assert not is_completed(partition)
    assert read_marker(partition) is None
    write_marker(partition, {"successes": 3, "errors": 1, "where": Path("/x")})
    assert is_completed(partition)
    assert marker_path(partition).name == COMPLETED_MARKER
    assert read_marker(partition) == {"successes": 3, "errors": 1, "where": "/x"}
    assert remove_marker(partition) is True
    assert not is_completed(partition)
    assert remove_marker(partition) is False


def test_empty_or_foreign_marker_still_means_done(tmp_path: Path) -> None:
    for name, content in [("empty", b""), ("text", b"done\n"), ("list", b"[1]"), ("bin", b"\xff")]:
        partition = tmp_path / name
        partition.mkdir()
        (partition / COMPLETED_MARKER).write_bytes(content)
        assert is_completed(partition)
        assert read_marker(partition) == {}


def test_completed_partitions_scans_markers_only(tmp_path: Path) -> None:
    images = tmp_path / "images"
    done = {("a.org", 0), ("a.org", 2), ("b.org:8080", 7), ("127.0.0.5:9000", 11)}
    pending = {("a.org", 1), ("c.org", 0)}
    for server, partition_id in done | pending:
        folder = images / partition_subpath(server, partition_id)
        folder.mkdir(parents=True)
        (folder / "successes.parquet").write_bytes(b"")
        if (server, partition_id) in done:
            write_marker(folder, {})
    # Noise the scan must ignore.
    (images / "server_name=a.org" / "partition_id=oops").mkdir()
    (images / "server_name=a.org" / "partition_id=oops" / COMPLETED_MARKER).write_text("")
    (images / "server_name=a.org" / "partition_id=9").write_text("a file, not a folder")
    (images / "stray").mkdir()
    (images / "server_name=c.org" / "partition_id=0" / COMPLETED_MARKER).mkdir()

    found = completed_partitions(images)
    assert found == {("a.org", 0), ("a.org", 2), ("b.org%3A8080", 7), ("127.0.0.5%3A9000", 11)}


def test_completed_partitions_of_missing_folder_is_empty(tmp_path: Path) -> None:
    assert completed_partitions(tmp_path / "nothing") == set()


def test_completed_partitions_many(tmp_path: Path) -> None:
    expected = set()
    for server_index in range(20):
        for partition_id in range(50):
            folder = tmp_path / f"server_name=s{server_index}" / f"partition_id={partition_id}"
            folder.mkdir(parents=True)
            if partition_id % 3 == 0:
                (folder / COMPLETED_MARKER).write_text("{}")
                expected.add((f"s{server_index}", partition_id))
    assert completed_partitions(tmp_path) == expected
