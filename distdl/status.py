"""`distdl status`: what an output folder holds and, while a run goes on, how it goes.

Read from the output folder alone (no MPI, no lock taken): the stored rows from the
partitions' markers and parquet footers (so the numbers are the files' own, also after an
interrupted run), the plan from the servers table, and the live figures from the state file
rank 0 rewrites every few seconds (:mod:`distdl.runtime.progress`).

``--json`` prints one object, schema ``distdl.status/1`` (keys are only ever added):

- ``schema``, ``output`` (path), ``stages`` ({batched, profiled, downloaded: bool});
- ``lock``: null, or {``holder`` (text), ``heartbeat_age_s``}: a run holds the folder;
- ``partitions``: {``planned``, ``done``, ``leased``, ``pending``} (leased: only while a
  run is active, from its state file);
- ``rows``: {``planned``, ``stored``, ``successes``, ``errors``, ``errors_by_code``
  ({code as text: rows}), ``rejected`` (at planning), ``filtered`` ({``total``,
  ``by_reason``}: input rows set aside while planning, from ``filtered.json``; total 0 for
  older plans), ``ignored`` (ignored servers),
  ``unreadable_files`` (parquet files that do not read: damaged or foreign)};
- ``hosts``: one object per planned server: ``server_name``, ``rows_planned``,
  ``rows_stored``, ``rows_left`` (while a run is active: as it counts them, rows settled but
  not yet committed included), ``successes``, ``errors``, ``error_share``, and from the
  last run's state where it knows them ``budget`` (req/s), ``requests``, ``rate_limited``,
  ``server_errors``, ``latency_ms``, ``unreachable`` (the cause, or null);
- ``eta``: {``low_s``, ``high_s`` (seconds, null: unknown), ``critical``: [{``server_name``,
  ``rows_left``, ``rate``, ``best_rate``, ``seconds_low``, ``seconds_high``,
  ``limited_by``}], ``source``: ``run`` (the active run's) or ``plan`` (profiles table)};
- ``run``: null, or the last state file's {``updated_at``, ``started_at``, ``elapsed_s``,
  ``ended`` (null while active, else finished/stopped/failed), ``active``, ``workers``,
  ``rows`` {planned, settled, successes, errors: as that run counted them},
  ``rates`` {rows_per_s, images_per_s, bytes_per_s, requests_per_s, rate_limited_share},
  ``answers`` {requests, ok, rate_limited, server_errors, timeouts}, ``bytes``};
- ``previous``: [{``path``, ``bytes``}]: folders a reset moved aside (``.previous-*``);
- ``slurm``: null, or the last ``distdl submit`` chain: {``kind`` (download/tools),
  ``tool``, ``submitted_at``, ``jobs``: [{``id``, ``state``}]} (state from squeue, else
  sacct; ``ENDED`` once squeue no longer lists it and sacct cannot say; null when neither
  answers).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from distdl.cluster.chain import chain_status, render_chain
from distdl.config import Config
from distdl.core.codes import describe
from distdl.core.eta import (
    Eta,
    HostLoad,
    estimate,
    eta_from_json,
    eta_to_json,
    format_duration,
    format_range,
    render_critical,
)
from distdl.core.text import plural
from distdl.core.urls import safe_dir_name
from distdl.errors import InputError
from distdl.io.checkpoint import Checkpoint
from distdl.io.lock_file import process_gone, read_lock
from distdl.io.markers import partition_dirs, read_marker
from distdl.io.profiles import read_profiles
from distdl.layout import ERRORS_FILE, SUCCESSES_FILE, Layout
from distdl.previous import previous_entries, size_of
from distdl.runtime.budgets import HostBudgets
from distdl.runtime.progress import STATE_INTERVAL, read_state
from distdl.stages import STAGES

STATUS_SCHEMA = "distdl.status/1"
SORT_KEYS = ("rows_left", "rate", "error_share")
STALE_STATE = 15 * STATE_INTERVAL  # a state file this old is a run that ended without a word


@dataclass
class StoredRows:
    """One server's rows on disk (done partitions and stopped ones alike)."""

    successes: int = 0
    errors: int = 0
    partitions_done: int = 0
    rows_done: int = 0  # rows of its done partitions

    @property
    def rows(self) -> int:
        return self.successes + self.errors


