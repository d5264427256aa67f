"""Whatever an earlier crash left behind — hidden temporary files, parquet files without a
footer, files renamed into place without their marker, the dead run's lock — `distdl resume`
cleans up or refetches, and ends exactly once."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_harness import (
    assert_complete,
    assert_markers_truthful,
    copy_of,
    distdl,
    log_text,
    plant_dead_lock,
    prepare,
    start_fleet,
)
from support import layout_of

from distdl.io.atomic import temp_path_for
from distdl.io.checkpoint import Checkpoint
from distdl.io.markers import partition_dirs, remove_marker
from distdl.layout import ERRORS_FILE, SUCCESSES_FILE

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    thread = start_fleet(seed=7)
    folder = tmp_path_factory.mktemp("template")
    prepare(folder, thread)
    yield folder
    thread.stop()


def _downloaded_partitions(config: Path) -> list[Path]:
    layout = layout_of(config)
    return [
        folder
        for _, _, folder in sorted(partition_dirs(layout.images))
        if folder != layout.rejected_dir
    ]


def test_resume_cleans_up_what_a_crash_left(planned: Path, tmp_path: Path) -> None:
    config = copy_of(planned, tmp_path)
    first = distdl("run", config, "--ranks", "1")
    assert first.returncode == 0, first.stderr
    layout = layout_of(config)
    a, b, c, d, *_ = _downloaded_partitions(config)
    # a: killed while writing: hidden temporaries, no marker.
    remove_marker(a)
    temp_path_for(a / SUCCESSES_FILE).write_bytes(b"PAR1 half a row group")
    temp_path_for(a / ERRORS_FILE).write_bytes(b"")
    # b: a successes.parquet cut short (no footer), as the old writer left on a full disk.
    remove_marker(b)
    whole = (b / SUCCESSES_FILE).read_bytes()
    (b / SUCCESSES_FILE).write_bytes(whole[: len(whole) // 2])
    # c: both files renamed into place, killed before the marker.
    remove_marker(c)
    # d: errors.parquet is garbage, successes whole, no marker.
    remove_marker(d)
    (d / ERRORS_FILE).write_bytes(b"not parquet at all")
    Checkpoint.load(layout.checkpoint_file).invalidate_from("downloaded")
    plant_dead_lock(layout.root)  # the crashed run's lock: its process is gone

    resumed = distdl("resume", config, "--ranks", "1")
    assert resumed.returncode == 0, resumed.stderr
    assert "took over the stale lock" in resumed.stderr
    assert "is not a whole parquet file" in log_text(config)  # b and d: refetched
    assert_complete(config)


def _kill_round(planned: Path, folder: Path, fault: str) -> None:
    """SIGKILL at a write point (``DISTDL_FAULT``), then resume."""
    config = copy_of(planned, folder)
    killed = distdl("run", config, "--ranks", "1", env={"DISTDL_FAULT": fault})
    assert killed.returncode == -9, (fault, killed.stderr)
    layout = layout_of(config)
    assert (layout.root / "distdl.lock").exists()  # left by the dead run
    assert_markers_truthful(layout)
    resumed = distdl("resume", config, "--ranks", "1")
    assert resumed.returncode == 0, resumed.stderr
    assert "took over the stale lock" in resumed.stderr
    assert_complete(config)


def test_a_kill_between_the_two_renames_of_a_commit_then_resume(
    planned: Path, tmp_path: Path
) -> None:
    # The 2nd publish is the first partition's errors.parquet: its successes are in place.
    _kill_round(planned, tmp_path, "parquet.publish@2=kill")


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(16))
def test_kills_at_seeded_write_points_then_resume(planned: Path, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    # Six partitions: every point is reached at least six times, so the kill happens.
    point = ("parquet.write", "parquet.close", "parquet.publish", "marker.write")[seed % 4]
    _kill_round(planned, tmp_path, f"{point}@{rng.randint(1, 6)}=kill")
