"""`distdl status` and the live progress, on real runs of the simulated fleet: the numbers
status prints are the parquet files' own, on a finished run and on one a signal stopped;
the state file moves with every row (not per partition); the `--json` schema."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from stop_harness import (
    ROWS,
    copy_of,
    distdl,
    hand_set,
    prepare,
    signal_and_wait,
    start_fleet,
    start_run,
)
from support import layout_of, write_config

from distdl.api import RunOptions, run
from distdl.api import status as status_text
from distdl.io.markers import completed_partitions
from distdl.layout import Layout
from distdl.testing.fleet import HostSpec
from distdl.testing.fleet_thread import FleetThread
from distdl.testing.fleet_workload import write_url_list

pytestmark = pytest.mark.timeout(180)

PROGRESS = re.compile(
    r"(\d+)/(\d+) rows \([\d.]+%\), (\d+) images, (\d+) errors \| .* \| (\d+)/(\d+) partitions done"
)

# The documented schema (distdl/status.py): key -> type, nested objects as dicts.
HOST_KEYS = {
    "server_name": str,
    "rows_planned": int,
    "rows_stored": int,
    "rows_left": int,
    "successes": int,
    "errors": int,
    "error_share": float,
    "budget": (float, int, type(None)),
    "requests": (int, type(None)),
    "rate_limited": (int, type(None)),
    "server_errors": (int, type(None)),
    "latency_ms": (float, int, type(None)),
    "unreachable": (str, type(None)),
}
CRITICAL_KEYS = {
    "server_name": str,
    "rows_left": int,
    "rate": (float, int),
    "best_rate": (float, int),
    "seconds_low": (float, int, type(None)),
    "seconds_high": (float, int, type(None)),
    "limited_by": str,
}
STATUS_KEYS = {
    "schema": str,
    "output": str,
    "stages": {"batched": bool, "profiled": bool, "downloaded": bool},
    "lock": (dict, type(None)),
    "partitions": {"planned": int, "done": int, "leased": int, "pending": int},
    "rows": {
        "planned": int,
        "stored": int,
        "successes": int,
        "errors": int,
        "errors_by_code": dict,
        "rejected": int,
        "ignored": int,
        "unreadable_files": int,
    },
    "hosts": list,
    "eta": {"low_s": (float, int, type(None)), "high_s": (float, int, type(None))},
    "run": (dict, type(None)),
    "previous": list,
}
RUN_KEYS = {
    "updated_at": str,
    "started_at": str,
    "elapsed_s": (float, int),
    "ended": (str, type(None)),
    "active": bool,
    "workers": int,
    "rows": {"planned": int, "settled": int, "successes": int, "errors": int},
    "rates": {
        "rows_per_s": (float, int),
        "images_per_s": (float, int),
        "bytes_per_s": (float, int),
        "requests_per_s": (float, int),
        "rate_limited_share": (float, int),
    },
    "answers": {
        "requests": int,
        "ok": int,
        "rate_limited": int,
        "server_errors": int,
        "timeouts": int,
    },
    "bytes": int,
}


def _check(doc: dict[str, Any], keys: dict[str, Any], where: str) -> None:
    assert set(keys) <= set(doc), f"{where}: missing {set(keys) - set(doc)}"
    for key, kind in keys.items():
        if isinstance(kind, dict):
            assert isinstance(doc[key], dict), f"{where}.{key}"
            _check(doc[key], kind, f"{where}.{key}")
        else:
            assert isinstance(doc[key], kind), f"{where}.{key} = {doc[key]!r}"


def assert_status_schema(doc: dict[str, Any]) -> None:
    assert doc["schema"] == "distdl.status/1"
    _check(doc, STATUS_KEYS, "status")
    for host in doc["hosts"]:
        _check(host, HOST_KEYS, "host")
    for host in doc["eta"]["critical"]:
        _check(host, CRITICAL_KEYS, "critical")
    if doc["run"] is not None:
        _check(doc["run"], RUN_KEYS, "run")
    for code, count in doc["rows"]["errors_by_code"].items():
        assert int(code) != 0 and isinstance(count, int)


def parquet_numbers(layout: Layout) -> dict[str, Any]:
    """What the output's parquet files hold, read directly (planning rejects apart)."""
    successes = errors = 0
    codes: Counter[str] = Counter()
    for path in layout.images.glob("server_name=*/partition_id=*/*.parquet"):
        if path.parent == layout.rejected_dir:
            continue
        if path.name == "successes.parquet":
            successes += pq.read_metadata(path).num_rows
        else:
            table = pq.read_table(path, columns=["error_code"])
            errors += table.num_rows
            codes.update(str(code) for code in table.column("error_code").to_pylist())
    done = {key for key in completed_partitions(layout.images) if key[0] != "%5Frejected"}
    return {
        "successes": successes,
        "errors": errors,
        "stored": successes + errors,
        "errors_by_code": dict(codes),
        "done": len(done),
    }