@dataclass
class Disk:
    by_server: dict[str, StoredRows] = field(default_factory=dict)  # by safe folder name
    errors_by_code: Counter[int] = field(default_factory=Counter)
    rejected: int = 0
    unreadable: list[Path] = field(default_factory=list)  # damaged or foreign parquet files


def _rows(path: Path, disk: Disk) -> int:
    try:
        return pq.read_metadata(path).num_rows
    except FileNotFoundError:
        return 0
    except (OSError, pa.ArrowException):
        disk.unreadable.append(path)
        return 0


def _error_codes(path: Path, disk: Disk) -> list[int]:
    try:
        return pq.read_table(path, columns=["error_code"]).column("error_code").to_pylist()
    except (OSError, pa.ArrowException):
        disk.unreadable.append(path)
        return []


def scan_disk(layout: Layout) -> Disk:
    """Every stored row: a done partition's counts from its marker, a stopped one's from
    its files' footers; error codes from the errors files."""
    disk = Disk()
    for server, _, folder in partition_dirs(layout.images):
        errors_file = folder / ERRORS_FILE
        if folder == layout.rejected_dir:
            disk.rejected += _rows(errors_file, disk)
            continue
        stored = disk.by_server.setdefault(server, StoredRows())
        marker = read_marker(folder)
        if marker is not None and "successes" in marker:
            successes, errors = int(marker["successes"]), int(marker["errors"])  # type: ignore[call-overload]
        else:
            successes, errors = _rows(folder / SUCCESSES_FILE, disk), _rows(errors_file, disk)
        if marker is not None:
            stored.partitions_done += 1
            stored.rows_done += successes + errors
        stored.successes += successes
        stored.errors += errors
        if errors:
            disk.errors_by_code.update(_error_codes(errors_file, disk))
    return disk


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def _unreachable_causes(layout: Layout) -> dict[str, str]:
    """Why the last run gave up on hosts, as the profiles table keeps it."""
    try:
        profiles = read_profiles(layout.profiles_table)
    except InputError:
        return {}  # a broken hand-made table: the run says so; status shows the rest
    return {name: p.unreachable_cause for name, p in profiles.items() if p.unreachable_cause}


def _servers(layout: Layout) -> list[dict[str, Any]]:
    if not layout.servers_table.exists():
        return []
    return pq.read_table(layout.servers_table).to_pylist()


def plan_eta(config: Config, layout: Layout, rows_left: dict[str, int], workers: int) -> Eta:
    """The range before (or between) runs: rows left ÷ the budgets the profiles table (or
    the defaults) give, on ``workers`` ranks."""

    params = config.downloader_parameters
    hosts = [name for name, rows in rows_left.items() if rows > 0]
    budgets = HostBudgets.from_profiles(layout, params, hosts, time.monotonic())
    loads = [
        HostLoad(name, rows_left[name], budgets.rate(name), *budgets.limit_of(name))
        for name in hosts
    ]
    return estimate(loads, max(1, workers) * params.leases_per_worker)


def plan_eta_text(config: Config, layout: Layout, workers: int) -> str:
    """Before a download: how long it would take on ``workers`` ranks, and why."""
    disk = scan_disk(layout)
    rows_left = {}
    for server in _servers(layout):
        if not server["ignored"]:
            stored = disk.by_server.get(safe_dir_name(server["server_name"]), StoredRows())
            rows_left[server["server_name"]] = max(0, server["total_urls"] - stored.rows)
    eta = plan_eta(config, layout, rows_left, workers)
    if not eta.critical:
        return "nothing left to download"
    ranks = plural(workers, "worker rank")
    lines = [f"download time on {ranks}: {format_range(eta)}; the hosts that decide it:"]
    lines += render_critical(eta)
    if not eta.settled:
        lines.append(
            "  (a range: hosts not yet learned start at default_rate_limit and may go up to "
            "their ceiling)"
        )
    return "\n".join(lines)


def default_workers(cpu_per_worker: int) -> int:
    from distdl.runtime.launch import default_rank_count

    return max(1, default_rank_count(cpu_per_worker) - 1)


