"""Messages between rank 0 (the coordinator) and the workers.

They are tiny and carry ids and numbers, never data: a worker reads its partition's URLs
from disk and writes its results to disk. Commands are imperative, events past tense.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from distdl.core.scheduler import Lease
from distdl.core.throttle import Feedback


# --- coordinator -> worker ------------------------------------------------------------
@dataclass(frozen=True)
class AssignPartition:
    lease: Lease
    host_unreachable: bool = False  # a breaker gave up on the host: write its rows, no fetch


@dataclass(frozen=True)
class ChangeRate:
    lease_id: int
    rate: float


@dataclass(frozen=True)
class PauseHost:
    """Stop starting requests on a host for ``seconds`` (a duration: clocks differ by node)."""

    server_name: str
    seconds: float


@dataclass(frozen=True)
class AbandonHost:
    """Another rank's breaker declared the host dead: stop fetching from it."""

    server_name: str


@dataclass(frozen=True)
class Shutdown:
    reason: str = "done"


# --- worker -> coordinator ------------------------------------------------------------
@dataclass(frozen=True)
class WorkRequested:
    free_slots: int


@dataclass(frozen=True)
class PartitionStats:
    successes: int = 0
    errors: int = 0
    requests: int = 0
    throttled: int = 0
    bytes_downloaded: int = 0
    errors_by_code: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class PartitionCompleted:
    lease_id: int
    stats: PartitionStats


@dataclass(frozen=True)
class PartitionFailed:
    lease_id: int
    cause: str


@dataclass(frozen=True)
class HostFeedbackReported:
    server_name: str
    feedback: Feedback


@dataclass(frozen=True)
class HostDeclaredDead:
    server_name: str


@dataclass(frozen=True)
class WorkerCrashed:
    """A worker raised: the run fails and names the cause; nothing is swallowed."""

    cause: str
    traceback: str


@dataclass(frozen=True)
class WorkerStopped:
    pass


ToWorker = AssignPartition | ChangeRate | PauseHost | AbandonHost | Shutdown
ToCoordinator = (
    WorkRequested
    | PartitionCompleted
    | PartitionFailed
    | HostFeedbackReported
    | HostDeclaredDead
    | WorkerCrashed
    | WorkerStopped
)
Message = ToWorker | ToCoordinator
