"""Rank 0's metrics over time, under logs_folder: what `distdl report` plots.

A sink of the run's state (:mod:`distdl.runtime.progress`): every ``SAMPLE_INTERVAL``
seconds it adds one point to the run's total series (rows, images, errors, bytes, requests,
2xx, 429s, 5xx, timeouts gained in the interval; leases open) and to the series of the hosts
that decide the ETA (their answers, rows, budget, latency), at most ``MAX_HOSTS`` of them.
Series are :class:`~distdl.core.timeseries.BoundedSeries` (coarser with age), so the file
stays bounded over a weeks-long run; it is rewritten atomically every ``SAVE_INTERVAL``
seconds and at the end, and a later run (a resume) continues it.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from distdl.core.timeseries import DEFAULT_PER_LEVEL, BoundedSeries, Point, deltas
from distdl.io.atomic import atomic_write_text

log = logging.getLogger("distdl.metrics")

METRICS_SCHEMA = "distdl.metrics/1"
METRICS_FILE = "metrics.json"
SAMPLE_INTERVAL = 5.0  # seconds between points
SAVE_INTERVAL = 30.0  # seconds between rewrites of the file
MAX_HOSTS = 24  # hosts with a series of their own

_TOTAL_COUNTERS = ("requests", "ok", "rate_limited", "server_errors", "timeouts")
_HOST_COUNTERS = (*_TOTAL_COUNTERS, "successes", "errors")


def _total_counts(state: dict[str, Any]) -> dict[str, float]:
    rows, answers = state["rows"], state["answers"]
    counts = {key: float(answers[key]) for key in _TOTAL_COUNTERS}
    counts.update(
        rows=float(rows["settled"]),
        images=float(rows["successes"]),
        errors=float(rows["errors"]),
        bytes=float(state["bytes"]),
    )
    return counts


class MetricsRecorder:
    def __init__(self, path: Path, per_level: int = DEFAULT_PER_LEVEL) -> None:
        self._path = path
        self._per_level = per_level
        self._total = BoundedSeries(per_level)
        self._hosts: dict[str, BoundedSeries] = {}
        self._runs: list[float] = []
        self._load()
        self._runs.append(round(time.time(), 1))
        self._last: float | None = None  # epoch of the last point
        self._previous_total: dict[str, float] = {}
        self._previous_hosts: dict[str, dict[str, float]] = {}
        self._next_save = 0.0

    def _load(self) -> None:
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
            if data.get("schema") != METRICS_SCHEMA or data.get("per_level") != self._per_level:
                return
            self._total = BoundedSeries.from_json(data["total"], self._per_level)
            self._hosts = {
                name: BoundedSeries.from_json(series, self._per_level)
                for name, series in data["hosts"].items()
            }
            self._runs = [float(start) for start in data["runs"]]
        except FileNotFoundError:
            return
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("%s does not read (%s): metrics start afresh", self._path, exc)

    def show(self, state: dict[str, Any], now: float) -> None:
        wall = time.time()
        if self._last is not None and wall - self._last < SAMPLE_INTERVAL:
            return
        self._sample(state, wall)
        if now >= self._next_save:
            self.save()
            self._next_save = now + SAVE_INTERVAL

    def close(self, state: dict[str, Any]) -> None:
        self._sample(state, time.time())
        self.save()

    def _sample(self, state: dict[str, Any], wall: float) -> None:
        start = self._runs[-1] if self._last is None else self._last
        span = max(wall - start, 1e-3)
        self._last = wall
        counts = _total_counts(state)
        gauges = {"leased": float(state["partitions"]["leased"])}
        self._total.add(Point(start, span, deltas(self._previous_total, counts), gauges))
        self._previous_total = counts
        hosts = {host["server_name"]: host for host in state["hosts"]}
        for name in self._tracked(state, hosts):
            host = hosts[name]
            host_counts = {key: float(host[key]) for key in _HOST_COUNTERS}
            host_gauges = {}
            if host["budget"] is not None:
                host_gauges["budget"] = float(host["budget"])
            if host["latency_ms"] is not None:
                host_gauges["latency_ms"] = float(host["latency_ms"])
            gained = deltas(self._previous_hosts.get(name, {}), host_counts)
            self._hosts[name].add(Point(start, span, gained, host_gauges))
            self._previous_hosts[name] = host_counts

    def _tracked(self, state: dict[str, Any], hosts: dict[str, Any]) -> list[str]:
        """The hosts with a series: those already followed, then the critical ones."""
        for critical in state["eta"]["critical"]:
            name = critical["server_name"]
            if name not in self._hosts and len(self._hosts) < MAX_HOSTS:
                self._hosts[name] = BoundedSeries(self._per_level)
        return [name for name in self._hosts if name in hosts]

    def save(self) -> None:
        data = {
            "schema": METRICS_SCHEMA,
            "per_level": self._per_level,
            "sample_s": SAMPLE_INTERVAL,
            "runs": self._runs,
            "total": self._total.to_json(),
            "hosts": {name: series.to_json() for name, series in self._hosts.items()},
        }
        self._path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self._path, json.dumps(data, separators=(",", ":")) + "\n")


def read_metrics(path: Path) -> tuple[list[Point], dict[str, list[Point]], list[float]]:
    """(total points, points by host, run starts), oldest first; empty when there are none."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return [], {}, []
    if data.get("schema") != METRICS_SCHEMA:
        return [], {}, []
    per_level = int(data["per_level"])
    total = BoundedSeries.from_json(data["total"], per_level).points()
    hosts = {
        name: BoundedSeries.from_json(series, per_level).points()
        for name, series in data["hosts"].items()
    }
    return total, hosts, [float(start) for start in data["runs"]]
