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
* **Take-over** is itself race-safe: the stale file is renamed to a unique name (``rename``
  is atomic: of two contenders only one moves it), the moved file is checked to be the very
  inode that was judged stale, and only then deleted before a new ``O_EXCL`` create — which
  again only one process wins. Had a third run taken the lock in between, the moved file is
  linked back into place. A take-over is logged as a warning naming the previous holder.
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
import json
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType

import psutil

from distdl.errors import OutputLockedError
from distdl.io.atomic import fsync_dir

log = logging.getLogger("distdl.lock")

LOCK_FILE = "distdl.lock"
TOKEN_ENV = "DISTDL_LOCK_TOKEN"  # ranks started by the holder borrow its lock
HEARTBEAT_INTERVAL = 30.0  # seconds between two heartbeats of the holder
STALE_AFTER = 600.0  # seconds without a heartbeat after which a lock is taken over
_TAKE_ATTEMPTS = 5


def lock_path(root: Path) -> Path:
    return Path(root) / LOCK_FILE


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class LockHolder:
    """The record in the lock file."""

    host: str
    pid: int
    started_at: str
    heartbeat_at: str
    command: str
    token: str

    def to_bytes(self) -> bytes:
        # Fixed key order and fixed-width times: every heartbeat rewrites the same length.
        return (json.dumps(asdict(self), sort_keys=True) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes) -> LockHolder | None:
        """The record, or None while it is being written (or when it is damaged)."""
        try:
            fields = json.loads(data)
            return cls(**{name: fields[name] for name in cls.__dataclass_fields__})
        except (ValueError, TypeError, KeyError):
            return None

    def describe(self) -> str:
        return f"`{self.command}` on host {self.host}, pid {self.pid}, started {self.started_at}"


def _process_gone(holder: LockHolder) -> bool:
    """True when the holder ran on this host and its process no longer exists."""
    if holder.host != socket.gethostname():
        return False  # another node's processes are not ours to see
    try:
        created = psutil.Process(holder.pid).create_time()
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False
    try:
        started = datetime.fromisoformat(holder.started_at).timestamp()
    except ValueError:
        return False
    return created > started + 2  # the pid was reused by a younger process


def _filesystem_now(folder: Path) -> float:
    """The file system's idea of now: the mtime of a file created there this instant."""
    probe = folder / f".{LOCK_FILE}.probe-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError:
        return time.time()
    try:
        return os.fstat(fd).st_mtime
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(probe)


@dataclass(frozen=True)
class LockState:
    """What the lock file says now: its holder (None while unreadable) and heartbeat age."""

    holder: LockHolder | None
    age: float
    stat: os.stat_result


def read_lock(root: Path) -> LockState | None:
    """The current lock of ``root``, or None when no run holds it."""
    path = lock_path(root)
    try:
        with open(path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            data = handle.read()
    except FileNotFoundError:
        return None
    age = max(0.0, _filesystem_now(Path(root)) - stat.st_mtime)
    return LockState(LockHolder.parse(data), age, stat)


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


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

    # -- taking -------------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the lock, or raise OutputLockedError naming the live holder."""
        if self._borrow():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        for _ in range(_TAKE_ATTEMPTS):
            if self._create():
                self._start_heartbeat()
                return
            state = read_lock(self.root)
            if state is None:
                continue  # released meanwhile: try again
            reason = self._stale_reason(state)
            if reason is None:
                raise OutputLockedError(self._locked_message(state))
            self._take_over(state, reason)
        raise OutputLockedError(
            f"{self.root} is in use: its lock {self.path} changed hands {_TAKE_ATTEMPTS} "
            "times while this run tried to take it; another run is starting here"
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
        now = _now_iso()
        self._holder = LockHolder(
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=now,
            heartbeat_at=now,
            command=self.command,
            token=secrets.token_hex(8),
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
        if state.holder is not None and _process_gone(state.holder):
            return f"its process {state.holder.pid} on this host is gone"
        if state.age > self.stale_after:
            return f"its last heartbeat is {state.age:.0f} s old"
        return None

    def _take_over(self, judged: LockState, reason: str) -> None:
        aside = self.path.with_name(f"{LOCK_FILE}.stale-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # another contender moved it first
        if not _same_file(os.stat(aside), judged.stat):
            # A third run took the lock between our look and our rename: give it back.
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)
            os.unlink(aside)
            return
        os.unlink(aside)
        who = judged.holder.describe() if judged.holder else "an unreadable lock"
        self.took_over_from = f"{who} ({reason})"
        log.warning("took over the stale lock %s of %s", self.path, self.took_over_from)

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
            self._holder = LockHolder(**{**asdict(self._holder), "heartbeat_at": _now_iso()})
            try:
                self._write_record(self._holder)
            except OSError as exc:  # a hiccup of the file server: try again next beat
                log.warning("could not refresh the lock %s: %s", self.path, exc)

    def still_ours(self) -> bool:
        """True while the lock path names the file this process created."""
        if self._fd is None:
            return self._borrowed
        try:
            return _same_file(os.stat(self.path), os.fstat(self._fd))
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
