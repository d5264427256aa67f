"""A graceful stop: what each signal means, how its grace period is spent, what is printed.

SIGINT (Ctrl-C), SIGTERM (``scancel``, Slurm's time limit) and SIGUSR1 (``sbatch
--signal``, Slurm's advance warning) all ask the same thing: take no more leases, let the
requests in flight finish so their images are kept, commit every partition's settled rows
(without a marker when some are missing: the carry-over finishes it later), save the
learned rates, and exit with 128 + the signal's number (SIGUSR1 exits like SIGTERM: it is
the warning of one).

Slurm follows SIGTERM with SIGKILL ``KillWait`` seconds later, so the stop has that long
(the grace). Outside Slurm nothing forces it; the default grace is Slurm's default. The
grace is spent in two parts, as fractions of it so that a short KillWait still works:
requests in flight may finish until :attr:`StopPlan.settle_deadline`; then whatever is
still in flight is dropped, every partition commits what it settled, and rank 0 waits for
the workers' reports until :attr:`StopPlan.wait_deadline`, after which it ends regardless.
A second signal gives up on the requests in flight at once.

Pure: time and the grace are arguments.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass, replace

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)
DEFAULT_GRACE = 30.0  # seconds: Slurm's default KillWait, used where no KillWait applies
SETTLE_SHARE = 0.5  # of the grace: requests in flight may finish (their images are kept)
WAIT_SHARE = 0.8  # of the grace: commits done, rank 0 ends before the SIGKILL comes
_KILL_WAIT = re.compile(r"^\s*KillWait\s*=\s*(\d+)\s*sec", re.MULTILINE)


def exit_code(signum: int) -> int:
    """130 for SIGINT, 143 for SIGTERM and SIGUSR1 (the shell's 128 + SIGTERM)."""
    return 128 + (signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


@dataclass(frozen=True)
class StopPlan:
    """One stop in progress: the first signal, when it came, and the deadlines it sets."""

    signum: int
    started: float
    grace: float
    settle_deadline: float
    wait_deadline: float

    @classmethod
    def begin(cls, signum: int, now: float, grace: float) -> StopPlan:
        grace = max(grace, 0.0)
        return cls(signum, now, grace, now + grace * SETTLE_SHARE, now + grace * WAIT_SHARE)

    def hurried(self, now: float) -> StopPlan:
        """A second signal: the requests in flight are given up now."""
        return replace(self, settle_deadline=min(self.settle_deadline, now))

    @property
    def exit_code(self) -> int:
        return exit_code(self.signum)

    def settle_seconds(self, now: float) -> float:
        """Seconds left for the requests in flight (a duration: clocks differ by node)."""
        return max(0.0, self.settle_deadline - now)


def parse_kill_wait(scontrol_config: str) -> float | None:
    """KillWait from ``scontrol show config`` (``KillWait = 30 sec``); None when absent."""
    found = _KILL_WAIT.search(scontrol_config)
    return float(found.group(1)) if found else None


def stopped_line(done: int, left: int | None, config_path: str, *, started: bool = True) -> str:
    """The one line printed when a run stopped on a signal (``left`` None: not planned yet;
    ``started`` False: nothing to resume, the run starts again)."""
    remaining = "the plan not finished" if left is None else f"{left} left"
    command = "resume" if started else "run"
    return (
        f"stopped: {done} partitions done, {remaining}; "
        f"continue with: distdl {command} {config_path}"
    )
