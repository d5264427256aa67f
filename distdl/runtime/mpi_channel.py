"""The one module that imports mpi4py (lazily, so `import distdl` works without MPI)."""

from __future__ import annotations

import atexit
import logging
import sys
import time
from typing import Any

from distdl.errors import LaunchError
from distdl.runtime.launch import launched_world_size
from distdl.runtime.messages import Message

TAG = 17  # every distdl message uses one tag; the payload says what it is
# Messages to a rank that stopped reading (hung, declared dead) may never leave: a flush
# waits at most this long for them.
FLUSH_TIMEOUT = 10.0


def comm_world() -> Any:
    from mpi4py import MPI

    return MPI.COMM_WORLD


def checked_world() -> Any:
    """COMM_WORLD, refusing the silent failure where a launcher started N size-1 worlds."""
    comm = comm_world()
    expected = launched_world_size()
    if expected is not None and expected > 1 and comm.Get_size() != expected:
        raise LaunchError(
            f"the launcher started {expected} tasks but MPI sees a world of {comm.Get_size()}: "
            "each task runs alone. Under Slurm use `srun --mpi=pmi2` with the mpich wheel "
            "(or the plugin matching your site MPI); `--mpi=none` gives size-1 worlds."
        )
    return comm


# Pending sends kept before the completed ones are released (then twice those still pending).
PRUNE_AT = 64


class MpiChannel:
    def __init__(self, comm: Any) -> None:
        self._comm = comm
        self._pending: list[Any] = []  # isend requests not yet known to be done
        self._prune_at = PRUNE_AT

    @property
    def rank(self) -> int:
        return int(self._comm.Get_rank())

    def send(self, dest: int, message: Message) -> None:
        self._pending.append(self._comm.isend(message, dest=dest, tag=TAG))
        if len(self._pending) >= self._prune_at:
            # Completed requests are released now and then, not at every send: rank 0 sends
            # to hundreds of ranks, and testing every pending request each time was quadratic.
            self._pending = [req for req in self._pending if not req.Test()]
            self._prune_at = max(PRUNE_AT, 2 * len(self._pending))

    def poll(self) -> list[tuple[int, Message]]:
        from mpi4py import MPI

        out: list[tuple[int, Message]] = []
        status = MPI.Status()
        while self._comm.Iprobe(source=MPI.ANY_SOURCE, tag=TAG, status=status):
            source = status.Get_source()
            out.append((source, self._comm.recv(source=source, tag=TAG)))
        return out

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> None:
        """Wait until every message sent has left, before the process exits (at most
        ``timeout`` seconds: a hung receiver must not hang this rank too)."""
        deadline = time.monotonic() + timeout
        while self._pending and time.monotonic() < deadline:
            self._pending = [req for req in self._pending if not req.Test()]
            time.sleep(0.005)
        self._pending = []


def abort_at_exit(comm: Any, code: int) -> None:
    """End this process with MPI_Abort instead of MPI_Finalize, which waits for every rank:
    after a rank was declared dead (maybe hung, not gone) the job must end all the same.
    Output is flushed first: MPI_Abort ends the process at once."""

    def abort() -> None:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        comm.Abort(code)

    atexit.register(abort)