def collect_status(config: Config, layout: Layout) -> dict[str, Any]:
    checkpoint = Checkpoint.load(layout.checkpoint_file)
    lock = read_lock(layout.root)
    state = read_state(layout.run_state)
    # Active: locked, not ended, written lately, and (on this host) its process is alive.
    active = lock is not None and state is not None and state.get("ended") is None
    active = active and _age(layout.run_state) < STALE_STATE
    active = active and not (lock is not None and lock.holder and process_gone(lock.holder))
    disk = scan_disk(layout)
    live_hosts = {host["server_name"]: host for host in (state or {}).get("hosts", [])}
    causes = _unreachable_causes(layout)
    hosts, planned_partitions, ignored_rows = [], 0, 0
    rows_left: dict[str, int] = {}
    for server in _servers(layout):
        if server["ignored"]:
            ignored_rows += server["total_urls"]
            continue
        planned_partitions += server["total_batches"]
        name = server["server_name"]
        stored = disk.by_server.get(safe_dir_name(name), StoredRows())
        rows_left[name] = max(0, server["total_urls"] - stored.rows)
        live = live_hosts.get(name) if active else None
        host = _host_json(name, server["total_urls"], stored, live_hosts.get(name), live)
        host["unreachable"] = host["unreachable"] or causes.get(name)
        hosts.append(host)
    done = sum(stored.partitions_done for stored in disk.by_server.values())
    leased = state["partitions"]["leased"] if active and state else 0
    if active and state:
        eta = dict(state["eta"], source="run")
    else:
        params = config.downloader_parameters
        workers = state["workers"] if state else default_workers(params.cpu_per_worker)
        eta = dict(eta_to_json(plan_eta(config, layout, rows_left, workers)), source="plan")
    successes = sum(stored.successes for stored in disk.by_server.values())
    errors = sum(stored.errors for stored in disk.by_server.values())
    return {
        "schema": STATUS_SCHEMA,
        "output": str(layout.root),
        "stages": {stage: checkpoint.is_complete(stage) for stage in STAGES},
        "lock": None
        if lock is None
        else {
            "holder": lock.holder.describe() if lock.holder else "a run that is starting",
            "heartbeat_age_s": round(lock.age, 1),
        },
        "partitions": {
            "planned": planned_partitions,
            "done": done,
            "leased": leased,
            "pending": max(0, planned_partitions - done - leased),
        },
        "rows": {
            "planned": sum(host["rows_planned"] for host in hosts),
            "stored": successes + errors,
            "successes": successes,
            "errors": errors,
            "errors_by_code": {str(code): n for code, n in disk.errors_by_code.most_common()},
            "rejected": disk.rejected,
            "filtered": _filtered_rows(layout),
            "ignored": ignored_rows,
            "unreadable_files": len(disk.unreadable),
        },
        "hosts": hosts,
        "eta": eta,
        "run": None if state is None else _run_json(state, active),
        "previous": [
            {"path": str(path), "bytes": size_of(path)} for path in previous_entries(layout)
        ],
        "slurm": chain_status(layout),
    }


def _filtered_rows(layout: Layout) -> dict[str, Any]:
    """Rows the input layer set aside while planning (distdl.inputs.tally), by reason."""
    from distdl.inputs.tally import read_filtered

    counts = read_filtered(layout.urls) or {}
    return {"total": counts.get("filtered", 0), "by_reason": counts.get("by_reason", {})}


def _host_json(
    name: str,
    planned: int,
    stored: StoredRows,
    last: dict[str, Any] | None,
    running: dict[str, Any] | None,
) -> dict[str, Any]:
    """``last``: the host in the last state file; ``running``: the same, while that run is
    active (its rows left then count the rows settled but not yet committed)."""
    live = last or {}
    left = running["rows_left"] if running else max(0, planned - stored.rows)
    return {
        "server_name": name,
        "rows_planned": planned,
        "rows_stored": stored.rows,
        "rows_left": left,
        "successes": stored.successes,
        "errors": stored.errors,
        "error_share": round(stored.errors / stored.rows, 4) if stored.rows else 0.0,
        "budget": live.get("budget"),
        "requests": live.get("requests"),
        "rate_limited": live.get("rate_limited"),
        "server_errors": live.get("server_errors"),
        "latency_ms": live.get("latency_ms"),
        "unreachable": live.get("unreachable"),
    }


