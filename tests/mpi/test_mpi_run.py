"""Real MPI ranks (mpiexec from the mpich wheel), real sockets, real SIGKILLs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from support import assert_exactly_once, layout_of, write_config

from distdl.io.markers import completed_partitions
from distdl.testing.fleet import HostSpec, max_requests_in_window
from distdl.testing.fleet_thread import FleetThread
from distdl.testing.fleet_workload import write_url_list

pytestmark = [pytest.mark.slow, pytest.mark.mpi, pytest.mark.timeout(300)]


def _distdl(*args: str) -> list[str]:
    return [sys.executable, "-m", "distdl", *args]


def _start(config: Path, ranks: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        _distdl("run", str(config), "--ranks", str(ranks)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so the whole job can be killed
    )


def _wait_for_progress(config: Path, process: subprocess.Popen[bytes], done: int) -> None:
    images = layout_of(config).images
    deadline = time.monotonic() + 120
    while len(completed_partitions(images)) < done:
        assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.05)


def _worker_rank_pids(process: subprocess.Popen[bytes]) -> dict[int, int]:
    """MPI rank -> pid for the python ranks under this job's mpiexec."""
    ranks: dict[int, int] = {}
    for child in psutil.Process(process.pid).children(recursive=True):
        try:
            env = child.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if "PMI_RANK" in env and "python" in child.name():
            ranks[int(env["PMI_RANK"])] = child.pid
    return ranks


def _fleet_and_config(tmp_path: Path, rows: dict[str, int]) -> tuple[FleetThread, Path]:
    hosts = [HostSpec(name, rate_limit=25, latency=0.01) for name in rows]
    thread = FleetThread(hosts, seed=2)
    fleet = thread.start()
    write_url_list(fleet, tmp_path / "urls.csv", rows, bad_rows=3)
    return thread, write_config(tmp_path, batch_size=10, default_rate_limit=25)


def test_three_ranks_download_everything_exactly_once_and_politely(tmp_path: Path) -> None:
    thread, config = _fleet_and_config(tmp_path, {"a": 80, "b": 30, "c": 20})
    fleet = thread.fleet
    budget = 25.0  # every host's budget; "a" (8 partitions) is shared by both workers
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "servers_profiles.csv").write_text(
        "server_name,rate_limit\n"
        + "".join(f"{fleet.server_name(name)},{budget}\n" for name in ("a", "b", "c"))
    )
    try:
        result = subprocess.run(
            _distdl("run", str(config), "--ranks", "3"), capture_output=True, text=True, timeout=240
        )
        records = thread.snapshot()
    finally:
        thread.stop()
    # Across both worker ranks, no host ever got more than its budget in a 1 s window, plus
    # the documented tolerance of one request per open lease (two here).
    for name in ("a", "b", "c"):
        times = [r.time for r in records if r.host == name and r.path.startswith("/img")]
        assert max_requests_in_window(times, 1.0) <= budget + 2, name
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dataset: 13/13 partitions done" in result.stdout
    assert_exactly_once(tmp_path / "urls.csv", layout_of(config))
    logs = sorted(p.name for p in layout_of(config).logs.glob("rank-*.log"))
    assert logs == ["rank-0.log", "rank-1.log", "rank-2.log"]


@pytest.mark.parametrize("victim", ["worker", "whole_job"])
def test_sigkill_mid_run_then_resume_is_exactly_once(tmp_path: Path, victim: str) -> None:
    thread, config = _fleet_and_config(tmp_path, {"a": 120, "b": 100, "c": 80})
    try:
        process = _start(config, ranks=3)
        _wait_for_progress(config, process, done=3)
        if victim == "worker":
            pids = _worker_rank_pids(process)
            assert set(pids) == {0, 1, 2}, pids
            os.kill(pids[1], signal.SIGKILL)
        else:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
        assert process.returncode != 0  # a dead rank never looks like success
        assert len(completed_partitions(layout_of(config).images)) < 30  # killed mid-run
        result = subprocess.run(
            _distdl("resume", str(config), "--ranks", "3"),
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:
        thread.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert_exactly_once(tmp_path / "urls.csv", layout_of(config))
