"""A Slurm job stops itself ``stop_margin`` seconds before its time limit.

Slurm's own way (SIGTERM at the limit, SIGKILL ``KillWait`` seconds later) leaves the stop
only KillWait, 30 s by default; ``sbatch --signal`` comes up to a minute late and misses a
limit changed while the job runs. So the process that leads a run (rank 0, or the process
that launched the local ranks) reads the job's end time from Slurm
(:mod:`distdl.cluster.end_time`) and, ``stop_margin`` seconds before it, sends itself
SIGUSR1: the ordinary graceful stop (:mod:`distdl.core.stopping`) follows, the partitions
being downloaded publish their settled rows and the next job of the chain resumes them. No
partition is waited for: one on a 1 req/s host can take hours.

The end time is read again every :data:`RECHECK_SECONDS` (and once more just before the
stop), so an extended limit moves the stop.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from types import TracebackType

from distdl.cluster.end_time import JOB_ID_ENV, job_end_time

log = logging.getLogger("distdl.deadline")

RECHECK_SECONDS = 300.0  # how often the end time is read again: squeue costs slurmctld


def seconds_to_stop(end: float, margin: float, now: float) -> float:
    """Seconds until the stop (never negative)."""
    return max(0.0, end - margin - now)


def _stop_this_process() -> None:
    os.kill(os.getpid(), signal.SIGUSR1)


class JobDeadline:
    """While inside (``with``), a thread sends the stop ``margin`` s before the job's end."""

    def __init__(
        self,
        margin: float,
        read_end: Callable[[], float | None] = job_end_time,
        *,
        clock: Callable[[], float] = time.time,
        on_deadline: Callable[[], None] = _stop_this_process,
        recheck: float = RECHECK_SECONDS,
    ) -> None:
        self.margin = margin
        self._read_end = read_end
        self._clock = clock
        self._on_deadline = on_deadline
        self._recheck = recheck
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.fired = False

    def _watch(self) -> None:
        known: float | None = None
        while not self._done.is_set():
            end = self._read_end() or known  # a failed re-read keeps the last end known
            if end is None:
                log.info("no time limit found for this job: it runs until done")
                return
            known = end
            wait = seconds_to_stop(end, self.margin, self._clock())
            if wait <= 0:
                log.warning(
                    "%.0f s before the job's time limit (stop_margin %.0f s): stopping so "
                    "that every partition commits its settled rows; the next job resumes",
                    max(0.0, end - self._clock()),
                    self.margin,
                )
                if not self._done.is_set():  # the run may have ended meanwhile
                    self.fired = True
                    self._on_deadline()
                return
            # Read again well before the stop too: the limit may have been changed.
            self._done.wait(min(wait, self._recheck))

    def __enter__(self) -> JobDeadline:
        self._thread = threading.Thread(target=self._watch, name="distdl-job-deadline", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done.set()
        # Not joined: a squeue call in progress may take its timeout, and the thread only
        # ever signals this process, which is ending anyway.


def job_deadline(margin: float) -> JobDeadline | None:
    """The watch for this Slurm job; None outside Slurm."""
    if not os.environ.get(JOB_ID_ENV):
        return None
    return JobDeadline(margin)
