"""What rank 0 spends in the coordinator simulation: CPU per message and memory.

A :class:`SampleWindow` covers a few simulated seconds in which every virtual worker talks
to rank 0 at the real cadence; the simulation adds the process time rank 0 spent on each
pass of its loop (unpickling the messages, handling them, pickling what it sends). The
coordinator is built without its progress tally (its state file would be written every two
simulated seconds of a run of days), so the sample feeds the same messages to a
:class:`~distdl.runtime.progress.RunProgress` of its own and counts that time too.
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from distdl.runtime.coordinator import SAVE_INTERVAL
from distdl.runtime.messages import (
    HostFeedbackReported,
    LeaseProgressed,
    Message,
    PartitionCompleted,
)
from distdl.runtime.progress import Budgets, Holders, RunProgress, RunShape

_NOT_STATE = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)


def deep_size(root: object) -> int:
    """Bytes of every object reachable from ``root`` (classes, modules and functions, which
    every process holds anyway, are not followed)."""
    seen: set[int] = set()
    stack = [root]
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _NOT_STATE):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


class _Sim(Protocol):
    """What the progress mirror needs of the simulation."""

    lease_host: dict[int, str]
    budgets: Budgets
    scheduler: Holders
    leases: dict[int, Any]


class ProgressMirror:
    """Rank 0's progress tally, fed what the coordinator would feed it."""

    def __init__(self, rows_by_host: dict[str, int], workers: int) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="distdl-scale-progress-")
        shape = RunShape(workers, 16, len(rows_by_host))
        path = Path(self._dir.name) / "run-state.json"
        self._progress = RunProgress(path, rows_by_host, shape, [], 0.0)
        self.cpu = 0.0

    def mirror(self, batch: list[tuple[int, Message]], sim: _Sim, now: float) -> None:
        started = time.process_time()
        progress = self._progress
        for _, message in batch:
            if isinstance(message, HostFeedbackReported):
                progress.answers_seen(message.server_name, message.feedback)
            elif isinstance(message, LeaseProgressed):
                host = sim.lease_host[message.lease_id]
                progress.lease_reported(message.lease_id, host, message.stats)
            elif isinstance(message, PartitionCompleted):
                host = sim.lease_host[message.lease_id]
                rows = message.stats.successes + message.stats.errors
                progress.lease_completed(message.lease_id, host, rows, message.stats)
        progress.tick(now, sim.budgets, sim.scheduler, len(sim.leases))
        self.cpu += time.process_time() - started

    def size(self) -> int:
        return deep_size(self._progress)

    def close(self) -> None:
        self._dir.cleanup()


@dataclass
class SampleWindow:
    start: float
    end: float
    progress: ProgressMirror
    messages: int = 0
    bytes_in: int = 0
    cpu: float = 0.0
    passes: int = 0

    def add(self, messages: int, bytes_in: int, cpu: float) -> None:
        self.messages += messages
        self.bytes_in += bytes_in
        self.cpu += cpu
        self.passes += 1


@dataclass(frozen=True)
class SampleFigures:
    at: float  # simulated seconds into the run
    open_leases: int
    messages_per_second: float
    cpu_per_message: float  # seconds
    core_share: float  # of one core
    bytes_per_message_in: float
    bytes_per_second_out: float
    messages_out_per_second: float


@dataclass
class RankZeroCost:
    samples: list[SampleFigures] = field(default_factory=list)
    peak_bytes: int = 0
    save_cpu: float = 0.0  # one save of the learned rates (rank 0 saves every SAVE_INTERVAL)
    # What MPI itself costs per message received and sent, pickling aside (measured by
    # benchmarks/scale_mpi_probe.py under mpiexec; 0 when not measured).
    mpi_receive: float = 0.0
    mpi_send: float = 0.0

    def core_share(self, sample: SampleFigures) -> float:
        """The sample's share of a core, with the periodic saves spread over their interval
        and the MPI layer's own cost per message added."""
        mpi = (
            sample.messages_per_second * self.mpi_receive
            + sample.messages_out_per_second * self.mpi_send
        )
        return sample.core_share + self.save_cpu / SAVE_INTERVAL + mpi

    def add(self, sample: SampleWindow, sent: int, bytes_out: int, open_leases: int) -> None:
        seconds = sample.end - sample.start
        cpu = sample.cpu + sample.progress.cpu
        self.samples.append(
            SampleFigures(
                at=sample.start,
                open_leases=open_leases,
                messages_per_second=sample.messages / seconds,
                cpu_per_message=cpu / max(sample.messages, 1),
                core_share=cpu / seconds,
                bytes_per_message_in=sample.bytes_in / max(sample.messages, 1),
                bytes_per_second_out=bytes_out / seconds,
                messages_out_per_second=sent / seconds,
            )
        )
        sample.progress.close()

    @property
    def worst(self) -> SampleFigures | None:
        return max(self.samples, key=self.core_share, default=None)
