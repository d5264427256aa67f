"""Run a step on rank 0 and give every rank its outcome: the stages that one rank leads.

Only the step itself may be interrupted by a stop signal (on rank 0); everywhere else the
callers only note signals, so no rank leaves a collective the others wait in.

A failure there fails every rank with rank 0's exit code (said once, by rank 0); a stop
signal there stops every rank. The other ranks wait in a non-blocking barrier polled with
short sleeps: MPICH's blocking collectives spin, and a spinning rank takes the core that
rank 0 needs to plan (or that a rank needs to import its libraries).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from distdl.errors import AlreadyReported, DistdlError
from distdl.runtime.stop_signals import StopSignal, raising_stop_signals, stop_signal_of

T = TypeVar("T")

POLL_SECONDS = 0.01


class RankZeroFailed(DistdlError):
    """Rank 0's failure, raised on rank 0 with its message and exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def wait_for_all(comm: Any) -> None:
    """A barrier that sleeps instead of spinning."""
    request = comm.Ibarrier()
    while not request.Test():
        time.sleep(POLL_SECONDS)


def on_rank0(comm: Any, action: Callable[[], T]) -> T:
    """``action()`` on rank 0; its result on every rank."""
    result: tuple[str, Any] | None = None
    if comm.Get_rank() == 0:
        try:
            with raising_stop_signals():  # a signal noted before is raised here
                result = ("ok", action())
        except DistdlError as exc:
            result = ("failed", (str(exc), exc.exit_code))
        except (KeyboardInterrupt, StopSignal) as exc:
            result = ("stopped", stop_signal_of(exc))
    wait_for_all(comm)
    outcome, value = comm.bcast(result, root=0)
    if outcome == "failed":
        message, exit_code = value
        if comm.Get_rank() != 0:  # rank 0 says it once, for every rank
            raise AlreadyReported(exit_code)
        raise RankZeroFailed(message, exit_code)
    if outcome == "stopped":
        raise StopSignal(value)
    return value
