"""A graceful stop, with real processes: SIGINT, SIGTERM or SIGUSR1 to a running `distdl
run` (in-process, or the parent of launched MPI ranks) and Ctrl-C typed in a real terminal
(tmux). Each time: the signal's exit code, one ``stopped:`` line, no traceback, and after
`distdl resume` every uuid exactly once and no image requested twice successfully."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from stop_harness import (
    Ended,
    assert_resumed_exactly_once,
    assert_stopped,
    copy_of,
    observed_latencies,
    prepare,
    signal_and_wait,
    start_fleet,
    start_run,
    wait_for_partitions,
)
from support import layout_of

from distdl.io.markers import completed_partitions
from distdl.testing.fleet_thread import FleetThread

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def fleet() -> Iterator[FleetThread]:
    thread = start_fleet()
    yield thread
    thread.stop()


@pytest.fixture(scope="module")
def planned(fleet: FleetThread, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("template")
    prepare(folder, fleet)
    return folder


def test_kill_int_stops_a_one_rank_run_and_resume_finishes_exactly_once(
    planned: Path, fleet: FleetThread, tmp_path: Path
) -> None:
    # The bug this fixes: with --ranks 1, `kill -INT` was ignored and a Ctrl-C left the
    # process waiting forever for its worker. (SIGTERM at --ranks 1: tests/faults.)
    signum = signal.SIGINT
    config = copy_of(planned, tmp_path)
    assert not any(observed_latencies(config))
    since = time.monotonic()
    process = start_run(config, 1)
    wait_for_partitions(config, process, done=2)
    left = assert_stopped(signal_and_wait(process, signum), signum)
    assert left > 0
    assert all(observed_latencies(config))  # the learned rates were saved
    assert_resumed_exactly_once(config, fleet, since)


@pytest.mark.mpi
def test_the_parent_of_launched_ranks_forwards_sigterm_and_waits_for_them(
    planned: Path, fleet: FleetThread, tmp_path: Path
) -> None:
    config = copy_of(planned, tmp_path)
    since = time.monotonic()
    process = start_run(config, 3)
    wait_for_partitions(config, process, done=2)
    ended = signal_and_wait(process, signal.SIGTERM)
    assert_stopped(ended, signal.SIGTERM)
    assert "Press Ctrl-C again" not in ended.text
    assert all(observed_latencies(config))  # the learned rates were saved
    assert_resumed_exactly_once(config, fleet, since)


@pytest.mark.mpi
@pytest.mark.parametrize("after", [0.2, 0.5, 0.8])
def test_a_signal_while_the_ranks_start_their_stages_stops_them_all_at_once(
    planned: Path, fleet: FleetThread, tmp_path: Path, after: float
) -> None:
    """The signal reaches every rank while rank 0 takes the lock and plans and the others
    wait for it in a collective: none may leave on its own (the others would wait for it
    until the launcher kills them after the grace)."""
    config = copy_of(planned, tmp_path)
    since = time.monotonic()
    process = start_run(config, 3)
    rank0_log = layout_of(config).logs / "rank-0.log"
    deadline = time.monotonic() + 120
    while "MPI rank 0 of 3" not in (rank0_log.read_text() if rank0_log.exists() else ""):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the ranks never started"
        time.sleep(0.01)
    time.sleep(after)  # seconds into the ranks' lock, planning and waiting for rank 0
    ended = signal_and_wait(process, signal.SIGUSR1)
    assert_stopped(ended, signal.SIGUSR1)
    assert "did not stop within the grace" not in ended.text, ended.text
    assert_resumed_exactly_once(config, fleet, since)


def _tmux(*args: str) -> str:
    return subprocess.run(
        ["tmux", *args], capture_output=True, text=True, check=True, timeout=30
    ).stdout


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (apt-get install tmux)")
@pytest.mark.parametrize("ranks", [1, pytest.param(3, marks=pytest.mark.mpi)])
def test_ctrl_c_typed_once_in_a_terminal_stops_the_run(
    planned: Path, fleet: FleetThread, tmp_path: Path, ranks: int
) -> None:
    """As a user would: the run in the foreground of a terminal, one Ctrl-C."""
    config = copy_of(planned, tmp_path)
    since = time.monotonic()
    session = f"distdl-stop-{os.getpid()}-{tmp_path.name}"  # unique across xdist workers
    command = (
        f"{sys.executable} -m distdl run {config} --ranks {ranks}; echo DISTDL_EXIT=$?; sleep 600"
    )
    _tmux("new-session", "-d", "-s", session, "-x", "200", "-y", "50", command)
    try:
        images = layout_of(config).images
        deadline = time.monotonic() + 120
        while len(completed_partitions(images)) < 2:
            assert time.monotonic() < deadline, _tmux("capture-pane", "-p", "-t", session)
            time.sleep(0.05)
        sent = time.monotonic()
        _tmux("send-keys", "-t", session, "C-c")
        while "DISTDL_EXIT=" not in (screen := _tmux("capture-pane", "-p", "-t", session)):
            assert time.monotonic() - sent < 60, screen
            time.sleep(0.1)
        seconds = time.monotonic() - sent
        screen = _tmux("capture-pane", "-p", "-J", "-S", "-", "-t", session)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    code = int(screen.split("DISTDL_EXIT=")[1].split()[0])
    assert_stopped(Ended(code, screen, "", seconds), signal.SIGINT)
    assert "Press Ctrl-C again" not in screen
    assert_resumed_exactly_once(config, fleet, since)
