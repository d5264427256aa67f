"""Helpers for runs checked from the servers' side: URL lists, hand-set budgets, a download
in this test's event loop (so a fleet or a small aiohttp server can share it)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
from collections.abc import Iterable, Mapping
from pathlib import Path

from support import layout_of, output_rows

from distdl.api import RunOptions, run
from distdl.config import load_config
from distdl.core.redirects import AddressPolicy, GlobalAddresses
from distdl.layout import ERRORS_FILE
from distdl.runtime.channel import QueueHub
from distdl.runtime.coordinator import RunReport
from distdl.runtime.coordinator_setup import build_coordinator
from distdl.runtime.download import run_in_process
from distdl.runtime.worker_setup import open_worker
from distdl.testing.fleet import RequestRecord


def write_urls(path: Path, urls: Iterable[str]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["uuid", "identifier", "source_id"])
        for index, url in enumerate(urls):
            writer.writerow([f"u{index}", url, f"s{index}"])


def hand_set(folder: Path, budgets: Mapping[str, float]) -> None:
    """Hand-written budgets (``server_name,rate_limit``) in the output's profiles table."""
    (folder / "out").mkdir(exist_ok=True)
    lines = ["server_name,rate_limit"] + [f"{name},{rate}" for name, rate in budgets.items()]
    (folder / "out" / "servers_profiles.csv").write_text("\n".join(lines) + "\n")


async def download(config: Path, policy: AddressPolicy | None = None) -> RunReport:
    """Plan (no network), then download in this event loop with ``policy``."""
    run(config, RunOptions(until="profiled", ranks=1))
    return await run_in_process(
        load_config(config), layout_of(config), frozenset(), policy or GlobalAddresses()
    )


async def download_on_workers(config: Path, workers: int) -> RunReport:
    """Like :func:`download`, with ``workers`` worker ranks over in-process queues (leases
    and shares of one host on different ranks, as under mpiexec)."""
    run(config, RunOptions(until="profiled", ranks=1))
    loaded, layout = load_config(config), layout_of(config)
    hub = QueueHub(workers + 1)
    coordinator = build_coordinator(loaded, layout, hub.channel(0), list(range(1, workers + 1)))
    async with contextlib.AsyncExitStack() as stack:
        ranks = [
            await stack.enter_async_context(
                open_worker(loaded, layout, hub.channel(rank), frozenset(), alone=False)
            )
            for rank in range(1, workers + 1)
        ]
        tasks = [asyncio.ensure_future(rank.run()) for rank in ranks]
        try:
            return await coordinator.run()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            coordinator.budgets.save()


def error_codes(config: Path) -> dict[str, int]:
    """identifier -> error_code of every error row."""
    rows = output_rows(layout_of(config), ERRORS_FILE, ["identifier", "error_code"])
    return {row["identifier"]: row["error_code"] for row in rows}


def times(records: Iterable[RequestRecord]) -> list[float]:
    return sorted(record.time for record in records)


def images(records: Iterable[RequestRecord]) -> list[RequestRecord]:
    return [record for record in records if record.path.startswith("/img/")]
