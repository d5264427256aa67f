"""The progress on rank 0's terminal: plain lines at the interval, a live panel on a TTY."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from distdl.core.throttle import Feedback
from distdl.runtime.messages import PartitionStats
from distdl.runtime.progress import RunProgress, RunShape, read_state
from distdl.runtime.progress_view import LiveProgress, PlainProgress, progress_line


class _Budgets:
    def rate(self, server: str) -> float:
        return 2.0

    def limit_of(self, server: str) -> tuple[float, str]:
        return 10.0, "learning"

    def knows(self, server: str) -> bool:
        return True


class _Holders:
    def holders(self, server_name: str) -> list[Any]:
        return [object()]


def _state(tmp_path: Path) -> dict[str, Any]:
    progress = RunProgress(
        tmp_path / "run-state.json", {"a.org": 100, "b.org": 10}, RunShape(2, 4, 11), [], 0.0
    )
    progress.lease_reported(1, "a.org", PartitionStats(successes=7, errors=1))
    progress.answers_seen("a.org", Feedback(ok=7, rate_limited=3, latency_sum=1.0, latency_count=7))
    progress.tick(0.0, _Budgets(), _Holders(), leased=1)
    return read_state(tmp_path / "run-state.json") or {}


def test_the_state_file_holds_rows_settled_before_any_partition_completes(tmp_path: Path) -> None:
    state = _state(tmp_path)
    assert state["rows"] == {"planned": 110, "settled": 8, "successes": 7, "errors": 1}
    assert state["partitions"] == {"planned": 11, "done": 0, "leased": 1, "pending": 10}
    assert state["answers"]["rate_limited"] == 3
    assert state["hosts"][0]["server_name"] == "a.org" and state["hosts"][0]["rows_left"] == 92
    assert state["eta"]["critical"][0]["server_name"] == "a.org"
    assert "8/110 rows" in progress_line(state) and "ETA" in progress_line(state)


def test_plain_lines_come_once_per_interval(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = _state(tmp_path)
    plain = PlainProgress(interval=10.0)
    with caplog.at_level(logging.INFO, logger="distdl.progress"):
        for now in (0.0, 2.0, 4.0, 9.0, 10.0, 12.0, 19.0, 20.5):
            plain.show(state, now)
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2 and all("8/110 rows" in line for line in lines)


def test_the_live_panel_shows_the_hosts_that_decide(tmp_path: Path) -> None:
    state = _state(tmp_path)
    screen = io.StringIO()
    live = LiveProgress(Console(file=screen, force_terminal=True, width=120))
    live.show(state, 0.0)
    live.close(state)
    drawn = screen.getvalue()
    assert "a.org" in drawn and "8/110 rows" in drawn and "rows left" in drawn
