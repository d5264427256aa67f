"""The plan is built in a sibling staging folder and swapped in whole, so it is never partial.

``{urls}.tmp-<pid>`` is filled, then the old ``{urls}`` (if any) is renamed to
``{urls}.old-<pid>``, the staging folder renamed to ``{urls}`` and the old one deleted.
Every delete goes through :func:`distdl.io.atomic.safe_rmtree`, which refuses anything not
strictly inside the output folder.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from distdl.errors import StateError
from distdl.io.atomic import fsync_dir, safe_rmtree
from distdl.layout import Layout


def staging_dir(layout: Layout) -> Path:
    return layout.urls.with_name(f"{layout.urls.name}.tmp-{os.getpid()}")


def create_staging_dir(layout: Layout) -> Path:
    """A fresh, empty staging folder; leftovers of crashed planners are removed first."""
    _remove_leftovers(layout)
    staging = staging_dir(layout)
    if not layout.is_inside(staging):
        raise StateError(f"the urls folder {layout.urls} is not inside the output folder")
    if staging.exists():
        safe_rmtree(staging, layout.root)
    staging.mkdir(parents=True)
    return staging


def discard_staging_dir(layout: Layout, staging: Path) -> None:
    if os.path.lexists(staging):
        safe_rmtree(staging, layout.root)


def swap_into_place(layout: Layout, staging: Path) -> None:
    """Make ``staging`` the urls folder, replacing any previous plan."""
    target = layout.urls
    aside: Path | None = None
    if os.path.lexists(target):
        if not layout.is_inside(target):
            raise StateError(f"refusing to replace {target}: it is not inside {layout.root}")
        aside = target.with_name(f"{target.name}.old-{os.getpid()}")
        os.replace(target, aside)
    os.replace(staging, target)
    fsync_dir(target.parent)
    if aside is not None:
        safe_rmtree(aside, layout.root)


def _remove_leftovers(layout: Layout) -> None:
    """Delete staging/aside folders whose planner process is gone."""
    pattern = glob.escape(str(layout.urls))
    for path in [*glob.glob(f"{pattern}.tmp-*"), *glob.glob(f"{pattern}.old-*")]:
        pid_text = path.rsplit("-", 1)[-1]
        if pid_text.isdigit() and not _process_alive(int(pid_text)):
            safe_rmtree(Path(path), layout.root)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # ours from an earlier, failed attempt in this very process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
