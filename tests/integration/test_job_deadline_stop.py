"""A run inside a Slurm job stops itself `slurm.stop_margin` seconds before the job's end
time, through the ordinary graceful stop: here with no Slurm at all, a fake `squeue` on the
PATH telling the end time of job `SLURM_JOB_ID`. Then `distdl resume` finishes it exactly
once without fetching an image twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from stop_harness import Ended, assert_resumed_exactly_once, assert_stopped, prepare, start_fleet

from distdl.testing.fleet_thread import FleetThread

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

MARGIN = 1000.0  # the fake job ends MARGIN + LEAD seconds after it starts
LEAD = 4.0


@pytest.fixture(scope="module")
def fleet() -> Iterator[FleetThread]:
    thread = start_fleet(seed=41)
    yield thread
    thread.stop()


def _fake_slurm(folder: Path) -> dict[str, str]:
    """An environment whose squeue says job 4242 ends MARGIN + LEAD seconds from now, and
    whose scontrol knows nothing (the grace falls back to its default)."""
    end = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() + MARGIN + LEAD))
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    (bin_dir / "squeue").write_text(f"#!/bin/bash\necho {end}\n")
    (bin_dir / "scontrol").write_text("#!/bin/bash\nexit 1\n")
    for program in bin_dir.iterdir():
        program.chmod(0o755)
    return dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", SLURM_JOB_ID="4242")


@pytest.mark.parametrize("ranks", [1, 3])
def test_a_job_stops_itself_before_its_end_time_and_resume_finishes(
    fleet: FleetThread, tmp_path: Path, ranks: int
) -> None:
    config = prepare(tmp_path, fleet)
    data = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**data, "slurm": {"stop_margin": MARGIN}}))
    since = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "distdl", "run", str(config), "--ranks", str(ranks)],
        capture_output=True,
        text=True,
        timeout=240,
        env=_fake_slurm(tmp_path),
    )
    ended = Ended(run.returncode, run.stdout, run.stderr, time.monotonic() - since)
    left = assert_stopped(ended, signal.SIGUSR1)
    assert left > 0, ended.text
    assert "before the job's time limit" in ended.text, ended.text
    assert_resumed_exactly_once(config, fleet, since)
