"""Duplicate uuids: hashed candidates on disk, then confirmed on the real values."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from distdl.plan.duplicates import UuidHashes, confirm_duplicates, hash_uuids


def _collect(folder: Path, chunks: list[list[str]]) -> pl.Series:
    hashes = UuidHashes(folder)
    for chunk in chunks:
        hashes.add(pl.Series(chunk, dtype=pl.String))
    return hashes.candidates()


def test_distinct_uuids_give_no_candidate_and_leave_no_file(tmp_path: Path) -> None:
    chunks = [[f"u{i}" for i in range(j, j + 1000)] for j in range(0, 5000, 1000)]
    assert len(_collect(tmp_path / "h", chunks)) == 0
    assert list((tmp_path / "h").iterdir()) == []


def test_duplicates_across_chunks_are_confirmed_with_examples(tmp_path: Path) -> None:
    chunks = [["a", "b", "c"], ["d", "b"], ["e", "c", "b"]]
    candidates = _collect(tmp_path / "h", chunks)
    assert sorted(candidates.to_list()) == sorted(hash_uuids(pl.Series(["b", "c"])).to_list())
    report = confirm_duplicates((pl.Series(c) for c in chunks), candidates)
    assert report is not None
    assert report.count == 2
    assert report.exact
    assert report.examples == ("b", "c")
    assert report.describe() == "2 uuid(s) appear more than once, e.g. 'b', 'c'"


def test_a_candidate_that_is_only_a_hash_collision_is_not_a_duplicate() -> None:
    # Pretend "x" and "y" collided: the second pass sees two different uuids.
    fake_candidates = hash_uuids(pl.Series(["x", "y"]))
    report = confirm_duplicates(iter([pl.Series(["x", "q"]), pl.Series(["y"])]), fake_candidates)
    assert report is None


def test_examples_are_capped_at_five(tmp_path: Path) -> None:
    uuids = [f"u{i}" for i in range(20)]
    chunks = [uuids, uuids]
    report = confirm_duplicates((pl.Series(c) for c in chunks), _collect(tmp_path / "h", chunks))
    assert report is not None
    assert report.count == 20
    assert len(report.examples) == 5


def test_beyond_the_confirmation_cap_the_count_is_an_estimate(tmp_path: Path) -> None:
    uuids = [f"u{i}" for i in range(50)]
    chunks = [uuids, uuids]
    candidates = _collect(tmp_path / "h", chunks)
    report = confirm_duplicates((pl.Series(c) for c in chunks), candidates, limit=10)
    assert report is not None
    assert not report.exact
    assert report.count == 50
    assert report.describe().startswith("about 50 uuid(s)")
