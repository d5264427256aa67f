"""What the stop and dead-rank tests share: a fleet slow enough that a run lasts, `distdl`
started as a real process, and the checks after a stop — one ``stopped:`` line, its exit
code, no traceback anywhere, and after `distdl resume` every input uuid exactly once with
no image served twice (what a stop had fetched was kept)."""

from __future__ import annotations

import csv
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from support import assert_exactly_once, layout_of, write_config

from distdl.core.stopping import DEFAULT_GRACE
from distdl.io.markers import completed_partitions
from distdl.testing.fleet import HostSpec, RequestRecord
from distdl.testing.fleet_thread import FleetThread
from distdl.testing.fleet_workload import write_url_list

ROWS = {"a": 40, "b": 40, "c": 30}
BATCH_SIZE = 10
BUDGET = 4.0  # req/s per host, hand-set: three hosts at 4 req/s make the run last ~10 s
RESUME_BUDGET = 40.0  # the resume has no reason to be slow
HOSTS = [HostSpec(name, rate_limit=60, latency=0.05) for name in ROWS]
STOPPED = re.compile(r"^stopped: (\d+) partitions done, (\d+) left; continue with: distdl resume ")


def start_fleet(seed: int = 11) -> FleetThread:
    thread = FleetThread(HOSTS, seed=seed)
    thread.start()
    return thread


def prepare(folder: Path, thread: FleetThread, **params: object) -> Path:
    """A URL list, a config and hand-set budgets, planned and profiled (no network)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_url_list(thread.fleet, folder / "urls.csv", ROWS, sizes=((64, 48),), bad_rows=2)
    config = write_config(
        folder, batch_size=BATCH_SIZE, default_rate_limit=BUDGET, max_retries=1, **params
    )
    (folder / "out").mkdir(exist_ok=True)
    hand_set(config, thread, BUDGET)
    planned = distdl("run", config, "--until", "profiled", "--ranks", "1")
    assert planned.returncode == 0, planned.stderr
    return config


def hand_set(config: Path, thread: FleetThread, budget: float) -> None:
    """Every host's budget, written by hand into the output's profiles table."""
    budgets = "".join(f"{thread.fleet.server_name(name)},{budget}\n" for name in ROWS)
    profiles = config.parent / "out" / "servers_profiles.csv"
    profiles.write_text("server_name,rate_limit\n" + budgets)


def copy_of(template: Path, folder: Path) -> Path:
    shutil.copytree(template, folder, dirs_exist_ok=True)
    return folder / "config.yaml"


def distdl(*args: str | Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "distdl", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_run(config: Path, ranks: int, *extra: str) -> subprocess.Popen[str]:
    """``distdl run`` in a session of its own: signals reach only whom a test sends them."""
    return subprocess.Popen(
        [sys.executable, "-m", "distdl", "run", str(config), "--ranks", str(ranks), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for_partitions(config: Path, process: subprocess.Popen[str], done: int) -> None:
    """Until ``done`` partitions (the planning rejects included) have their marker."""
    images = layout_of(config).images
    deadline = time.monotonic() + 120
    while len(completed_partitions(images)) < done:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.05)


@dataclass
class Ended:
    code: int
    stdout: str
    stderr: str
    seconds: float  # from the signal to the exit

    @property
    def text(self) -> str:
        return self.stdout + self.stderr


def signal_and_wait(process: subprocess.Popen[str], signum: int, pid: int | None = None) -> Ended:
    sent = time.monotonic()
    os.kill(process.pid if pid is None else pid, signum)
    stdout, stderr = process.communicate(timeout=DEFAULT_GRACE + 60)
    return Ended(process.returncode, stdout, stderr, time.monotonic() - sent)


def assert_stopped(ended: Ended, signum: int) -> int:
    """One ``stopped:`` line, the signal's exit code, no traceback, within the grace; the
    number of partitions it says are left (a stop mid-run leaves some)."""
    expected = 130 if signum == signal.SIGINT else 143
    assert ended.code == expected, ended.text
    assert "Traceback" not in ended.text, ended.text
    lines = [line for line in ended.text.splitlines() if line.startswith("stopped:")]
    assert len(lines) == 1, ended.text
    found = STOPPED.match(lines[0])
    assert found, lines[0]
    assert ended.seconds < DEFAULT_GRACE, ended.seconds
    return int(found.group(2))


def observed_latencies(config: Path) -> list[str]:
    """The latency column of the profiles table: filled by a run that saved what it saw of
    the hosts, empty after planning."""
    profiles = config.parent / "out" / "servers_profiles.csv"
    with profiles.open(newline="") as table:
        return [row.get("latency_ms") or "" for row in csv.DictReader(table)]


def images_served(records: list[RequestRecord]) -> Counter[tuple[str, str]]:
    """How many times each image was served whole (status 200)."""
    return Counter(
        (record.host, record.path)
        for record in records
        if record.status == 200 and record.path.startswith("/img")
    )


def assert_resumed_exactly_once(
    config: Path, thread: FleetThread, since: float, ranks: int = 1
) -> None:
    """Resume; every uuid once, and no image served twice since ``since`` (monotonic: the
    fleet runs in this process)."""
    hand_set(config, thread, RESUME_BUDGET)
    resumed = distdl("resume", config, "--ranks", str(ranks))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_exactly_once(config.parent / "urls.csv", layout_of(config))
    partitions = sum(math.ceil(n / BATCH_SIZE) for n in ROWS.values())
    assert f"dataset: {partitions}/{partitions} partitions done" in resumed.stdout
    records = [record for record in thread.snapshot() if record.time >= since]
    twice = [key for key, n in images_served(records).items() if n > 1]
    assert not twice, f"images fetched again after the stop: {twice[:5]}"
