"""Per-server partitions of batch_size rows, in input order, whatever the memory budget."""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distdl.layout import URLS_FILE, partition_subpath
from distdl.plan import writer
from distdl.plan.partitioner import SPILL_FOLDER, Partitioner, ServerTotals
from distdl.plan.spill import SpilledPiece, SpillStore
from distdl.schema import URLS


def _rows(servers: list[str | None], start: int = 0) -> pl.DataFrame:
    n = len(servers)
    return pl.DataFrame(
        {
            "uuid": [f"u{start + i}" for i in range(n)],
            "identifier": [f"http://{s}/{start + i}" for i, s in enumerate(servers)],
            "source_id": [str(start + i) for i in range(n)],
            "license": [None] * n,
            "source": ["src"] * n,
            "title": [f"title {start + i}" for i in range(n)],
            "server_name": servers,
        },
        schema={name: pl.String for name in URLS.names},
    )


def _partition(root: Path, server: str, pid: int) -> list[str]:
    table = pq.read_table(root / partition_subpath(server, pid) / URLS_FILE)
    assert table.schema.equals(URLS)
    assert set(table.column("server_name").to_pylist()) == {server}
    return table.column("uuid").to_pylist()


def _written(root: Path) -> dict[tuple[str, int], list[str]]:
    found = {}
    for path in sorted(root.glob("server_name=*/partition_id=*/" + URLS_FILE)):
        table = pq.read_table(path)
        server = table.column("server_name")[0].as_py()
        pid = int(path.parent.name.split("=")[1])
        found[(server, pid)] = table.column("uuid").to_pylist()
    return found


def test_partitions_hold_batch_size_rows_in_input_order(tmp_path: Path) -> None:
    partitioner = Partitioner(tmp_path, batch_size=2)
    partitioner.add(_rows(["a", "b", "a", None, "a"], start=0))
    partitioner.add(_rows(["b", "a", "c"], start=5))
    totals = partitioner.finish()
    assert totals == {
        "a": ServerTotals(total_urls=4, total_batches=2),
        "b": ServerTotals(total_urls=2, total_batches=1),
        "c": ServerTotals(total_urls=1, total_batches=1),
    }
    assert _written(tmp_path) == {
        ("a", 0): ["u0", "u2"],
        ("a", 1): ["u4", "u6"],
        ("b", 0): ["u1", "u5"],
        ("c", 0): ["u7"],
    }
    assert _partition(tmp_path, "a", 1) == ["u4", "u6"]


@pytest.mark.parametrize("budget", [1, 2_000])
def test_spilling_never_changes_the_partitions(
    tmp_path: Path, budget: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    spills: list[int] = []
    original = SpillStore.spill

    def counting(store: SpillStore, tables: list[pa.Table]) -> list[SpilledPiece]:
        spills.append(len(tables))
        return original(store, tables)

    monkeypatch.setattr(SpillStore, "spill", counting)
    rng = random.Random(7)
    servers = [f"h{int(rng.paretovariate(1.0)) % 12}" for _ in range(3000)]
    chunks = [servers[i : i + rng.randint(1, 400)] for i in range(0, 3000, 250)]
    expected: dict[str, list[str]] = {}
    for spilled, root in ((False, tmp_path / "memory"), (True, tmp_path / "spilled")):
        partitioner = Partitioner(root, 7, memory_budget=budget if spilled else 1 << 40)
        start = 0
        for chunk in chunks:
            partitioner.add(_rows(chunk, start))
            start += len(chunk)
        partitioner.finish()
        assert not (root / SPILL_FOLDER).exists()
        assert bool(spills) == spilled
        if not spilled:
            expected = {f"{s}/{p}": u for (s, p), u in _written(root).items()}
        else:
            assert {f"{s}/{p}": u for (s, p), u in _written(root).items()} == expected
    flat = [uuid for _, uuids in sorted(expected.items()) for uuid in uuids]
    assert sorted(flat) == sorted(f"u{i}" for i in range(sum(map(len, chunks))))
    by_server: dict[str, list[int]] = {}
    for key in sorted(expected, key=lambda k: (k.split("/")[0], int(k.split("/")[1]))):
        uuids = expected[key]
        assert 1 <= len(uuids) <= 7
        by_server.setdefault(key.split("/")[0], []).extend(int(u[1:]) for u in uuids)
    for numbers in by_server.values():
        assert numbers == sorted(numbers)


def test_a_failed_write_surfaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(writer, "write_urls_parquet", broken)
    partitioner = Partitioner(tmp_path, batch_size=1)
    partitioner.add(_rows(["a"]))
    with pytest.raises(OSError, match="disk full"):
        partitioner.finish()


def test_abort_waits_for_writes_and_swallows_their_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(writer, "write_urls_parquet", broken)
    partitioner = Partitioner(tmp_path, batch_size=1, memory_budget=1)
    partitioner.add(_rows(["a", "b", "b"]))
    partitioner.abort()
    assert not (tmp_path / SPILL_FOLDER).exists()