def _run_json(state: dict[str, Any], active: bool) -> dict[str, Any]:
    keys = ("updated_at", "started_at", "elapsed_s", "ended", "workers", "rows", "rates")
    keys += ("answers",)
    return {**{key: state.get(key) for key in keys}, "bytes": state.get("bytes"), "active": active}


def _sort_key(sort: str) -> Any:
    if sort == "rate":
        return lambda host: -(host["budget"] or 0.0)
    if sort == "error_share":
        return lambda host: -host["error_share"]
    return lambda host: -host["rows_left"]


def render_status(status: dict[str, Any], *, sort: str = "rows_left", limit: int = 20) -> str:
    lines = [f"output: {status['output']}"]
    if status["lock"] is not None:
        lock = status["lock"]
        age = lock["heartbeat_age_s"]
        lines.append(f"  in use by {lock['holder']}; last heartbeat {age:.0f} s ago")
    for stage, complete in status["stages"].items():
        lines.append(f"  {stage:<11} {'complete' if complete else 'not done'}")
    parts, rows = status["partitions"], status["rows"]
    lines.append(
        f"partitions: {parts['done']}/{parts['planned']} done, {parts['leased']} leased, "
        f"{parts['pending']} pending"
    )
    lines.append(
        f"rows: {rows['stored']}/{rows['planned']} stored ({rows['successes']} images, "
        f"{rows['errors']} errors), {rows['rejected']} rejected at planning, "
        f"{rows['ignored']} on ignored servers"
    )
    filtered = rows["filtered"]
    if filtered["total"]:
        reasons = ", ".join(f"{reason} {n}" for reason, n in filtered["by_reason"].items())
        lines.append(f"  {filtered['total']} input rows set aside while planning: {reasons}")
    if rows["unreadable_files"]:
        lines.append(f"  {rows['unreadable_files']} parquet files could not be read")
    for code, count in rows["errors_by_code"].items():
        lines.append(f"  {code:>5}  {count:>8}  {describe(int(code))}")
    run = status["run"]
    if run is not None:
        rates = run["rates"]
        state = "running" if run["active"] else (run["ended"] or "interrupted")
        settled = run["rows"]
        lines.append(
            f"last run: {state}, {format_duration(run['elapsed_s'])} "
            f"(state of {run['updated_at']}): {settled['settled']} rows settled "
            f"({settled['successes']} images), {rates['images_per_s']:.1f} img/s, "
            f"{rates['bytes_per_s'] / 1e6:.2f} MB/s, 429s {100 * rates['rate_limited_share']:.1f}%"
        )
    lines += render_eta(status["eta"])
    hosts = sorted(status["hosts"], key=_sort_key(sort))
    if hosts:
        lines.append(f"hosts (of {len(hosts)}, by {sort.replace('_', ' ')}):")
        for host in hosts[:limit]:
            budget = "-" if host["budget"] is None else f"{host['budget']:.3g}/s"
            why = f"  unreachable: {host['unreachable']}" if host["unreachable"] else ""
            lines.append(
                f"  {host['server_name']:<32} {host['rows_left']:>9} left {budget:>9} "
                f"{100 * host['error_share']:5.1f}% errors{why}"
            )
    for previous in status["previous"]:
        size = previous["bytes"] / 1e6
        lines.append(f"moved aside by a reset: {previous['path']} ({size:.1f} MB)")
    if status["previous"]:
        lines.append("  remove them with: distdl reset CONFIG --purge-previous")
    if status.get("slurm"):
        lines += render_chain(status["slurm"])
    return "\n".join(lines)


def render_eta(eta: dict[str, Any]) -> list[str]:
    estimate_ = eta_from_json(eta)
    if not estimate_.critical:
        return []
    source = "this run" if eta["source"] == "run" else "from the plan and profiles table"
    lines = [f"time left ({source}): {format_range(estimate_)}; the hosts that decide it:"]
    return lines + render_critical(estimate_)
