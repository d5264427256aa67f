"""Fault injection for tests: ``DISTDL_FAULT`` names points in the code where a fault fires.

    DISTDL_FAULT="parquet.write@3=ENOSPC"          the 3rd row-group write fails once
    DISTDL_FAULT="parquet.write@2+=EDQUOT"          every write from the 2nd on (a full quota)
    DISTDL_FAULT="marker.write=EIO,parquet.close@4=kill"

Each comma-separated entry is ``point[@n[+]]=action``: the fault fires the ``n``-th time
this process reaches ``point`` (``n`` = 1 when omitted), or every time from the ``n``-th on
with ``+``. An action is an errno name (``ENOSPC``, ``EDQUOT``, ``EFBIG``, ``EIO``,
``EACCES``, …), raised as that :class:`OSError`, or a signal this process sends itself:
``kill`` (SIGKILL), ``term`` (SIGTERM), ``int`` (SIGINT) or ``stop`` (SIGSTOP: a hung rank).
Counts are per process, so under MPI every rank counts its own hits; ``DISTDL_FAULT_RANK=r``
arms the faults in MPI rank ``r`` only (rank 0 outside MPI), e.g. to kill one worker.

The points (:data:`POINTS`) are named where :func:`hit` is called. The variable is read
once, at import: when it is unset, :func:`hit` returns on its first line, so the hooks cost
nothing in production.
"""

from __future__ import annotations

import errno
import os
import signal
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ENV = "DISTDL_FAULT"
WRITE_POINTS = frozenset(
    {
        "parquet.write",  # a row group of successes.parquet/errors.parquet is written
        "parquet.close",  # a parquet file's footer is written
        "parquet.publish",  # a finished parquet file is renamed into place
        "marker.write",  # a partition's completed marker is written
    }
)
# Points between writes, for signals (an errno there is not a write failure).
RUN_POINTS = frozenset(
    {
        "lease.granted",  # rank 0 sends a worker a lease
        "lease.started",  # a worker starts a leased partition (before its carry-over)
        "lease.settled",  # a worker settled every row of a partition, before its commit
    }
)
POINTS = WRITE_POINTS | RUN_POINTS
RANK_ENV = "DISTDL_FAULT_RANK"
_SIGNALS = {
    "kill": signal.SIGKILL,
    "term": signal.SIGTERM,
    "int": signal.SIGINT,
    "stop": signal.SIGSTOP,
}
_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID")


@dataclass(frozen=True)
class Fault:
    point: str
    at: int
    repeat: bool
    action: str


def parse(text: str) -> list[Fault]:
    """The faults a ``DISTDL_FAULT`` value asks for; ValueError names a bad entry."""
    faults = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        where, sep, action = entry.partition("=")
        point, _, count = where.partition("@")
        repeat = count.endswith("+")
        count = count.rstrip("+") or "1"
        if not sep or point not in POINTS or not count.isdigit() or int(count) < 1:
            raise ValueError(f"{ENV}: bad entry {entry!r}; points are {sorted(POINTS)}")
        if action not in _SIGNALS and not isinstance(getattr(errno, action, None), int):
            raise ValueError(f"{ENV}: {action!r} is neither {sorted(_SIGNALS)} nor an errno name")
        faults.append(Fault(point, int(count), repeat, action))
    return faults


def _this_rank() -> str:
    return next((os.environ[v] for v in _RANK_VARS if v in os.environ), "0")


_ARMED: dict[str, list[Fault]] = {}
if os.environ.get(RANK_ENV, _this_rank()) == _this_rank():
    for _fault in parse(os.environ.get(ENV, "")):
        _ARMED.setdefault(_fault.point, []).append(_fault)
_hits: Counter[str] = Counter()


def hit(point: str, path: Path | str | None = None) -> None:
    """Fire the fault armed at ``point`` for this hit, if any (``path`` names the file)."""
    if not _ARMED:
        return
    faults = _ARMED.get(point)
    if not faults:
        return
    _hits[point] += 1
    count = _hits[point]
    for fault in faults:
        if count == fault.at or (fault.repeat and count > fault.at):
            _fire(fault, path)


def _fire(fault: Fault, path: Path | str | None) -> None:
    if fault.action in _SIGNALS:
        os.kill(os.getpid(), _SIGNALS[fault.action])
        return  # a handled signal (SIGTERM, SIGINT) is acted on once the code goes on
    code = getattr(errno, fault.action)
    filename = None if path is None else os.fspath(path)
    raise OSError(code, f"{os.strerror(code)} (injected at {fault.point})", filename)
