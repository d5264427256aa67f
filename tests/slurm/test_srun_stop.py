"""Under `srun --mpi=pmi2` (.ci/run starts a one-node Slurm cluster with slurm-up.sh):
`scancel` stops every rank gracefully within KillWait, and a worker task killed outright
is noticed by rank 0, which gives its partitions to the others."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from slurm_jobs import clear_orphaned_mpich_segments, job_state, slurm_is_up
from stop_harness import (
    assert_resumed_exactly_once,
    copy_of,
    prepare,
    start_fleet,
)
from support import assert_exactly_once, layout_of

from distdl.io.checkpoint import Checkpoint
from distdl.io.markers import completed_partitions
from distdl.testing.fleet_thread import FleetThread

pytestmark = [
    pytest.mark.slow,  # real Slurm jobs: CI runs them with the slow suite
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not slurm_is_up() and os.environ.get("DISTDL_REQUIRE_SLURM") != "1",
        reason="no running Slurm here (CI starts one with shared/tools/slurm-up.sh)",
    ),
]

SILENCE_LIMIT = 5.0


@pytest.fixture(scope="module")
def fleet() -> Iterator[FleetThread]:
    thread = start_fleet(seed=21)
    yield thread
    thread.stop()


@pytest.fixture(scope="module")
def planned(fleet: FleetThread, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("template")
    prepare(folder, fleet, rank_silence_limit=SILENCE_LIMIT)
    return folder


class Job:
    """``srun --mpi=pmi2 distdl run CONFIG`` with three tasks, in a batch job."""

    def __init__(self, config: Path) -> None:
        folder = config.parent
        self.output = folder / "job.out"
        script = folder / "job.sbatch"
        script.write_text(
            "#!/bin/bash\n"
            f"#SBATCH --ntasks=3\n#SBATCH --time=00:05:00\n#SBATCH --output={self.output}\n"
            f"cd {folder}\n"
            f"srun --mpi=pmi2 {sys.executable} -m distdl run {config}\n"
            "echo SRUN_EXIT=$?\n"
        )
        clear_orphaned_mpich_segments()
        submitted = subprocess.run(
            ["sbatch", "--parsable", str(script)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        self.id = submitted.stdout.strip().split(";")[0]

    def wait(self, seconds: float = 180) -> str:
        """Wait for the job to leave the queue; its output."""
        deadline = time.monotonic() + seconds
        while subprocess.run(
            ["squeue", "-h", "-j", self.id], capture_output=True, text=True, timeout=30
        ).stdout.strip():
            assert time.monotonic() < deadline, f"job {self.id} still queued or running"
            time.sleep(0.3)
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def task_pids(self) -> dict[int, int]:
        """Task number -> pid of the ranks (not their own children) on this node."""
        tasks: dict[int, tuple[int, int]] = {}
        for process in psutil.process_iter():
            try:
                env = process.environ()
                parent = process.ppid()
            except psutil.Error:
                continue
            if env.get("SLURM_JOB_ID") == self.id and "PMI_RANK" in env:
                tasks[process.pid] = (int(env["SLURM_PROCID"]), parent)
        return {task: pid for pid, (task, parent) in tasks.items() if parent not in tasks}


def _wait_for_partitions(config: Path, job: Job, done: int) -> None:
    images = layout_of(config).images
    deadline = time.monotonic() + 120
    while len(completed_partitions(images)) < done:
        assert time.monotonic() < deadline, (
            f"job {job.id} ({job_state(job.id)}) finished no partition in 120 s; "
            f"its output: {job.output.read_text(errors='replace')!r}"
        )
        time.sleep(0.05)


def _srun_exit(output: str) -> int:
    return int(output.split("SRUN_EXIT=")[1].split()[0])


def test_scancel_stops_every_rank_within_kill_wait_and_resume_finishes(
    planned: Path, fleet: FleetThread, tmp_path: Path
) -> None:
    config = copy_of(planned, tmp_path)
    since = time.monotonic()
    job = Job(config)
    _wait_for_partitions(config, job, done=2)
    subprocess.run(["scancel", job.id], check=True, timeout=30)
    output = job.wait()
    # Slurm sends SIGTERM, then SIGKILL KillWait seconds later: the line is printed only if
    # rank 0 finished before that.
    assert "Traceback" not in output, output
    stopped = [line for line in output.splitlines() if line.startswith("stopped:")]
    assert len(stopped) == 1, output
    assert "Exited with exit code 143" in output, output
    assert not Checkpoint.load(layout_of(config).checkpoint_file).is_complete("downloaded")
    assert_resumed_exactly_once(config, fleet, since)


def test_a_killed_worker_task_is_declared_dead_and_the_others_finish(
    planned: Path, tmp_path: Path
) -> None:
    # srun leaves the other tasks running (KillOnBadExit=0): the MPI world survives, and
    # rank 0 must notice the silence itself.
    config = copy_of(planned, tmp_path)
    job = Job(config)
    _wait_for_partitions(config, job, done=2)
    deadline = time.monotonic() + 30
    while len(tasks := job.task_pids()) < 3:
        assert time.monotonic() < deadline, tasks
        time.sleep(0.1)
    os.kill(tasks[1], signal.SIGKILL)
    killed_at = time.monotonic()
    output = job.wait()
    assert time.monotonic() - killed_at < 60
    assert _srun_exit(output) != 0, output
    assert "Traceback" not in output, output
    (line,) = [line for line in output.splitlines() if line.startswith("error:")]
    assert "rank 1 sent nothing" in line and "declared dead" in line, line
    assert "every partition is done" in line, line
    assert_exactly_once(config.parent / "urls.csv", layout_of(config))