def assert_status_matches_files(doc: dict[str, Any], layout: Layout) -> None:
    files = parquet_numbers(layout)
    rows = doc["rows"]
    assert (rows["successes"], rows["errors"], rows["stored"]) == (
        files["successes"],
        files["errors"],
        files["stored"],
    )
    assert rows["errors_by_code"] == files["errors_by_code"]
    assert doc["partitions"]["done"] == files["done"]
    assert sum(host["rows_stored"] for host in doc["hosts"]) == files["stored"]


def _status(config: Path) -> dict[str, Any]:
    return json.loads(status_text(config, as_json=True))


def test_status_of_a_finished_run_equals_its_files(tmp_path: Path) -> None:
    hosts = [
        HostSpec("fast", rate_limit=60, not_found_rate=0.2),
        HostSpec("slow", rate_limit=30, error_rate_5xx=0.1),
    ]
    with FleetThread(hosts, seed=4) as fleet:
        write_url_list(fleet, tmp_path / "urls.csv", {"fast": 30, "slow": 20}, bad_rows=2)
        config = write_config(tmp_path, default_rate_limit=30, max_retries=1)
        run(config, RunOptions(ranks=1))
    layout = layout_of(config)
    doc = _status(config)
    assert_status_schema(doc)
    assert_status_matches_files(doc, layout)
    assert doc["stages"] == {"batched": True, "profiled": True, "downloaded": True}
    assert doc["rows"]["stored"] == doc["rows"]["planned"] == 50
    assert doc["rows"]["rejected"] == 2
    assert doc["partitions"]["pending"] == 0 and doc["lock"] is None
    assert all(host["rows_left"] == 0 for host in doc["hosts"])
    run_state = doc["run"]
    assert run_state["ended"] == "finished" and not run_state["active"]
    assert run_state["answers"]["requests"] >= 50
    text = status_text(config)
    assert "partitions: 3/3 done" in text and "404" in text


