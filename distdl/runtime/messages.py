"""Messages between rank 0 (the coordinator) and the workers.

They are tiny and carry ids and numbers, never data: a worker reads its partition's URLs
from disk and writes its results to disk. Commands are imperative, events past tense.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from distdl.core.breaker import HostCause
from distdl.core.scheduler import Lease
from distdl.core.throttle import Feedback


# --- coordinator -> worker ------------------------------------------------------------
@dataclass(frozen=True)
class AssignPartition:
    lease: Lease
    host_unreachable: bool = False  # a breaker gave up on the host: write its rows, no fetch
    start_after: float = 0.0  # seconds before its first request (a start slot, see PauseHolder)
    cause: HostCause | None = None  # why the host is unreachable, when it is


@dataclass(frozen=True)
class GrantShare:
    """The answer to HostShareRequested: a share of the host's budget, for redirect hops.

    ``lease_id`` names the share in later ChangeRate messages and in HostShareReleased.
    """

    server_name: str
    lease_id: int
    rate: float
    host_unreachable: bool = False
    start_after: float = 0.0  # seconds before its first request (a start slot, see PauseHolder)
    cause: HostCause | None = None  # why the host is unreachable, when it is


@dataclass(frozen=True)
class ChangeRate:
    """The new rate of a lease or share (``lease_id``)."""

    lease_id: int
    rate: float


@dataclass(frozen=True)
class PauseHolder:
    """Start no request through lease (or share) ``lease_id`` on its host for ``seconds`` (a
    duration: clocks differ by node), then pace it from there. Rank 0 gives each holder of a
    host its own slot, one budget interval apart (:mod:`distdl.core.start_slots`)."""

    server_name: str
    lease_id: int
    seconds: float


@dataclass(frozen=True)
class AbandonHost:
    """Another rank's breaker declared the host dead: stop fetching from it."""

    server_name: str
    cause: HostCause | None = None


@dataclass(frozen=True)
class Shutdown:
    """End now: the work is done, the run is aborted, or this rank was declared dead."""

    reason: str = "done"


@dataclass(frozen=True)
class Stop:
    """A signal stops the run: take no more leases, let requests in flight finish for up to
    ``settle_seconds`` (a duration: clocks differ by node), commit the settled rows."""

    signum: int
    settle_seconds: float


@dataclass(frozen=True)
class Dismiss:
    """The answer to WorkerStopped: rank 0 sends this worker nothing more, so it may end.
    (Under MPICH a rank that ends while messages are still on their way to it can bring the
    whole job down.)"""


@dataclass(frozen=True)
class Heartbeat:
    """Sent by a rank with nothing else to say, so that its silence means it is gone
    (both ways: rank 0 to every worker, a worker to rank 0)."""


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
class LeaseProgressed:
    """What an open lease settled so far (running totals: a lost report changes nothing);
    sent about once a second, so rank 0's progress moves with every row, not per partition."""

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
    cause: HostCause | None = None  # the failure that made the breaker give up


@dataclass(frozen=True)
class HostShareRequested:
    """A lease was redirected to a host this worker holds no share of: ask for one."""

    server_name: str


@dataclass(frozen=True)
class HostShareReleased:
    """The worker no longer sends redirect hops to the host of this share."""

    lease_id: int


@dataclass(frozen=True)
class RobotsRead:
    """The worker read the host's robots.txt (fetched, or stored by an earlier lease).

    ``rate_cap`` is what its Crawl-delay/Request-rate allow (req/s; None: no limit asked).
    """

    server_name: str
    rate_cap: float | None
    crawl_delay: float | None


@dataclass(frozen=True)
class WorkerCrashed:
    """A worker raised: the run fails and names the cause; nothing is swallowed."""

    cause: str
    traceback: str


@dataclass(frozen=True)
class StopRequested:
    """This worker received a stop signal (srun signals every task; a user may signal one).

    ``again``: the worker had received one before (a second signal hurries the stop)."""

    signum: int
    again: bool = False


@dataclass(frozen=True)
class WorkerStalled:
    """This worker's loop was away long enough to have been declared dead: it dropped its
    leases without writing and stopped (see :mod:`distdl.core.liveness`)."""

    seconds: float


@dataclass(frozen=True)
class WorkerStopped:
    pass


ToWorker = (
    AssignPartition
    | GrantShare
    | ChangeRate
    | PauseHolder
    | AbandonHost
    | Shutdown
    | Stop
    | Dismiss
    | Heartbeat
)
ToCoordinator = (
    WorkRequested
    | PartitionCompleted
    | LeaseProgressed
    | PartitionFailed
    | HostFeedbackReported
    | HostDeclaredDead
    | HostShareRequested
    | HostShareReleased
    | RobotsRead
    | WorkerCrashed
    | StopRequested
    | WorkerStalled
    | WorkerStopped
    | Heartbeat
)
Message = ToWorker | ToCoordinator
