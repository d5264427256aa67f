"""What resets moved aside: ``<name>.previous-<time>`` entries in the output folder.

``distdl reset`` never deletes a user's images or learned rates unasked: it renames them
(:mod:`distdl.reset`). They pile up; ``distdl status`` lists them with their sizes and
``distdl reset CONFIG --purge-previous`` removes them (strictly inside the output folder).
"""

from __future__ import annotations

import os
from pathlib import Path

from distdl.io.atomic import safe_rmtree
from distdl.layout import Layout

MARK = ".previous-"


def previous_entries(layout: Layout) -> list[Path]:
    """Every entry a reset moved aside (not those inside another such entry)."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(layout.root):
        for name in sorted(dirs + files):
            if MARK in name:
                found.append(Path(folder) / name)
        dirs[:] = [name for name in dirs if MARK not in name]  # not inside one
    return sorted(found)


def size_of(path: Path) -> int:
    if not path.is_dir() or path.is_symlink():
        return path.lstat().st_size
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total


def purge_previous(layout: Layout) -> str:
    """Remove them; one line per entry removed."""
    lines = []
    for path in previous_entries(layout):
        size = size_of(path)
        safe_rmtree(path, layout.root)
        lines.append(f"removed {path} ({size / 1e6:.1f} MB)")
    return "\n".join(lines) or "nothing was moved aside by a reset"
