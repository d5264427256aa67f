"""One run per output: a second run, resume or reset on a busy output exits 9 naming the
holder and touches nothing; of runs started at the same instant exactly one proceeds."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_harness import assert_complete, copy_of, prepare, start_fleet
from support import layout_of

from distdl.io.lock import LOCK_FILE
from distdl.runtime.launch import find_mpiexec
from distdl.testing.fleet import HostSpec
from distdl.testing.fleet_thread import FleetThread

pytestmark = pytest.mark.timeout(600)

ROWS = {"slow": 90}  # six partitions
HOSTS = [HostSpec("slow", rate_limit=40)]


@pytest.fixture(scope="module")
def fleet_and_template(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[FleetThread, Path]]:
    thread = start_fleet(HOSTS, seed=11)
    folder = tmp_path_factory.mktemp("template")
    prepare(folder, thread, ROWS, budget=30)
    yield thread, folder
    thread.stop()


def _popen(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "distdl", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _start(config: Path, *extra: str) -> subprocess.Popen[str]:
    return _popen("run", config, *extra)


@contextlib.contextmanager
def _frozen(pid: int) -> Iterator[None]:
    """The holder stopped (SIGSTOP) meanwhile: alive, holding its lock, whatever the load."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _assert_refused(holder_pid: int, *commands: list[str | Path]) -> None:
    contenders = [_popen(*command) for command in commands]  # at once: the machine is slow
    for contender in contenders:
        _, stderr = contender.communicate(timeout=120)
        assert contender.returncode == 9, stderr
        assert f"pid {holder_pid}" in stderr and "in use by another distdl run" in stderr


def _wait_for_lock(config: Path, process: subprocess.Popen[str]) -> dict[str, object]:
    path = layout_of(config).root / LOCK_FILE
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never took the lock"
        try:
            record = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            time.sleep(0.05)
            continue
        return record


def _image_requests(thread: FleetThread, since: int = 0) -> Counter[str]:
    return Counter(r.path for r in thread.snapshot()[since:] if r.path.startswith("/img"))


def test_a_second_run_resume_or_reset_is_refused_while_the_first_runs(
    fleet_and_template: tuple[FleetThread, Path], tmp_path: Path
) -> None:
    thread, template = fleet_and_template
    config = copy_of(template, tmp_path)
    before = len(thread.snapshot())
    first = _start(config, "--ranks", "1")
    holder = _wait_for_lock(config, first)
    assert holder["pid"] == first.pid and "distdl run" in str(holder["command"])
    with _frozen(first.pid):
        _assert_refused(
            first.pid,
            ["run", config, "--ranks", "1"],
            ["resume", config, "--ranks", "1"],
            ["reset", config, "--stage", "downloaded", "--delete-images"],
        )
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert not (layout_of(config).root / LOCK_FILE).exists()
    requests = _image_requests(thread, before)
    assert len(requests) == sum(ROWS.values()) and set(requests.values()) == {1}
    assert_complete(config, ROWS)


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(3))
def test_of_runs_started_together_exactly_one_proceeds(
    fleet_and_template: tuple[FleetThread, Path], tmp_path: Path, round_: int
) -> None:
    thread, template = fleet_and_template
    config = copy_of(template, tmp_path)
    before = len(thread.snapshot())
    runs = [_start(config, "--ranks", "1") for _ in range(3)]
    outcomes = [(run.wait(timeout=300), run.communicate()[1]) for run in runs]
    # One proceeds; the others are refused, or (on a slow machine) start after it ended
    # and find nothing left to do. Never do two download at once:
    assert {code for code, _ in outcomes} <= {0, 9} and 0 in [code for code, _ in outcomes]
    assert all("in use by another distdl run" in err for code, err in outcomes if code == 9)
    requests = _image_requests(thread, before)
    assert len(requests) == sum(ROWS.values()) and set(requests.values()) == {1}
    assert_complete(config, ROWS)


@pytest.mark.slow
@pytest.mark.mpi
def test_launched_ranks_run_under_the_lock_and_a_second_mpi_run_is_refused(
    fleet_and_template: tuple[FleetThread, Path], tmp_path: Path
) -> None:
    _, template = fleet_and_template
    config = copy_of(template, tmp_path)
    first = _start(config, "--ranks", "3")
    holder = _wait_for_lock(config, first)
    assert holder["pid"] == first.pid  # the launcher holds it; its rank 0 borrows it
    with _frozen(first.pid):
        _assert_refused(first.pid, ["run", config, "--ranks", "3"])
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert_complete(config, ROWS)


@pytest.mark.slow
@pytest.mark.mpi
def test_under_a_user_launched_mpiexec_rank_0_takes_the_lock(
    fleet_and_template: tuple[FleetThread, Path], tmp_path: Path
) -> None:
    _, template = fleet_and_template
    config = copy_of(template, tmp_path)
    job = subprocess.Popen(
        [find_mpiexec(), "-n", "3", sys.executable, "-m", "distdl", "run", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    holder = _wait_for_lock(config, job)
    rank0 = int(str(holder["pid"]))
    assert rank0 != job.pid  # a rank, not mpiexec
    with _frozen(rank0):
        _assert_refused(rank0, ["resume", config, "--ranks", "1"])
    _, stderr = job.communicate(timeout=300)
    assert job.returncode == 0, stderr
    assert not (layout_of(config).root / LOCK_FILE).exists()
    assert_complete(config, ROWS)
