"""Starting ranks: reuse the world a launcher gave us, or start local ranks with mpiexec.

When distdl starts the ranks itself (``--ranks N``), this process stays their parent:

* **Signals.** mpiexec runs in a process group of its own, so a Ctrl-C in the terminal
  reaches only this process, which forwards it (and SIGTERM, SIGUSR1) to the ranks and
  waits for them to stop gracefully. A rank gets it once it said it is ready for signals
  (:func:`~distdl.runtime.stop_signals.defer_stop_signals`), never in the middle of its
  imports. Forwarding through mpiexec instead would make it print
  "Press Ctrl-C again to force abort" and turn a second Ctrl-C into a kill. If this process
  dies, mpiexec is killed with it (Linux: ``PR_SET_PDEATHSIG``), and with it the ranks: no
  rank outlives the process that holds the output lock.
* **A dead rank.** When a rank dies, MPICH's mpiexec kills the others (its report names a
  pid, not always the dead one's). Each rank holds a lifeline to this process
  (:mod:`distdl.runtime.lifeline`), which names the rank whose lifeline closed first.
* **One report.** The ranks' error output passes through here; when rank 0 has said what
  happened (an ``error:`` or ``stopped:`` line), nothing more is added.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil

from distdl.core.stopping import DEFAULT_GRACE, STOP_SIGNALS, parse_kill_wait
from distdl.errors import LaunchError
from distdl.runtime.lifeline import Lifelines
from distdl.runtime.stop_signals import READY_ENV

LAUNCHED_ENV = "DISTDL_LAUNCHED"  # set in ranks we started, so they never launch again
# After the grace, ranks that have not stopped are killed: never wait forever.
STOP_MARGIN = 10.0
_PR_SET_PDEATHSIG = 1
# Loaded here, not in the forked child, where only async-signal-safe work belongs.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
# MPICH's chatter about a forwarded Ctrl-C and an MPI_Abort, said better by rank 0.
_CHATTER = (
    "Sending Ctrl-C to processes as requested",
    "Press Ctrl-C again to force abort",
    "application called MPI_Abort(",
)
_REPORTS = ("error:", "stopped:")  # how rank 0 starts the line that says what happened


def usable_cores() -> int:
    """The cores this process may run on (a container's or a job's share, not the host's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def default_rank_count(cpu_per_worker: int) -> int:
    """Ranks that give every usable core a decoder: a worker per ``cpu_per_worker`` cores
    and a coordinator, or 1 (no MPI: the coordinator and the worker share this process) when
    one worker has them all, since a second process would only add its start-up and its
    share of the cores."""
    workers = -(-usable_cores() // cpu_per_worker)
    return 1 if workers == 1 else workers + 1


def find_mpiexec() -> str:
    """The mpiexec of the MPI mpi4py was built with: the venv's own (mpich wheel) first."""
    beside_python = Path(sys.executable).parent / "mpiexec"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("mpiexec") or shutil.which("mpirun")
    if found is None:
        raise LaunchError(
            'no mpiexec found: install the MPI extra (pip install -e ".[mpi]") or load your '
            "site MPI module; or run with --ranks 1"
        )
    return found


# Environment variables that launchers set: their presence means we were started by one.
_LAUNCHER_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "SLURM_NTASKS")


def launched_world_size() -> int | None:
    """The world size a launcher announced in the environment, or None outside one."""
    if os.environ.get("SLURM_STEP_ID") is None and "SLURM_NTASKS" in os.environ:
        # sbatch sets SLURM_NTASKS for the batch script itself, which is not a rank.
        sizes = [os.environ.get(v) for v in _LAUNCHER_SIZE_VARS if v != "SLURM_NTASKS"]
    else:
        sizes = [os.environ.get(v) for v in _LAUNCHER_SIZE_VARS]
    for size in sizes:
        if size and size.isdigit():
            return int(size)
    return None


def was_launched_by_us() -> bool:
    return os.environ.get(LAUNCHED_ENV) == "1"


def stop_grace() -> float:
    """Seconds a stop may take: Slurm's KillWait inside a Slurm job (SIGKILL follows a
    SIGTERM that much later), the default (Slurm's default KillWait) elsewhere."""
    if "SLURM_JOB_ID" not in os.environ or shutil.which("scontrol") is None:
        return DEFAULT_GRACE
    try:
        shown = subprocess.run(
            ["scontrol", "show", "config"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return DEFAULT_GRACE
    kill_wait = parse_kill_wait(shown.stdout)
    return DEFAULT_GRACE if kill_wait is None else kill_wait


@dataclass(frozen=True)
class RanksExit:
    """How the launched ranks ended."""

    code: int
    stopped_by: int | None = None  # a stop signal this process forwarded to them
    killed_after_grace: bool = False  # they had not stopped within the grace
    reported: bool = False  # rank 0 printed what happened
    first_ended: list[int] = field(default_factory=list)  # ranks that ended before the rest

    def death(self) -> str | None:
        """Which rank ended first, when that explains a failure nobody reported."""
        if self.reported or self.stopped_by is not None or len(self.first_ended) != 1:
            return None
        return f"rank {self.first_ended[0]} ended first and mpiexec ended the other ranks"


def launch_local_ranks(ranks: int, argv: list[str], grace: float = DEFAULT_GRACE) -> RanksExit:
    """Run ``python -m distdl <argv>`` as ``ranks`` MPI ranks on this machine, forwarding
    stop signals to them; how they ended."""
    command = [find_mpiexec(), "-n", str(ranks), sys.executable, "-m", "distdl", *argv]
    ready = Path(tempfile.mkdtemp(prefix="distdl-ready-"))
    env = dict(os.environ, **{LAUNCHED_ENV: "1", READY_ENV: str(ready)})
    try:
        lifelines = Lifelines(ready, ranks)  # listening before any rank can connect
    except OSError as exc:
        shutil.rmtree(ready, ignore_errors=True)
        raise LaunchError(f"could not listen for the ranks in {ready}: {exc}") from exc
    try:
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,  # outside the terminal's group, reading it would stop it
            stderr=subprocess.PIPE,
            preexec_fn=_own_group_dying_with_us,
        )
    except OSError as exc:
        lifelines.close()
        shutil.rmtree(ready, ignore_errors=True)
        raise LaunchError(f"could not start {command[0]}: {exc}") from exc
    assert process.stderr is not None
    relay = _ErrorRelay(process.stderr)
    relay.start()
    watch = _RankWatch(process, ranks, ready, lifelines)
    try:
        with watch.forwarding():
            killed = watch.wait(grace)
        lifelines.watch(0.0)  # the lifelines that closed as mpiexec ended
    finally:
        lifelines.close()
        relay.join(timeout=5.0)
        shutil.rmtree(ready, ignore_errors=True)
    return RanksExit(
        process.returncode, watch.stopped_by, killed, relay.reported, lifelines.first_ended
    )


def _own_group_dying_with_us() -> None:
    """In the child before exec: a process group of its own (the terminal's Ctrl-C is ours
    to forward), and SIGKILL when its parent dies (Linux)."""
    os.setpgid(0, 0)
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))


