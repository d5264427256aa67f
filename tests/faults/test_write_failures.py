"""Write failures (a full disk or quota, a file too large, I/O errors, permissions) fail the
partition loudly, never leave a marker on bad data, and `distdl resume` finishes the job."""

from __future__ import annotations

import errno
import os
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
    prepare,
    start_fleet,
)
from support import layout_of

from distdl.testing.faults import WRITE_POINTS

pytestmark = pytest.mark.timeout(600)

ERRNOS = ("ENOSPC", "EDQUOT", "EFBIG", "EIO", "EACCES")


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fleet and a planned, profiled output to copy: every test starts from a copy."""
    thread = start_fleet()
    folder = tmp_path_factory.mktemp("template")
    prepare(folder, thread)
    yield folder
    thread.stop()


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _resume_and_check(config: Path, ranks: str = "1") -> None:
    resumed = distdl("resume", config, "--ranks", ranks)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_complete(config)


def _file_size_round(planned: Path, folder: Path, limit: int) -> bool:
    """One run under RLIMIT_FSIZE = ``limit`` bytes; True when a write failed."""
    config = copy_of(planned, folder)
    # --ranks 1: MPICH itself needs large shared-memory files.
    limited = distdl("run", config, "--ranks", "1", file_size_limit=limit)
    failed = limited.returncode != 0
    if failed:
        (line,) = _error_lines(limited.stderr)
        assert "cannot write " in line and "File too large (EFBIG)" in line, line
        assert ".parquet" in line
    assert_markers_truthful(layout_of(config))
    _resume_and_check(config)
    return failed


def test_a_file_size_limit_fails_the_run_by_name_and_resume_finishes(
    planned: Path, tmp_path: Path
) -> None:
    assert _file_size_round(planned, tmp_path, limit=10_000)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(12))
def test_file_size_limits_at_seeded_sizes(planned: Path, tmp_path: Path, seed: int) -> None:
    _file_size_round(planned, tmp_path, limit=random.Random(seed).randrange(5_000, 26_000))


def _injection(seed: int) -> tuple[str, str]:
    """A seeded fault: a write point, the hit it fires at (all later ones too, sometimes),
    and an errno. Every point is reached at least once per partition, so it fires."""
    rng = random.Random(seed)
    point = sorted(WRITE_POINTS)[seed % len(WRITE_POINTS)]
    repeat = "+" if rng.random() < 0.4 else ""
    code = ERRNOS[rng.randrange(len(ERRNOS))]
    return f"{point}@{rng.randint(1, 6)}{repeat}={code}", code


def _injection_round(planned: Path, folder: Path, seed: int, ranks: str = "1") -> None:
    fault, code = _injection(seed)
    config = copy_of(planned, folder)
    injected = distdl("run", config, "--ranks", ranks, env={"DISTDL_FAULT": fault})
    reason = f"{os.strerror(getattr(errno, code))} ({code})"
    assert "cannot write " in log_text(config) and reason in log_text(config), fault
    if injected.returncode != 0:  # a repeated fault outlasts the retries
        assert any(reason in line for line in _error_lines(injected.stderr)), injected.stderr
    assert_markers_truthful(layout_of(config))
    _resume_and_check(config, ranks)


def test_an_injected_write_error_fails_the_partition_not_a_row(
    planned: Path, tmp_path: Path
) -> None:
    _injection_round(planned, tmp_path, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, 30))
def test_injected_write_errors_at_seeded_points(planned: Path, tmp_path: Path, seed: int) -> None:
    _injection_round(planned, tmp_path, seed)


@pytest.mark.slow
@pytest.mark.mpi
@pytest.mark.parametrize("seed", [3, 8])
def test_injected_write_errors_under_mpi_ranks(planned: Path, tmp_path: Path, seed: int) -> None:
    _injection_round(planned, tmp_path, seed, ranks="3")
