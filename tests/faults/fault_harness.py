"""What the fault tests share: a small fleet, distdl runs in a subprocess, and the checks
that must hold after any fault — every input uuid exactly once in successes ∪ errors, every
parquet file readable, and no marker on data that is not whole."""

from __future__ import annotations

import math
import os
import resource
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq
from support import assert_exactly_once, layout_of, visible_temp_files, write_config

from distdl.io.lock import LOCK_FILE, LockHolder
from distdl.io.markers import partition_dirs, read_marker
from distdl.layout import ERRORS_FILE, SUCCESSES_FILE, Layout
from distdl.testing.fleet import HostSpec
from distdl.testing.fleet_thread import FleetThread
from distdl.testing.fleet_workload import write_url_list

ROWS = {"a": 45, "b": 30, "c": 12}  # batch_size 15: 3 + 2 + 1 partitions
BATCH_SIZE = 15
HOSTS = [
    HostSpec("a", rate_limit=200, not_found_rate=0.1),
    HostSpec("b", rate_limit=200, corrupt_rate=0.1),
    HostSpec("c", rate_limit=200),
]


def start_fleet(hosts: list[HostSpec] = HOSTS, seed: int = 5) -> FleetThread:
    thread = FleetThread(hosts, seed=seed)
    thread.start()
    return thread


def prepare(
    folder: Path, thread: FleetThread, rows: dict[str, int] = ROWS, budget: float = 100
) -> Path:
    """A URL list for the fleet (small images, a few bad rows) and a config; planned and
    profiled, so that a fault only meets the download."""
    folder.mkdir(parents=True, exist_ok=True)
    write_url_list(thread.fleet, folder / "urls.csv", rows, sizes=((64, 48),), bad_rows=3)
    config = write_config(folder, batch_size=BATCH_SIZE, default_rate_limit=100)
    # Hand-set budgets: the run goes at the hosts' pace from the first request.
    budgets = "".join(f"{thread.fleet.server_name(name)},{budget}\n" for name in rows)
    (folder / "out").mkdir(exist_ok=True)
    (folder / "out" / "servers_profiles.csv").write_text("server_name,rate_limit\n" + budgets)
    planned = distdl("run", config, "--until", "profiled", "--ranks", "1")
    assert planned.returncode == 0, planned.stderr
    return config


def copy_of(template: Path, folder: Path) -> Path:
    """A planned output of its own for one test, copied from a template made by
    :func:`prepare` (paths in the config are relative, so the copy stands alone)."""
    shutil.copytree(template, folder, dirs_exist_ok=True)
    return folder / "config.yaml"


def distdl(
    *args: str | Path,
    env: dict[str, str] | None = None,
    file_size_limit: int | None = None,
    timeout: float = 150,
) -> subprocess.CompletedProcess[str]:
    """``python -m distdl ARGS``; ``file_size_limit`` sets RLIMIT_FSIZE in the child, so a
    write past it fails with EFBIG (Python ignores SIGXFSZ) as on a full quota."""
    preexec: Callable[[], None] | None = None
    if file_size_limit is not None:
        limit = file_size_limit

        def preexec() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "distdl", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        preexec_fn=preexec,
    )


def assert_markers_truthful(layout: Layout) -> int:
    """Every marker sits on whole files whose footers count what the marker says, adding up
    to the plan; every visible parquet file reads. Returns the number of done partitions."""
    done = 0
    for _, _, folder in partition_dirs(layout.images):
        for name in (SUCCESSES_FILE, ERRORS_FILE):
            if (folder / name).exists():
                pq.read_metadata(folder / name)  # raises on a file without a footer
        marker = read_marker(folder)
        if marker is None:
            continue
        done += 1
        if folder == layout.rejected_dir:
            continue  # written at planning, an empty marker
        successes = pq.read_metadata(folder / SUCCESSES_FILE).num_rows
        errors = pq.read_metadata(folder / ERRORS_FILE).num_rows
        assert (marker["successes"], marker["errors"]) == (successes, errors), folder
        assert marker["planned_rows"] == successes + errors, folder
    return done


def assert_complete(config: Path, rows: dict[str, int] = ROWS) -> tuple[int, int]:
    """After the resume: everything done, exactly once, nothing half-written left behind."""
    layout = layout_of(config)
    counts = assert_exactly_once(config.parent / "urls.csv", layout)
    partitions = sum(math.ceil(n / BATCH_SIZE) for n in rows.values())
    assert assert_markers_truthful(layout) == partitions + 1  # + the planning rejects
    assert visible_temp_files(layout.images) == []
    return counts


def plant_dead_lock(root: Path) -> None:
    """The lock a run killed on this host leaves behind: its pid no longer exists."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    holder = LockHolder(
        socket.gethostname(), gone.pid, now, now, "distdl run crashed.yaml", "0" * 16
    )
    (root / LOCK_FILE).write_bytes(holder.to_bytes())


def log_text(config: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in layout_of(config).logs.glob("*.log"))
