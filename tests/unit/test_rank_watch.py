"""The launcher names the rank that ended first, even one that ended before it watched."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from distdl.runtime import launch

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="pidfds are Linux-only"),
]


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.kill()
        process.wait()


def _watch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pids: dict[int, int]
) -> launch._RankWatch:
    monkeypatch.setattr(launch, "rank_processes", lambda launcher_pid: dict(pids))
    mpiexec = subprocess.Popen([sys.executable, "-c", "pass"])  # stands in for mpiexec
    mpiexec.wait()
    watch = launch._RankWatch(mpiexec, len(pids), tmp_path)
    watch._find_ranks()
    return watch


def test_a_rank_gone_before_the_watch_began_is_the_one_that_ended_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    sleepers += [_sleeper(), _sleeper()]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # reaped: its pid names no process any more
    pids = {0: sleepers[0].pid, 1: dead.pid, 2: sleepers[1].pid}
    watch = _watch(monkeypatch, tmp_path, pids)
    try:
        assert watch.first_ended == [1]
        sleepers[1].kill()  # mpiexec ending the others afterwards changes nothing
        sleepers[1].wait()
        watch._watch_endings(2.0)
        assert watch.first_ended == [1]
    finally:
        watch.close()


def test_the_first_rank_to_end_while_watched_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    sleepers += [_sleeper(), _sleeper(), _sleeper()]
    watch = _watch(monkeypatch, tmp_path, {i: p.pid for i, p in enumerate(sleepers)})
    try:
        assert watch.first_ended == []
        sleepers[2].kill()
        sleepers[2].wait()
        watch._watch_endings(2.0)
        assert watch.first_ended == [2]
    finally:
        watch.close()
