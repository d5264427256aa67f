"""What the Slurm tests share: is a cluster up, and a node cleared of MPICH's orphaned
shared-memory segments before a job starts.

Why the segments matter: under `srun --mpi=pmi2`, MPICH names a node's shared-memory
segment after a hash of the PMI key-value space, which Slurm names after the job and step
ids, and a rank killed outright leaves the file in /dev/shm. slurm-up.sh starts a cluster
with a fresh state, so job ids start again at 1: a later job with a reused id opens the
stale segment, whose ready flags are already set, and every rank spins in MPI_Init for ever
(seen in CI: the second job of a test file hung with no output). Real clusters do not reuse
job ids, so this is the test bench's problem, handled here and not in distdl.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

SHM_FOLDER = Path("/dev/shm")
MPICH_SEGMENTS = ("mpich_shm_*", "mpich_vci_*")
# A segment younger than this may belong to ranks that created it and have not mapped it yet.
MIN_AGE_SECONDS = 60.0


def slurm_is_up() -> bool:
    if shutil.which("sbatch") is None or shutil.which("scontrol") is None:
        return False
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "is UP" in ping.stdout


def mapped_shm_files(proc: Path = Path("/proc")) -> set[Path]:
    """Every /dev/shm file some readable process has mapped."""
    mapped: set[Path] = set()
    for maps in proc.glob("[0-9]*/maps"):
        try:
            lines = maps.read_text(errors="replace").splitlines()
        except OSError:
            continue  # the process ended, or is another user's
        for line in lines:
            fields = line.split(maxsplit=5)
            path = fields[5].strip().removesuffix(" (deleted)") if len(fields) == 6 else ""
            if path.startswith(f"{SHM_FOLDER}/"):
                mapped.add(Path(path))
    return mapped


def orphaned_mpich_segments(
    folder: Path = SHM_FOLDER,
    mapped: set[Path] | None = None,
    now: float | None = None,
    min_age: float = MIN_AGE_SECONDS,
) -> list[Path]:
    """MPICH segments that no process maps and that are older than `min_age` seconds."""
    in_use = mapped_shm_files() if mapped is None else mapped
    moment = time.time() if now is None else now
    orphans: list[Path] = []
    for pattern in MPICH_SEGMENTS:
        for segment in folder.glob(pattern):
            try:
                age = moment - segment.stat().st_mtime
            except FileNotFoundError:
                continue
            if segment not in in_use and age > min_age:
                orphans.append(segment)
    return sorted(orphans)


def clear_orphaned_mpich_segments() -> int:
    """Remove what `orphaned_mpich_segments` finds; how many went."""
    removed = 0
    for segment in orphaned_mpich_segments():
        try:
            os.unlink(segment)
            removed += 1
        except (FileNotFoundError, PermissionError):
            pass  # gone meanwhile, or another user's: theirs to clear
    return removed


def job_state(job_id: str) -> str:
    """squeue's state and reason of a job, for a failure message."""
    shown = subprocess.run(
        ["squeue", "-h", "-j", job_id, "-o", "%T %r %M"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return shown.stdout.strip() or "(no longer queued)"
