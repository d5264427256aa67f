"""When this Slurm job ends: its time limit, read from Slurm.

``squeue -h -j JOB -o %e`` first (it follows a limit changed with ``scontrol update``),
then ``SLURM_JOB_END_TIME`` (set at the job's start by Slurm 23.02 and later), then
``scontrol show job JOB``'s ``EndTime=``. Slurm prints times in the local time zone of the
command, without a zone (``2026-11-30T16:01:02``); they are read back the same way. A job
without a limit (``UNLIMITED``, ``Unknown``, ``N/A``) has no end time: None.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping

from distdl.cluster.commands import Runner, run_command

JOB_ID_ENV = "SLURM_JOB_ID"
END_TIME_ENV = "SLURM_JOB_END_TIME"
_SLURM_TIME = "%Y-%m-%dT%H:%M:%S"
_END_FIELD = re.compile(r"\bEndTime=(\S+)")


def parse_slurm_time(text: str) -> float | None:
    """Seconds since the epoch of a Slurm time (local time), or None when it is no time."""
    try:
        return time.mktime(time.strptime(text.strip(), _SLURM_TIME))
    except ValueError:
        return None


def parse_scontrol_end(text: str) -> float | None:
    """``EndTime=`` of ``scontrol show job``'s output."""
    found = _END_FIELD.search(text)
    return parse_slurm_time(found.group(1)) if found else None


def job_end_time(
    job_id: str | None = None,
    *,
    runner: Runner = run_command,
    env: Mapping[str, str] = os.environ,
) -> float | None:
    """This job's end time (``job_id`` defaults to ``$SLURM_JOB_ID``); None outside Slurm or
    when the job has no limit."""
    job = job_id or env.get(JOB_ID_ENV)
    if not job:
        return None
    shown = runner(["squeue", "-h", "-j", job, "-o", "%e"])
    if shown.ok and shown.stdout.strip():
        return parse_slurm_time(shown.stdout.splitlines()[0])
    from_env = env.get(END_TIME_ENV, "")
    if from_env.strip().isdigit():
        return float(from_env)
    shown = runner(["scontrol", "show", "job", job])
    return parse_scontrol_end(shown.stdout) if shown.ok else None
