"""A hung worker rank under real mpiexec (SIGSTOP) is declared dead, the others redo its
partitions, and woken up it writes nothing. (A killed rank, which MPICH answers by ending
the whole job, is named: tests/faults; a resume after it: test_mpi_run.py.)"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from stop_harness import (
    copy_of,
    prepare,
    start_fleet,
    start_run,
    wait_for_partitions,
)
from support import assert_exactly_once, layout_of

from distdl.io.checkpoint import Checkpoint
from distdl.runtime.launch import rank_processes
from distdl.testing.fleet_thread import FleetThread

pytestmark = [pytest.mark.slow, pytest.mark.mpi, pytest.mark.timeout(300)]

SILENCE_LIMIT = 5.0  # short for the test; the default is 30 s


@pytest.fixture(scope="module")
def fleet() -> Iterator[FleetThread]:
    thread = start_fleet(seed=12)
    yield thread
    thread.stop()


@pytest.fixture(scope="module")
def planned(fleet: FleetThread, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("template")
    prepare(folder, fleet, rank_silence_limit=SILENCE_LIMIT)
    return folder


def _ranks(process_pid: int, count: int) -> dict[int, int]:
    deadline = time.monotonic() + 60
    while len(found := rank_processes(process_pid)) < count:
        assert time.monotonic() < deadline, found
        time.sleep(0.1)
    return found


def _wait_for_log(path: Path, text: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not (path.exists() and text in path.read_text(errors="replace")):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {path}"
        time.sleep(0.1)


def test_a_hung_worker_is_declared_dead_and_the_others_finish_its_partitions(
    planned: Path, tmp_path: Path
) -> None:
    config = copy_of(planned, tmp_path)
    process = start_run(config, 3)
    wait_for_partitions(config, process, done=2)
    pids = _ranks(process.pid, 3)
    os.kill(pids[1], signal.SIGSTOP)
    stopped_at = time.monotonic()
    # Once rank 0 gave its leases away, the rank wakes up: it must write nothing more.
    layout = layout_of(config)
    _wait_for_log(layout.log_file(0), "declared dead", SILENCE_LIMIT + 30)
    os.kill(pids[1], signal.SIGCONT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 6, stdout + stderr
    assert time.monotonic() - stopped_at < 60
    assert "Traceback" not in stdout + stderr
    (line,) = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert "rank 1 " in line and "declared dead" in line, line
    assert "every partition is done" in line, line
    # The others did everything: no resume needed, and nothing was written twice.
    assert_exactly_once(config.parent / "urls.csv", layout)
    assert Checkpoint.load(layout.checkpoint_file).is_complete("downloaded")
    assert "writing nothing more" in layout.log_file(1).read_text(errors="replace")
