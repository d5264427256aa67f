"""Starting ranks: reuse the world a launcher gave us, or start local ranks with mpiexec."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from distdl.errors import LaunchError

LAUNCHED_ENV = "DISTDL_LAUNCHED"  # set in ranks we started, so they never launch again


def default_rank_count() -> int:
    """One coordinator plus one worker per core."""
    return (os.cpu_count() or 1) + 1


def find_mpiexec() -> str:
    """The mpiexec of the MPI mpi4py was built with: the venv's own (mpich wheel) first."""
    beside_python = Path(sys.executable).parent / "mpiexec"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("mpiexec") or shutil.which("mpirun")
    if found is None:
        raise LaunchError(
            'no mpiexec found: install the MPI extra (pip install -e ".[mpi]") or load your '
            "site MPI module; or run with --ranks 1"
        )
    return found


def was_launched_by_us() -> bool:
    return os.environ.get(LAUNCHED_ENV) == "1"


def launch_local_ranks(ranks: int, argv: list[str]) -> int:
    """Run ``python -m distdl <argv>`` as ``ranks`` MPI ranks on this machine; its exit code."""
    command = [find_mpiexec(), "-n", str(ranks), sys.executable, "-m", "distdl", *argv]
    env = dict(os.environ, **{LAUNCHED_ENV: "1"})
    try:
        completed = subprocess.run(command, env=env, check=False)
    except OSError as exc:
        raise LaunchError(f"could not start {command[0]}: {exc}") from exc
    return completed.returncode
