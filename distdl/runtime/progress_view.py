"""The run's progress on rank 0's terminal: a live rich panel on a TTY, else a plain line.

Slurm output files and pipes get one line every ``progress_interval`` seconds (through the
``distdl.progress`` logger, so it lands in rank 0's log file too); a terminal gets a panel
redrawn in place with the hosts that decide the ETA; ``--quiet`` gets neither.
"""

from __future__ import annotations

import logging
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from distdl.core.eta import Eta, format_duration

log = logging.getLogger("distdl.progress")

QUIET, PLAIN, LIVE = "quiet", "plain", "live"
LIVE_HOSTS = 8  # rows of the hosts table on a terminal


def eta_text(state: dict[str, Any]) -> str:
    eta = state["eta"]
    low, high = eta["low_s"], eta["high_s"]
    if high is None and low is None:
        return "ETA unknown"
    low_text = format_duration(low) if low is not None else "never"
    high_text = format_duration(high) if high is not None else "never"
    if high is not None and low is not None and Eta(low, high).settled:
        return f"ETA {high_text}"
    return f"ETA {low_text} to {high_text}"


def progress_line(state: dict[str, Any]) -> str:
    """One line that says everything a Slurm output file needs."""
    rows, rates, parts = state["rows"], state["rates"], state["partitions"]
    share = 100 * rows["settled"] / rows["planned"] if rows["planned"] else 100.0
    return (
        f"{format_duration(state['elapsed_s'])}: {rows['settled']}/{rows['planned']} rows "
        f"({share:.1f}%), {rows['successes']} images, {rows['errors']} errors | "
        f"{rates['images_per_s']:.1f} img/s, {rates['bytes_per_s'] / 1e6:.2f} MB/s, "
        f"429s {100 * rates['rate_limited_share']:.1f}% | "
        f"{parts['done']}/{parts['planned']} partitions done, {parts['leased']} leased | "
        + eta_text(state)
    )


class PlainProgress:
    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._next: float | None = None

    def show(self, state: dict[str, Any], now: float) -> None:
        if self._next is None:
            self._next = now + self._interval  # the first line after one interval
            return
        if now >= self._next:
            log.info("%s", progress_line(state))
            self._next = now + self._interval

    def close(self, state: dict[str, Any]) -> None:
        log.info("%s", progress_line(state))


def hosts_table(state: dict[str, Any], limit: int = LIVE_HOSTS) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("host", "rows left", "budget", "leases", "429", "5xx", "errors", "latency"):
        table.add_column(column, justify="left" if column == "host" else "right")
    for host in state["hosts"][:limit]:
        budget = host["budget"]
        latency = host["latency_ms"]
        table.add_row(
            host["server_name"] + (" (unreachable)" if host["unreachable"] else ""),
            str(host["rows_left"]),
            "-" if budget is None else f"{budget:g}/s",
            str(host["holders"]),
            str(host["rate_limited"]),
            str(host["server_errors"]),
            str(host["errors"]),
            "-" if latency is None else f"{latency:.0f} ms",
        )
    return table


class LiveProgress:
    """A panel redrawn in place on rank 0's terminal (stderr)."""

    def __init__(self, console: Console | None = None) -> None:
        self._console = console or Console(stderr=True)
        self._live = Live(console=self._console, auto_refresh=False, transient=True)
        self._started = False

    def _render(self, state: dict[str, Any]) -> Group:
        return Group(Text(progress_line(state)), hosts_table(state))

    def show(self, state: dict[str, Any], now: float) -> None:
        if not self._started:
            self._live.start()
            self._started = True
        self._live.update(self._render(state), refresh=True)

    def close(self, state: dict[str, Any]) -> None:
        if self._started:
            self._live.stop()
            self._started = False
        log.debug("%s", progress_line(state))


def progress_view(mode: str, interval: float) -> list[PlainProgress | LiveProgress]:
    if mode == LIVE:
        return [LiveProgress()]
    if mode == PLAIN:
        return [PlainProgress(interval)]
    return []
