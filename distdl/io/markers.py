"""Completion markers: a partition is done exactly when its ``completed`` file exists.

The marker is written atomically, after both parquet files have been renamed into place,
so its presence proves the files are whole. Its content is a small JSON summary (counts,
time, host, attempt); an empty marker (as older tools wrote) still counts as done.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from distdl.io.atomic import atomic_write_text, fsync_dir
from distdl.layout import COMPLETED_MARKER

_SERVER_PREFIX = "server_name="
_PARTITION_PREFIX = "partition_id="


def marker_path(partition_dir: Path) -> Path:
    return Path(partition_dir) / COMPLETED_MARKER


def is_completed(partition_dir: Path) -> bool:
    return marker_path(partition_dir).is_file()


def write_marker(partition_dir: Path, summary: Mapping[str, object]) -> None:
    """Atomically mark ``partition_dir`` done; call only once its files are in place."""
    text = json.dumps(dict(summary), indent=2, sort_keys=True, default=str) + "\n"
    atomic_write_text(marker_path(partition_dir), text)


def read_marker(partition_dir: Path) -> dict[str, object] | None:
    """The marker's summary, ``{}`` for an empty or foreign marker, None when not done."""
    try:
        text = marker_path(partition_dir).read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except UnicodeDecodeError:
        return {}
    try:
        content = json.loads(text)
    except ValueError:
        return {}
    return content if isinstance(content, dict) else {}


def remove_marker(partition_dir: Path) -> bool:
    """Mark ``partition_dir`` not done; True when a marker was removed."""
    try:
        marker_path(partition_dir).unlink()
    except FileNotFoundError:
        return False
    fsync_dir(Path(partition_dir))
    return True


def _subdirs_with_prefix(folder: str, prefix: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return [e for e in entries if e.name.startswith(prefix) and e.is_dir()]
    except (FileNotFoundError, NotADirectoryError):
        return []


def partition_dirs(images_root: Path) -> Iterator[tuple[str, int, Path]]:
    """``(safe server folder name, partition id, folder)`` of every partition folder.

    Walks ``server_name=*/partition_id=<n>`` with ``os.scandir`` (fast on 100k partitions);
    server names are their folder names (see :func:`distdl.core.urls.safe_dir_name`),
    undecoded, and folders whose id is not a number are skipped.
    """
    for server in _subdirs_with_prefix(os.fspath(images_root), _SERVER_PREFIX):
        server_dir_name = server.name[len(_SERVER_PREFIX) :]
        for partition in _subdirs_with_prefix(server.path, _PARTITION_PREFIX):
            try:
                partition_id = int(partition.name[len(_PARTITION_PREFIX) :])
            except ValueError:
                continue
            yield server_dir_name, partition_id, Path(partition.path)


def completed_partitions(images_root: Path) -> set[tuple[str, int]]:
    """``(safe server folder name, partition id)`` of every partition with a marker."""
    return {
        (server, partition_id)
        for server, partition_id, folder in partition_dirs(images_root)
        if os.path.isfile(os.path.join(folder, COMPLETED_MARKER))
    }