def test_the_state_moves_with_rows_and_status_of_a_stopped_run_equals_its_files(
    tmp_path: Path,
) -> None:
    thread = start_fleet()
    try:
        thread_folder = tmp_path / "planned"
        prepare(thread_folder, thread, progress_interval=0.5)
        config = copy_of(thread_folder, tmp_path / "run")
        hand_set(config, thread, 2.0)  # 10 rows a partition at 2 req/s: 5 s each
        before = _status(config)
        assert before["eta"]["source"] == "plan"
        assert before["eta"]["critical"][0]["rows_left"] == max(ROWS.values())
        assert before["eta"]["high_s"] >= max(ROWS.values()) / 2.0
        process = start_run(config, 1)
        layout = layout_of(config)
        deadline = time.monotonic() + 60
        live = None
        while time.monotonic() < deadline and process.poll() is None:
            doc = _status(config)
            if doc["run"] is not None and doc["run"]["active"] and doc["partitions"]["done"] >= 1:
                live = doc
                break
            time.sleep(0.2)
        assert live is not None, "no live state while the run went on"
        assert_status_schema(live)
        assert live["lock"] is not None and live["eta"]["source"] == "run"
        ended = signal_and_wait(process, signal.SIGINT)
    finally:
        thread.stop()
    assert ended.code == 130, ended.text
    doc = _status(config)
    assert_status_schema(doc)
    assert_status_matches_files(doc, layout)
    assert doc["run"]["ended"] == "stopped" and doc["partitions"]["pending"] > 0
    assert doc["eta"]["source"] == "plan" and doc["eta"]["high_s"] > 0
    # Not on a terminal: plain progress lines, whose row counts moved between completions.
    lines = [PROGRESS.search(line) for line in ended.stderr.splitlines()]
    found = [match for match in lines if match]
    assert found, ended.stderr
    assert any(int(m.group(1)) > 0 and int(m.group(5)) == 0 for m in found), ended.stderr


def test_quiet_prints_no_progress_and_status_json_on_the_command_line(tmp_path: Path) -> None:
    hosts = [HostSpec("h", rate_limit=60)]
    with FleetThread(hosts, seed=2) as fleet:
        write_url_list(fleet, tmp_path / "urls.csv", {"h": 20})
        config = write_config(tmp_path, default_rate_limit=20, progress_interval=0.1)
        ran = distdl("run", config, "--ranks", "1", "--quiet")
    assert ran.returncode == 0, ran.stderr
    assert not PROGRESS.search(ran.stderr), ran.stderr
    shown = distdl("status", config, "--json")
    assert shown.returncode == 0, shown.stderr
    assert_status_schema(json.loads(shown.stdout))


def test_until_profiled_prints_the_download_time_and_the_host_that_decides_it(
    tmp_path: Path,
) -> None:
    hosts = [HostSpec("slow", rate_limit=60), HostSpec("quick", rate_limit=60)]
    with FleetThread(hosts, seed=3) as fleet:  # nothing is fetched: only names are needed
        write_url_list(fleet, tmp_path / "urls.csv", {"slow": 40, "quick": 40})
        config = write_config(tmp_path, default_rate_limit=5, max_rate_limit=50)
        slow, quick = fleet.server_name("slow"), fleet.server_name("quick")
    (tmp_path / "out").mkdir()
    profiles = f"server_name,rate_limit\n{slow},0.001\n"  # 40 rows: 40 000 s at this budget
    (tmp_path / "out" / "servers_profiles.csv").write_text(profiles)
    outcome = run(config, RunOptions(until="profiled", ranks=3))
    lines = outcome.summary.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("download time on 2"))
    assert "11 h 6 min" in lines[start]
    assert slow in lines[start + 1] and "hand-set rate_limit" in lines[start + 1]
    assert quick in lines[start + 2] and "still learning" in lines[start + 2]
    assert outcome.completed_stages == ["batched", "profiled"]


def test_status_of_a_killed_run_equals_its_files_and_says_it_is_not_running(
    tmp_path: Path,
) -> None:
    thread = start_fleet(seed=12)
    try:
        config = prepare(tmp_path, thread)
        hand_set(config, thread, 3.0)
        process = start_run(config, 1)
        layout = layout_of(config)
        deadline = time.monotonic() + 60
        while len(completed_partitions(layout.images)) < 3:  # the rejects' and two more
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGKILL)  # no chance to say it ended
        process.communicate(timeout=30)
    finally:
        thread.stop()
    doc = _status(config)
    assert_status_schema(doc)
    assert_status_matches_files(doc, layout)
    assert doc["lock"] is not None  # left behind by the killed run
    assert doc["run"]["ended"] is None and not doc["run"]["active"]
    assert doc["eta"]["source"] == "plan" and doc["partitions"]["leased"] == 0
    assert "last run: interrupted" in status_text(config)
