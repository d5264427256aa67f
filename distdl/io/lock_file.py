"""The lock file's record and the file operations :mod:`distdl.io.lock` is built from.

Every operation here is one that stays atomic on NFSv3+, Lustre and GPFS: ``O_EXCL``
create, ``rename``, ``link`` and ``unlink`` within one folder, and reading a small file.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import psutil

LOCK_FILE = "distdl.lock"
TAKEOVER_STALE_AFTER = 30.0  # seconds: a take-over takes milliseconds; its taker died


def lock_path(root: Path) -> Path:
    return Path(root) / LOCK_FILE


def now_iso() -> str:
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
    job_id: str | None = None  # the Slurm job of the holder, when it runs in one

    def to_bytes(self) -> bytes:
        # Fixed key order and fixed-width times: every heartbeat rewrites the same length.
        return (json.dumps(asdict(self), sort_keys=True) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes) -> LockHolder | None:
        """The record, or None while it is being written (or when it is damaged)."""
        try:
            fields = json.loads(data)
            # Records written before job ids were kept have none.
            optional = {"job_id": fields.get("job_id")}
            required = [name for name in cls.__dataclass_fields__ if name not in optional]
            return cls(**{name: fields[name] for name in required}, **optional)
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    def describe(self) -> str:
        job = f" (Slurm job {self.job_id})" if self.job_id else ""
        return (
            f"`{self.command}`{job} on host {self.host}, pid {self.pid}, started {self.started_at}"
        )


def process_gone(holder: LockHolder) -> bool:
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


def filesystem_now(folder: Path) -> float:
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
    raw: bytes

    def same_file_as(self, other: LockState | None) -> bool:
        """True when ``other`` is this very lock file, not a newer one.

        The inode alone does not tell: file systems reuse a deleted file's inode number at
        once, so a fresh lock created right after a take-over may carry the stale one's.
        Its content (a new random token) and its mtime differ, though.
        """
        return (
            other is not None
            and same_file(other.stat, self.stat)
            and other.stat.st_mtime_ns == self.stat.st_mtime_ns
            and other.raw == self.raw
        )


def read_lock(root: Path) -> LockState | None:
    """The current lock of ``root``, or None when no run holds it."""
    return read_state(lock_path(root), Path(root))


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def read_state(path: Path, folder: Path) -> LockState | None:
    try:
        with open(path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            data = handle.read()
    except FileNotFoundError:
        return None
    age = max(0.0, filesystem_now(folder) - stat.st_mtime)
    return LockState(LockHolder.parse(data), age, stat, data)


def move_aside_if_same(path: Path, judged: LockState) -> bool:
    """Remove ``path`` if it still is the file ``judged`` described; True when removed.

    Looked at first without touching it (contenders only ever create files, so a file that
    is the judged one now stays it, unless its own holder releases it). Then renamed aside
    (atomic) and compared again: a file that turns out to be newer is linked back.
    """
    if not judged.same_file_as(read_state(path, path.parent)):
        return False
    aside = path.with_name(f"{path.name}.stale-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    if judged.same_file_as(read_state(aside, path.parent)):
        os.unlink(aside)
        return True
    with contextlib.suppress(FileExistsError):
        os.link(aside, path)
    os.unlink(aside)
    return False


def take_guard(guard: Path) -> bool:
    """Create the take-over guard; a guard left by a taker that died is removed first."""
    for _ in range(2):
        try:
            fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            state = read_state(guard, guard.parent)
            if state is None or state.age <= TAKEOVER_STALE_AFTER:
                return False
            move_aside_if_same(guard, state)
            continue
        try:
            os.write(fd, f"{socket.gethostname()} {os.getpid()} {secrets.token_hex(8)}\n".encode())
        finally:
            os.close(fd)
        return True
    return False
