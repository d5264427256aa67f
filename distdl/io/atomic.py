"""Crash-safe file operations: atomic writes, stale-temp cleanup and a guarded delete.

A file is written under a hidden temporary name in its final folder, flushed to disk, then
renamed over the final name with ``os.replace`` (atomic on POSIX), and the folder is fsynced
so the rename itself survives a power cut. Readers therefore see either the old file or the
new one, never a half-written one. Temporary names start with ``.`` and end in
``.tmp-<pid>-<random>``, so they never match ``*.parquet`` globs.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from distdl.errors import StateError

_TEMP_NAME = re.compile(r"^\..+\.tmp-\d+-[0-9a-f]{8}$")


def temp_path_for(path: Path) -> Path:
    """A hidden, unique sibling of ``path`` to write before renaming over it."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def is_temp_name(name: str) -> bool:
    """True for names made by :func:`temp_path_for` (and only those)."""
    return _TEMP_NAME.match(name) is not None


def fsync_file(path: Path) -> None:
    """Flush a closed file's data to disk (any fd of the inode will do)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Make renames and deletions in ``folder`` durable.

    Some file systems (certain network mounts) refuse to fsync a folder; the rename is
    still atomic there, only its durability after a power cut is up to the server.
    """
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(folder: Path, *, threads: int = 16) -> int:
    """Flush every file and folder under ``folder`` to disk; return how many were synced.

    For trees written without fsyncs (the plan's thousands of small files) before a
    checkpoint declares them done. Symlinks are not followed. The fsyncs run on a few
    threads: file systems batch concurrent flushes into far fewer journal commits.
    """
    paths: list[str] = []
    for parent, _dirs, files in os.walk(folder):
        paths.append(parent)
        paths.extend(
            path
            for path in (os.path.join(parent, name) for name in files)
            if not os.path.islink(path)
        )
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fsync") as pool:
        for _ in pool.map(_fsync_path, paths):
            pass
    return len(paths)


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL or not os.path.isdir(path):
            raise  # a folder some file systems refuse to fsync is fine, a file is not
    finally:
        os.close(fd)


def publish(temp: Path, final: Path) -> None:
    """Durably rename a fully written, closed ``temp`` file to ``final``."""
    fsync_file(temp)
    os.replace(temp, final)
    fsync_dir(Path(final).parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a crash leaves either the old or the new content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path_for(path)
    try:
        with open(temp, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str, encoding: str = "utf-8") -> None:
    atomic_write_bytes(path, text.encode(encoding))


def remove_stale_temps(folder: Path) -> int:
    """Delete our temporary files left under ``folder`` by a crash; return how many.

    Only names made by :func:`temp_path_for` are touched, and symlinked folders are not
    entered. It cannot tell a crashed writer's temp from a live one's, so call it only
    where no other writer can be at work: another run cannot, since every run, resume and
    reset holds the output lock (:mod:`distdl.io.lock`), and within a run a partition's
    folder is written by the one lease that holds it.
    """
    removed = 0
    for parent, _dirs, files in os.walk(folder):
        for name in files:
            if is_temp_name(name):
                try:
                    os.unlink(os.path.join(parent, name))
                except FileNotFoundError:
                    continue
                removed += 1
    return removed


def _strictly_inside(target: Path, root: Path) -> bool:
    return target != root and root in target.parents


def safe_rmtree(path: Path, root: Path) -> bool:
    """Delete ``path`` (a folder tree or a file) only if it lies strictly inside ``root``.

    Both are resolved first, so ``..`` components and symlinks pointing out of ``root`` are
    judged by where they really lead. ``root`` itself is refused too. Symlinks met inside the
    tree are removed as links, never followed. Returns False when ``path`` does not exist.

    Raises :class:`~distdl.errors.StateError` (not ``ValueError``) on a refusal: it reaches
    the user as a clean CLI error (exit 4) rather than a traceback, and it almost always
    means an output path in the config points somewhere unexpected.
    """
    real_root = Path(root).resolve()
    target = Path(path).resolve()
    if not _strictly_inside(target, real_root):
        raise StateError(
            f"refusing to delete {path}: it resolves to {target}, which is not strictly "
            f"inside the output folder {real_root}"
        )
    if not os.path.lexists(target):
        return False
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    else:
        target.unlink()
    fsync_dir(target.parent)
    return True
