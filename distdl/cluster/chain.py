"""The chain of jobs ``distdl submit`` queued, and what Slurm says of each.

Recorded in ``{schedules_folder}/slurm_jobs.json`` (the original kept its job ids in the
schedules folder too), rewritten atomically as each job is accepted. States come from
``squeue`` while Slurm still lists a job, then from ``sacct`` (when accounting is on);
without either the ids are shown alone.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from distdl.cluster.commands import Runner, run_command
from distdl.io.atomic import atomic_write_text
from distdl.layout import Layout

CHAIN_FILE = "slurm_jobs.json"
# squeue states of a job that has not ended (a COMPLETING job still holds its nodes).
_NOT_ENDED = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED"}
_NOT_ENDED |= {"RESIZING", "SIGNALING", "STAGE_OUT", "REQUEUE_HOLD", "REQUEUE_FED"}


@dataclass(frozen=True)
class ChainRecord:
    kind: str
    tool: str | None
    script: str
    submitted_at: str
    jobs: tuple[str, ...] = ()

    @classmethod
    def new(cls, kind: str, tool: str | None, script: str) -> ChainRecord:
        return cls(kind, tool, script, time.strftime("%Y-%m-%dT%H:%M:%S"))

    def with_job(self, job: str) -> ChainRecord:
        return replace(self, jobs=(*self.jobs, job))


def record_path(layout: Layout) -> Path:
    return layout.schedules / CHAIN_FILE


def write_chain(path: Path, record: ChainRecord) -> None:
    data = {
        "kind": record.kind,
        "tool": record.tool,
        "script": record.script,
        "submitted_at": record.submitted_at,
        "jobs": list(record.jobs),
    }
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def read_chain(layout: Layout) -> ChainRecord | None:
    try:
        data = json.loads(record_path(layout).read_text(encoding="utf-8"))
        return ChainRecord(
            data["kind"], data["tool"], data["script"], data["submitted_at"], tuple(data["jobs"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def parse_squeue(text: str) -> dict[str, str]:
    """``squeue -h -o "%i %T"`` lines -> job id -> state."""
    states: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2:
            states[fields[0]] = fields[1]
    return states


def parse_sacct(text: str) -> dict[str, str]:
    """``sacct -n -X -P -o JobID,State`` lines -> job id -> state (``CANCELLED by 0`` ->
    ``CANCELLED``)."""
    states: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) >= 2 and fields[0]:
            states[fields[0]] = fields[1].split()[0] if fields[1].strip() else ""
    return states


def job_states(jobs: list[str], runner: Runner = run_command) -> dict[str, str | None]:
    """Each job's state as Slurm tells it; None where no tool could say."""
    states: dict[str, str | None] = dict.fromkeys(jobs)
    if not jobs:
        return states
    listed = runner(["squeue", "-h", "-j", ",".join(jobs), "-o", "%i %T"])
    # Asked for one job Slurm has forgotten, squeue fails saying so: an answer all the same.
    answered = listed.ok or "Invalid job id" in listed.stderr
    if listed.ok:
        states.update(parse_squeue(listed.stdout))
    missing = [job for job in jobs if states[job] is None]
    if missing:
        accounted = runner(
            ["sacct", "-n", "-X", "-P", "-j", ",".join(missing), "-o", "JobID,State"]
        )
        if accounted.ok:
            states.update({k: v for k, v in parse_sacct(accounted.stdout).items() if k in states})
        if answered:  # squeue no longer lists them: they ended
            for job in missing:
                states[job] = states[job] or "ENDED"
    return states


def still_queued(layout: Layout, runner: Runner = run_command) -> list[str]:
    """The recorded chain's jobs that have not ended."""
    record = read_chain(layout)
    if record is None:
        return []
    states = job_states(list(record.jobs), runner)
    return [job for job, state in states.items() if state in _NOT_ENDED]


def chain_status(layout: Layout, runner: Runner = run_command) -> dict[str, Any] | None:
    """``distdl status``'s ``slurm`` object: null without a chain."""
    record = read_chain(layout)
    if record is None:
        return None
    states = job_states(list(record.jobs), runner)
    return {
        "kind": record.kind,
        "tool": record.tool,
        "submitted_at": record.submitted_at,
        "jobs": [{"id": job, "state": states[job]} for job in record.jobs],
    }


def render_chain(chain: dict[str, Any]) -> list[str]:
    what = f"tools {chain['tool']}" if chain["tool"] else chain["kind"]
    jobs = ", ".join(
        job["id"] if job["state"] is None else f"{job['id']} {job['state']}"
        for job in chain["jobs"]
    )
    return [f"slurm chain ({what}, submitted {chain['submitted_at']}): {jobs or 'no job'}"]
