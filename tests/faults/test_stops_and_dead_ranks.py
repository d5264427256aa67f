"""Stops and dead ranks as injected faults: SIGTERM/SIGINT at named points (``DISTDL_FAULT``
``=term``/``=int``) and at seeded moments, SIGKILL and SIGSTOP of one worker rank at named
points (``DISTDL_FAULT_RANK``). After each: resume, then every input uuid exactly once,
every parquet file readable, no marker on bad data; after a graceful stop, also no image
served twice (what was fetched before the stop was kept)."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fault_harness import (
    assert_complete,
    assert_markers_truthful,
    copy_of,
    distdl,
    prepare,
    start_fleet,
)
from stop_harness import Ended, assert_stopped, images_served, signal_and_wait, start_run
from support import layout_of

from distdl.testing.fleet_thread import FleetThread

pytestmark = pytest.mark.timeout(600)

# Points every download reaches at least once per partition (six partitions here).
DOWNLOAD_POINTS = (
    "lease.granted",
    "lease.started",
    "lease.settled",
    "parquet.write",
    "parquet.close",
    "parquet.publish",
    "marker.write",
)
SILENCE_LIMIT = 5.0


@pytest.fixture(scope="module")
def fleet() -> Iterator[FleetThread]:
    thread = start_fleet()
    yield thread
    thread.stop()


@pytest.fixture(scope="module")
def planned(fleet: FleetThread, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("template")
    config = prepare(folder, fleet)
    data = yaml.safe_load(config.read_text())
    data["downloader_parameters"]["rank_silence_limit"] = SILENCE_LIMIT
    config.write_text(yaml.safe_dump(data))
    return folder


def _slowed(config: Path, fleet: FleetThread, budget: float) -> None:
    """Hand-set budgets low enough that the run lasts a few seconds."""
    lines = [f"{fleet.fleet.server_name(name)},{budget}" for name in ("a", "b", "c")]
    profiles = config.parent / "out" / "servers_profiles.csv"
    profiles.write_text("server_name,rate_limit\n" + "\n".join(lines) + "\n")


def _no_image_twice(fleet: FleetThread, since: float) -> None:
    records = [record for record in fleet.snapshot() if record.time >= since]
    twice = [key for key, n in images_served(records).items() if n > 1]
    assert not twice, f"images fetched again after the stop: {twice[:5]}"


def _resume(config: Path) -> None:
    resumed = distdl("resume", config, "--ranks", "1")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_complete(config)


def _stop_round(
    planned: Path, fleet: FleetThread, folder: Path, fault: str, ranks: str = "1"
) -> None:
    """A stop signal the run sends itself at a named point, then resume."""
    config = copy_of(planned, folder)
    since = time.monotonic()
    signum = signal.SIGINT if fault.endswith("=int") else signal.SIGTERM
    started = time.monotonic()
    stopped = distdl("run", config, "--ranks", ranks, env={"DISTDL_FAULT": fault})
    ended = Ended(stopped.returncode, stopped.stdout, stopped.stderr, 0.0)
    assert_stopped(ended, signum)
    assert time.monotonic() - started < 120
    assert_markers_truthful(layout_of(config))
    _resume(config)
    _no_image_twice(fleet, since)


def test_sigterm_in_the_middle_of_a_commit_then_resume(
    planned: Path, fleet: FleetThread, tmp_path: Path
) -> None:
    # The 2nd row-group write is the first partition's errors.parquet: the signal arrives
    # between its two files; the commit ends, then the stop.
    _stop_round(planned, fleet, tmp_path, "parquet.write@2=term")


@pytest.mark.mpi
def test_a_worker_killed_at_its_commit_ends_the_job_naming_it(
    planned: Path, tmp_path: Path
) -> None:
    config = copy_of(planned, tmp_path)
    env = {"DISTDL_FAULT": "lease.settled@2=kill", "DISTDL_FAULT_RANK": "1"}
    killed = distdl("run", config, "--ranks", "3", env=env)
    assert killed.returncode != 0
    assert "Traceback" not in killed.stdout + killed.stderr
    (line,) = [line for line in killed.stderr.splitlines() if line.startswith("error:")]
    assert "rank 1 ended first" in line and "distdl resume" in line, line
    assert_markers_truthful(layout_of(config))
    _resume(config)


@pytest.mark.slow
@pytest.mark.mpi
def test_a_worker_hung_at_its_commit_is_declared_dead_and_the_others_finish(
    planned: Path, tmp_path: Path
) -> None:
    config = copy_of(planned, tmp_path)
    env = {"DISTDL_FAULT": "lease.settled@1=stop", "DISTDL_FAULT_RANK": "2"}
    hung = distdl("run", config, "--ranks", "3", env=env)
    assert hung.returncode == 6, hung.stdout + hung.stderr
    (line,) = [line for line in hung.stderr.splitlines() if line.startswith("error:")]
    assert "rank 2 sent nothing" in line and "every partition is done" in line, line
    assert_complete(config)  # no resume needed


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(12))
def test_stop_signals_at_seeded_points_then_resume(
    planned: Path, fleet: FleetThread, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    point = DOWNLOAD_POINTS[seed % len(DOWNLOAD_POINTS)]
    action = rng.choice(["term", "int"])
    _stop_round(planned, fleet, tmp_path, f"{point}@{rng.randint(1, 5)}={action}")


@pytest.mark.slow
@pytest.mark.mpi
@pytest.mark.parametrize("seed", range(4))
def test_stop_signals_at_seeded_points_under_mpi_ranks(
    planned: Path, fleet: FleetThread, tmp_path: Path, seed: int
) -> None:
    # Every worker signals itself at its own n-th hit: each asks rank 0 to stop them all.
    rng = random.Random(100 + seed)
    point = DOWNLOAD_POINTS[2 + seed % (len(DOWNLOAD_POINTS) - 2)]  # worker-side points
    _stop_round(planned, fleet, tmp_path, f"{point}@{rng.randint(1, 2)}=term", ranks="3")


@pytest.mark.slow
@pytest.mark.mpi
@pytest.mark.parametrize("seed", range(6))
def test_a_worker_killed_at_seeded_points_then_resume(
    planned: Path, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(200 + seed)
    point = DOWNLOAD_POINTS[1 + seed % (len(DOWNLOAD_POINTS) - 1)]
    config = copy_of(planned, tmp_path)
    env = {"DISTDL_FAULT": f"{point}@{rng.randint(1, 3)}=kill", "DISTDL_FAULT_RANK": "1"}
    killed = distdl("run", config, "--ranks", "3", env=env)
    # Rank 1 may finish its share before its n-th hit: then nothing happened.
    if killed.returncode != 0:
        assert "rank 1 ended first" in killed.stderr, killed.stderr
    assert "Traceback" not in killed.stdout + killed.stderr
    assert_markers_truthful(layout_of(config))
    _resume(config)


@pytest.mark.slow
@pytest.mark.mpi  # some seeds launch three ranks
@pytest.mark.parametrize("seed", range(8))
def test_stop_signals_at_seeded_moments_then_resume(
    planned: Path, fleet: FleetThread, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(300 + seed)
    config = copy_of(planned, tmp_path)
    ranks = rng.choice([1, 3])
    signum = rng.choice([signal.SIGINT, signal.SIGTERM, signal.SIGUSR1])
    _slowed(config, fleet, budget=5.0)
    since = time.monotonic()
    process = start_run(config, ranks)
    time.sleep(rng.uniform(0.5, 6.0))  # planning is done: anywhere in profile or download
    ended = signal_and_wait(process, signum)
    if ended.code != 0:  # a run that finished before the signal has nothing to stop
        assert_stopped(ended, signum)
    assert_markers_truthful(layout_of(config))
    _resume(config)
    _no_image_twice(fleet, since)