def rank_processes(launcher_pid: int) -> dict[int, int]:
    """Rank -> pid of the MPI ranks under a launcher: the processes holding PMI_RANK whose
    parent does not (a rank's own children, e.g. image decoders, inherit it)."""
    try:
        children = psutil.Process(launcher_pid).children(recursive=True)
    except psutil.Error:
        return {}
    ranked: dict[int, tuple[int, int]] = {}  # pid -> (rank, parent pid)
    for child in children:
        try:
            rank = child.environ().get("PMI_RANK")
            parent = child.ppid()
        except psutil.Error:
            continue
        if rank is not None and rank.isdigit():
            ranked[child.pid] = (int(rank), parent)
    return {rank: pid for pid, (rank, parent) in ranked.items() if parent not in ranked}


class _ErrorRelay(threading.Thread):
    """Passes mpiexec's error output through, minus its chatter, noting whether rank 0
    reported what happened."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(name="mpiexec-stderr", daemon=True)
        self._stream = stream
        self.reported = False

    def run(self) -> None:
        for raw in iter(self._stream.readline, b""):
            line = raw.decode(errors="replace")
            if any(chatter in line for chatter in _CHATTER):
                continue
            if line.startswith(_REPORTS):
                self.reported = True
            sys.stderr.write(line)
            sys.stderr.flush()


class _RankWatch:
    """The launched ranks (rank -> pid) and the stop signals forwarded to them."""

    def __init__(
        self, process: subprocess.Popen[bytes], ranks: int, ready: Path, lifelines: Lifelines
    ) -> None:
        self._process = process
        self._ranks = ranks
        self._ready = ready  # where each rank leaves a file named by its pid when ready
        self._lifelines = lifelines
        self._pids: dict[int, int] = {}
        self._forwarded: list[int] = []  # the stop signals received, in order
        self._delivered: dict[int, int] = {}  # pid -> how many of them it got
        self.stopped_by: int | None = None

    def forwarding(self) -> _Forwarding:
        return _Forwarding(self._forward)

    def wait(self, grace: float) -> bool:
        """Wait for mpiexec; True when the ranks had to be killed after a stop's grace."""
        deadline: float | None = None
        while self._process.poll() is None:
            if len(self._pids) < self._ranks:
                self._find_ranks()
            self._deliver()
            self._lifelines.watch(0.2)
            if self.stopped_by is not None and deadline is None:
                deadline = time.monotonic() + grace + STOP_MARGIN
            if deadline is not None and time.monotonic() > deadline:
                self._kill_all()
                self._process.wait()
                return True
        return False

    def _find_ranks(self) -> None:
        self._pids.update(rank_processes(self._process.pid))

    def _forward(self, signum: int) -> None:
        """In the signal handler: noted only; the waiting loop delivers it within 0.2 s."""
        if self.stopped_by is None:
            self.stopped_by = signum
        self._forwarded.append(signum)

    def _deliver(self) -> None:
        """Every signal forwarded so far, to each rank ready for it (the others get theirs
        once they are: a rank still starting would die of it in its imports)."""
        if not self._forwarded:
            return
        if len(self._pids) < self._ranks:
            self._find_ranks()
        for pid in self._pids.values():
            sent = self._delivered.get(pid, 0)
            if sent == len(self._forwarded) or not (self._ready / str(pid)).exists():
                continue
            for signum in self._forwarded[sent:]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)
            self._delivered[pid] = len(self._forwarded)

    def _kill_all(self) -> None:
        for pid in [*self._pids.values(), self._process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class _Forwarding:
    """While inside (main thread only), stop signals go to ``forward`` instead of here."""

    def __init__(self, forward: Callable[[int], None]) -> None:
        self._forward = forward
        self._previous: dict[int, object] = {}

    def __enter__(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in STOP_SIGNALS:
            self._previous[int(signum)] = signal.getsignal(signum)
            signal.signal(signum, lambda received, frame: self._forward(received))

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            if handler is not None:
                signal.signal(signum, handler)  # type: ignore[arg-type]
