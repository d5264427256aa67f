"""One run per output folder: a lock file that holds on cluster file systems too.

Two runs on one output would both fetch every URL, together exceed every host's budget, and
interleave their renames so that a uuid can end in neither file. ``distdl run``, ``resume``
and ``reset`` therefore hold ``{path_to_output}/distdl.lock`` while they work; under MPI
only rank 0 holds it (ranks that ``distdl run`` starts itself borrow the lock of the process
that started them, found through ``DISTDL_LOCK_TOKEN``).

The algorithm
-------------
* **Taking.** ``open(lock, O_CREAT | O_EXCL)``: exactly one process creates the file. The
  winner writes a JSON record — host, pid, start time, heartbeat time, command and a random
  token — and fsyncs it.
* **Heartbeat.** A daemon thread of the holder rewrites the record in place (same length,
  new ``heartbeat_at``) and fsyncs it every :data:`HEARTBEAT_INTERVAL` seconds: the write
  moves the file's mtime. It also checks that the path still names its own file (same
  inode); if not, the lock was taken over, and the run ends with an error instead of
  exiting 0.
* **Stale locks.** A lock is stale when its holder ran on this host and that process is gone
  (or its pid now belongs to a younger process), or when its mtime is more than
  :data:`STALE_AFTER` seconds old — measured against the mtime of a probe file created in
  the same folder, so both times come from the same clock (see below), not from this host's.
* **Take-over** is itself race-safe. Only the holder of a second ``O_EXCL`` file,
  ``distdl.lock.takeover``, may remove a stale lock, so no two processes ever move lock
  files at once (a guard older than 30 s was left by a taker that died, and is removed the
  same way). Its holder checks that the lock file still is the very
  one it judged stale (same inode, mtime and content: inode numbers alone are reused at
  once) — other contenders only ever create files, so it stays so — renames it to a unique
  name, checks the moved file again, deletes it, and creates its own with ``O_EXCL``, which
  a plain contender may still win: either way exactly one process holds the lock. (Only a
  "stale" holder that was merely frozen and releases its lock at that very instant could
  slip through; the heartbeat of the run that lost would then report it.) A take-over is
  logged as a warning naming the previous holder.
* **Slurm job chains.** A holder running in a Slurm job records its job id. A job of a
  ``distdl submit`` chain starts only after the job before it ended (``afterany``), and
  knows that job's id (``DISTDL_AFTER_JOB``): a lock that job left (killed at its time
  limit, on another node whose processes this host cannot see) is taken over at once.
* **Release** (on every exit, exceptions included): stop the heartbeat, delete the file if
  the path still names ours.

Why it holds on NFS, Lustre and GPFS
------------------------------------
``flock``/``fcntl`` locks are not used: they are advisory, per node on some mounts, and lost
or silently local on others. ``O_EXCL`` creation is atomic on NFSv3 and later (Linux >= 2.6)
and on Lustre and GPFS, and so are ``rename`` and ``link`` within one folder. Liveness does
not depend on a process table that other nodes cannot see: a holder on another host counts
as alive while its heartbeat is fresh. Heartbeat ages compare two mtimes set on the same
file system; NFS servers set them with their own clock, so the hosts' clocks do not matter.
File systems that take the client's clock (Lustre) need the nodes' clocks to agree within
minutes, which NTP provides; :data:`STALE_AFTER` leaves ten minutes of room. A holder
stalled for longer than that (a frozen node) loses its lock, and notices at its next
heartbeat.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import asdict
from pathlib import Path
from types import TracebackType

from distdl.errors import OutputLockedError
from distdl.io.atomic import fsync_dir
from distdl.io.lock_file import (
    LOCK_FILE,
    LockHolder,
    LockState,
    lock_path,
    move_aside_if_same,
    now_iso,
    process_gone,
    read_lock,
    same_file,
    take_guard,
)

log = logging.getLogger("distdl.lock")

TOKEN_ENV = "DISTDL_LOCK_TOKEN"  # ranks started by the holder borrow its lock
JOB_ENV = "SLURM_JOB_ID"  # recorded in the lock
AFTER_JOB_ENV = "DISTDL_AFTER_JOB"  # the ended Slurm job this one follows in a chain
HEARTBEAT_INTERVAL = 30.0  # seconds between two heartbeats of the holder
STALE_AFTER = 600.0  # seconds without a heartbeat after which a lock is taken over
_TAKE_PATIENCE = 15.0  # seconds to keep trying while another process takes over
_TAKE_RETRY = 0.05


class OutputLock:
    """The lock of one output folder; use it as a context manager (see the module doc)."""

    def __init__(
        self,
        root: Path,
        command: str,
        *,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        stale_after: float = STALE_AFTER,
    ) -> None:
        self.root = Path(root)
        self.path = lock_path(self.root)
        self.command = command
        self.heartbeat_interval = heartbeat_interval
        self.stale_after = stale_after
        self.took_over_from: str | None = None  # the stale holder this lock replaced
        self.lost = False  # set by the heartbeat when another run took the lock over
        self._fd: int | None = None
        self._holder: LockHolder | None = None
        self._borrowed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._previous_env: str | None = None
        self._made_root = False  # the output folder did not exist before this lock

    # -- taking -------------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the lock, or raise OutputLockedError naming the live holder."""
        if self._borrow():
            return
        self._made_root = not self.root.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + _TAKE_PATIENCE
        while time.monotonic() < deadline:
            if self._create():
                self._start_heartbeat()
                return
            state = read_lock(self.root)
            if state is None:
                continue  # released meanwhile: try again
            reason = self._stale_reason(state)
            if reason is None:
                raise OutputLockedError(self._locked_message(state))
            if self._take_over(state, reason):
                self._start_heartbeat()
                return
            time.sleep(_TAKE_RETRY)  # another process is taking over: look again
        raise OutputLockedError(
            f"{self.root} is in use: another run kept taking over its stale lock {self.path} "
            f"for {_TAKE_PATIENCE:.0f} s; try again"
        )

    def _borrow(self) -> bool:
        """Ranks started by the holder run under its lock: no heartbeat, no release."""
        token = os.environ.get(TOKEN_ENV)
        state = read_lock(self.root) if token else None
        if state is None or state.holder is None or state.holder.token != token:
            return False
        if state.holder.pid == os.getpid():
            return False  # the holder itself, asking twice: a second run, not a rank
        self._borrowed = True
        return True

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
        except FileExistsError:
            return False
        now = now_iso()
        self._holder = LockHolder(
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=now,
            heartbeat_at=now,
            command=self.command,
            token=secrets.token_hex(8),
            job_id=os.environ.get(JOB_ENV) or None,
        )
        self._fd = fd
        try:
            self._write_record(self._holder)
        except BaseException:
            self._fd = None
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            raise
        fsync_dir(self.root)
        return True

    def _stale_reason(self, state: LockState) -> str | None:
        if state.holder is not None and process_gone(state.holder):
            return f"its process {state.holder.pid} on this host is gone"
        after = os.environ.get(AFTER_JOB_ENV)
        if after and state.holder is not None and state.holder.job_id == after:
            return f"its Slurm job {after} has ended: this job runs after it"
        if state.age > self.stale_after:
            return f"its last heartbeat is {state.age:.0f} s old"
        return None

    def _take_over(self, judged: LockState, reason: str) -> bool:
        """Replace the stale lock ``judged`` by ours; True when this process now holds it.

        Only the holder of the take-over guard may move a lock aside, so no two processes
        ever move lock files at once; contenders without it just retry their create.
        """
        guard = self.path.with_name(f"{LOCK_FILE}.takeover")
        if not take_guard(guard):
            return False
        try:
            if not move_aside_if_same(self.path, judged):
                return False  # released or replaced meanwhile: judge again
            who = judged.holder.describe() if judged.holder else "an unreadable lock"
            self.took_over_from = f"{who} ({reason})"
            log.warning("took over the stale lock %s of %s", self.path, self.took_over_from)
            return self._create()  # a plain create may still beat us to it: then we lose
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(guard)

    def _locked_message(self, state: LockState) -> str:
        who = (
            state.holder.describe()
            if state.holder is not None
            else "a run whose lock record is still being written"
        )
        return (
            f"{self.root} is in use by another distdl run: {who}, last heartbeat "
            f"{state.age:.0f} s ago. Wait for it to finish. Its lock {self.path} is taken over "
            f"automatically once that process is gone (same host) or its heartbeat is "
            f"{self.stale_after / 60:.0f} minutes old; delete the file yourself only if you "
            "are sure that run is dead."
        )

    # -- holding ------------------------------------------------------------------------
    def _write_record(self, holder: LockHolder) -> None:
        assert self._fd is not None
        data = holder.to_bytes()
        os.pwrite(self._fd, data, 0)
        os.ftruncate(self._fd, len(data))
        os.fsync(self._fd)  # pushes the new mtime to the file server

    def _start_heartbeat(self) -> None:
        assert self._holder is not None
        self._previous_env = os.environ.get(TOKEN_ENV)
        os.environ[TOKEN_ENV] = self._holder.token  # inherited by the ranks we launch
        self._thread = threading.Thread(
            target=self._beat, name="distdl-lock-heartbeat", daemon=True
        )
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_interval):
            if not self.still_ours():
                self.lost = True
                log.error(
                    "the lock %s was taken over by another run: this run's output may mix "
                    "with that run's",
                    self.path,
                )
                return
            assert self._holder is not None
            self._holder = LockHolder(**{**asdict(self._holder), "heartbeat_at": now_iso()})
            try:
                self._write_record(self._holder)
            except OSError as exc:  # a hiccup of the file server: try again next beat
                log.warning("could not refresh the lock %s: %s", self.path, exc)

    def still_ours(self) -> bool:
        """True while the lock path names the file this process created."""
        if self._fd is None:
            return self._borrowed
        try:
            return same_file(os.stat(self.path), os.fstat(self._fd))
        except OSError:
            return False

    # -- releasing ----------------------------------------------------------------------
    def release(self) -> None:
        """Stop the heartbeat and delete the lock if it is still ours; idempotent."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        if self._fd is None:
            return
        if self.still_ours():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        else:
            self.lost = True
        os.close(self._fd)
        self._fd = None
        if self._made_root:  # a start that failed before writing anything leaves nothing
            with contextlib.suppress(OSError):
                self.root.rmdir()  # only when empty
        if self._previous_env is None:
            os.environ.pop(TOKEN_ENV, None)
        else:
            os.environ[TOKEN_ENV] = self._previous_env

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
        if self.lost and exc_type is None:
            raise OutputLockedError(
                f"another run took over the lock {self.path} while this one was running "
                "(this run's heartbeat stopped for too long): check the output with "
                "`distdl status` and finish it with `distdl resume`"
            )
