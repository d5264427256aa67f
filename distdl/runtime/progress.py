"""Rank 0's view of a running download: the live tally, the state file, the terminal.

The coordinator feeds :class:`RunProgress` what it hears (lease reports, completions,
failures, every host's answers) and calls :meth:`RunProgress.tick` from its loop. Every
``STATE_INTERVAL`` seconds a tick writes ``run-state.json`` at the output root, atomically
(``distdl status`` reads it, see :mod:`distdl.status` for its schema), and hands the same
state to the terminal view (:mod:`distdl.runtime.progress_view`).
"""

from __future__ import annotations

import heapq
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from distdl.core.eta import HostLoad, estimate, eta_to_json
from distdl.core.progress import HostTotals, ProgressBook, RowCounts, Sample, Throughput
from distdl.core.throttle import Feedback
from distdl.io.atomic import atomic_write_text
from distdl.runtime.messages import PartitionStats

STATE_SCHEMA = "distdl.run-state/1"
STATE_INTERVAL = 2.0  # seconds between writes of the state file
HOSTS_KEPT = 50  # hosts in the state file (most rows left first): it stays small
MAX_STATE_SHARE = 20  # the state may take at most 1/20 of rank 0's time


class Budgets(Protocol):
    def rate(self, server: str) -> float: ...
    def limit_of(self, server: str) -> tuple[float, str]: ...
    def knows(self, server: str) -> bool: ...


class Holders(Protocol):
    def holders(self, server_name: str) -> list[Any]: ...


class StateSink(Protocol):
    """Where each state goes besides the file: the terminal, the metrics."""

    def show(self, state: dict[str, Any], now: float) -> None: ...
    def close(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class RunShape:
    workers: int
    leases_per_worker: int
    partitions_planned: int


def _counts(stats: PartitionStats) -> RowCounts:
    return RowCounts(stats.successes, stats.errors, stats.bytes_downloaded)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")


class RunProgress:
    def __init__(
        self,
        state_path: Path,
        rows_by_host: dict[str, int],
        shape: RunShape,
        sinks: list[StateSink],
        now: float,
    ) -> None:
        self._path = state_path
        self._book = ProgressBook(rows_by_host)
        self._throughput = Throughput()
        self._shape = shape
        self._sinks = sinks
        self._started = now
        self._started_epoch = time.time()
        self._next_state = now
        self._done_partitions = 0
        self._unreachable: dict[str, str] = {}

    # --- what the coordinator heard ------------------------------------------------------
    def lease_reported(self, lease_id: int, server_name: str, stats: PartitionStats) -> None:
        self._book.lease_reported(lease_id, server_name, _counts(stats))

    def lease_completed(
        self, lease_id: int, server_name: str, planned_rows: int, stats: PartitionStats
    ) -> None:
        self._done_partitions += 1
        self._book.lease_completed(lease_id, server_name, planned_rows, _counts(stats))

    def lease_dropped(self, lease_id: int) -> None:
        self._book.lease_dropped(lease_id)

    def answers_seen(self, server_name: str, feedback: Feedback) -> None:
        self._book.answers_seen(server_name, feedback)

    def host_unreachable(self, server_name: str, cause: str) -> None:
        self._unreachable[server_name] = cause

    # --- what it tells -----------------------------------------------------------------
    def tick(self, now: float, budgets: Budgets, holders: Holders, leased: int) -> None:
        if now < self._next_state:
            return
        began = time.monotonic()
        state = self.state(now, budgets, holders, leased, ended=None)
        write_state(self._path, state)
        for sink in self._sinks:
            sink.show(state, now)
        # Rank 0's loop must stay responsive: with very many hosts, write less often.
        spent = time.monotonic() - began
        self._next_state = now + max(STATE_INTERVAL, MAX_STATE_SHARE * spent)

    def finish(self, now: float, budgets: Budgets, holders: Holders, ended: str) -> None:
        """The last state: ``ended`` is ``finished``, ``stopped`` or ``failed``."""
        state = self.state(now, budgets, holders, 0, ended=ended)
        write_state(self._path, state)
        for sink in self._sinks:
            sink.close(state)

    def state(
        self, now: float, budgets: Budgets, holders: Holders, leased: int, ended: str | None
    ) -> dict[str, Any]:
        totals = self._book.totals()
        self._throughput.add(Sample.of(totals, now))
        rates = self._throughput.rates()
        hosts = self._book.hosts
        loads = [self._load(name, host, budgets) for name, host in hosts.items() if host.rows_left]
        slots = self._shape.workers * self._shape.leases_per_worker
        eta = estimate(loads, slots, rows_per_s=rates.rows_per_s or None)
        answers = totals.answers
        planned = self._shape.partitions_planned
        ranked = heapq.nlargest(HOSTS_KEPT, hosts.items(), key=lambda item: item[1].rows_left)
        return {
            "schema": STATE_SCHEMA,
            "updated_at": _iso(time.time()),
            "started_at": _iso(self._started_epoch),
            "elapsed_s": round(now - self._started, 1),
            "ended": ended,
            "workers": self._shape.workers,
            "partitions": {
                "planned": planned,
                "done": self._done_partitions,
                "leased": leased,
                "pending": max(0, planned - self._done_partitions - leased),
            },
            "rows": {
                "planned": totals.rows_planned,
                "settled": totals.rows_settled,
                "successes": totals.settled.successes,
                "errors": totals.settled.errors,
            },
            "answers": _answers(answers),
            "bytes": totals.settled.bytes,
            "rates": {
                "rows_per_s": round(rates.rows_per_s, 3),
                "images_per_s": round(rates.images_per_s, 3),
                "bytes_per_s": round(rates.bytes_per_s, 1),
                "requests_per_s": round(rates.requests_per_s, 3),
                "rate_limited_share": round(rates.rate_limited_share, 4),
            },
            "eta": eta_to_json(eta),
            "hosts_total": len(hosts),
            "hosts": [self._host_row(name, host, budgets, holders) for name, host in ranked],
        }

    def _load(self, name: str, host: HostTotals, budgets: Budgets) -> HostLoad:
        if name in self._unreachable or not budgets.knows(name):
            return HostLoad(name, 0, 0.0, 0.0, "unreachable")
        best, why = budgets.limit_of(name)
        return HostLoad(name, host.rows_left, budgets.rate(name), best, why)

    def _host_row(
        self, name: str, host: HostTotals, budgets: Budgets, holders: Holders
    ) -> dict[str, Any]:
        known = budgets.knows(name)
        latency = host.answers.mean_latency
        return {
            "server_name": name,
            "rows_planned": host.rows_planned,
            "rows_left": host.rows_left,
            "successes": host.settled.successes,
            "errors": host.settled.errors,
            **_answers(host.answers),
            "budget": round(budgets.rate(name), 3) if known else None,
            "holders": len(holders.holders(name)),
            "latency_ms": None if latency is None else round(latency * 1000, 1),
            "unreachable": self._unreachable.get(name),
        }


def _answers(answers: Feedback) -> dict[str, int]:
    return {
        "requests": answers.total,
        "ok": answers.ok,
        "rate_limited": answers.rate_limited,
        "server_errors": answers.server_errors,
        "timeouts": answers.timeouts,
    }


def write_state(path: Path, state: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(state, indent=1) + "\n")


def read_state(path: Path) -> dict[str, Any] | None:
    """The last state rank 0 wrote; None when there is none (or it does not parse)."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        return None
    return content if isinstance(content, dict) and content.get("schema") == STATE_SCHEMA else None
