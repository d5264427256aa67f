"""`distdl submit` on the one-node Slurm cluster (.ci/run starts it with slurm-up.sh): a
chain of two jobs with a one-minute time limit against a simulated fleet whose hand-set
budgets make the download outlast the first job. The first job reads its end time from
Slurm and stops itself `stop_margin` seconds before it (the partitions under way publish
their settled rows), the second takes over and finishes; every row lands exactly once, no
image is fetched twice, and the second job prints the summary."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from slurm_jobs import clear_orphaned_mpich_segments, job_state, slurm_is_up
from stop_harness import images_served
from support import assert_exactly_once, layout_of, visible_temp_files, write_config

from distdl.testing.fleet import HostSpec
from distdl.testing.fleet_thread import FleetThread
from distdl.testing.fleet_workload import write_url_list

pytestmark = [
    pytest.mark.slow,
    pytest.mark.mpi,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not slurm_is_up() and os.environ.get("DISTDL_REQUIRE_SLURM") != "1",
        reason="no running Slurm here (CI starts one with shared/tools/slurm-up.sh)",
    ),
]

ROWS = {"a": 110, "b": 110, "c": 100}
BATCH_SIZE = 10
# Hand-set budgets, req/s: ~50 s of downloading, more than the first job's minute leaves
# after its start-up and stop margin, less than what the second job then has.
BUDGET = 2.0
STOP_MARGIN = 15  # s before the limit; the stop itself takes well under Slurm's KillWait
TASKS = 3


def _hand_set(config: Path, fleet: FleetThread) -> None:
    out = config.parent / "out"
    out.mkdir(exist_ok=True)
    rows = "".join(f"{fleet.fleet.server_name(name)},{BUDGET}\n" for name in ROWS)
    (out / "servers_profiles.csv").write_text("server_name,rate_limit\n" + rows)


def _config(folder: Path, fleet: FleetThread) -> Path:
    write_url_list(fleet.fleet, folder / "urls.csv", ROWS, sizes=((64, 48),), bad_rows=2)
    config = write_config(
        folder,
        batch_size=BATCH_SIZE,
        default_rate_limit=BUDGET,
        max_retries=1,
        num_downloads=2,
        max_nodes=1,
        workers_per_node=TASKS,
    )
    data = yaml.safe_load(config.read_text())
    # The pre-script shows what users' scripts see: the original tool's variables.
    pre = folder / "pre.sh"
    line = "$SLURM_JOB_ID ${DISTDL_AFTER_JOB:-first} $PATH_TO_OUTPUT $DOWNLOADER_BATCH_SIZE"
    pre.write_text(f'echo "{line}" >> {folder}/pre.txt\n')
    data["slurm"] = {"time": "1", "stop_margin": STOP_MARGIN, "pre_script": str(pre)}
    config.write_text(yaml.safe_dump(data))
    _hand_set(config, fleet)
    return config


def _wait_for_chain(jobs: list[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while subprocess.run(
        ["squeue", "-h", "-j", ",".join(jobs), "-t", "PD,R,CG,CF,S"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip():
        states = {job: job_state(job) for job in jobs}
        assert time.monotonic() < deadline, f"the chain is still queued or running: {states}"
        time.sleep(1.0)


def test_a_chain_of_two_jobs_stops_before_the_limit_and_finishes_exactly_once(
    tmp_path: Path,
) -> None:
    fleet = FleetThread([HostSpec(name, rate_limit=60, latency=0.05) for name in ROWS], seed=31)
    fleet.start()
    try:
        config = _config(tmp_path, fleet)
        clear_orphaned_mpich_segments()
        submitted = subprocess.run(
            [sys.executable, "-m", "distdl", "submit", str(config)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        jobs = re.findall(r"\d+", submitted.stdout.split(":")[1].splitlines()[0])
        assert len(jobs) == 2, submitted.stdout
        _wait_for_chain(jobs, seconds=230)
        records = fleet.snapshot()
    finally:
        fleet.stop()
    layout = layout_of(config)
    first, second = ((layout.logs / f"slurm-{job}.out").read_text(errors="replace") for job in jobs)
    # The first job stopped itself before its limit, gracefully: one stopped line, exit 143
    # from its own stop, never Slurm's time-limit kill.
    assert "Traceback" not in first + second, first + second
    assert "DUE TO TIME LIMIT" not in first, first
    assert "before the job's time limit" in first, first
    stopped = [line for line in first.splitlines() if line.startswith("stopped:")]
    assert len(stopped) == 1, first
    partitions = sum(-(-rows // BATCH_SIZE) for rows in ROWS.values())
    assert f"dataset: {partitions}/{partitions} partitions done" not in first
    # What it had settled was committed without a marker and carried over: the second job
    # fetched only the rest, so no image was served twice.
    logs = "".join(path.read_text() for path in layout.logs.glob("rank-*.log"))
    assert re.search(r"stopped with \d+ of \d+ rows settled", logs), "no partition carried over"
    twice = [key for key, n in images_served(records).items() if n > 1]
    assert not twice, f"images fetched again after the stop: {twice[:5]}"
    # The second (last) job finished and printed the summary.
    assert f"dataset: {partitions}/{partitions} partitions done" in second, second
    assert_exactly_once(tmp_path / "urls.csv", layout)
    assert not visible_temp_files(layout.root)
    seen = (tmp_path / "pre.txt").read_text().splitlines()
    # ... and the second job knows the job it follows (whose output lock it may take over).
    assert seen == [
        f"{jobs[0]} first {layout.root} {BATCH_SIZE}",
        f"{jobs[1]} {jobs[0]} {layout.root} {BATCH_SIZE}",
    ]
    # Every rank of both jobs was in one world of TASKS ranks.
    for job in jobs:
        for rank in range(TASKS):
            rank_log = (layout.logs / f"rank-{rank}.log").read_text()
            assert f"MPI rank {rank} of {TASKS} in Slurm job {job}" in rank_log, (job, rank)
