"""Run a :class:`~distdl.testing.fleet.Fleet` in a daemon thread with its own event loop,
for synchronous programs (``distdl demo`` serves the fleet while ``mpiexec`` runs).

    runner = FleetThread([HostSpec("a", rate_limit=5)], seed=3)
    with runner as fleet:
        url = fleet.image_url("a", 1)   # URL helpers are plain reads, safe from any thread
        subprocess.run([...])
        records = runner.snapshot()     # a copy of the log while serving
    fleet.save_requests(path)           # the log stays readable after stop()
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from distdl.testing.fleet import Fleet, HostSpec, RequestRecord


class FleetThread:
    """Starts the fleet on :meth:`start` (returning it once every host listens) and shuts it
    down cleanly on :meth:`stop`. Keyword arguments go to :class:`Fleet`."""

    def __init__(self, hosts: Sequence[HostSpec], **fleet_kwargs: Any) -> None:
        self._hosts = list(hosts)
        self._fleet_kwargs = fleet_kwargs
        self._fleet: Fleet | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._thread: threading.Thread | None = None

    @property
    def fleet(self) -> Fleet:
        if self._fleet is None:
            raise RuntimeError("the fleet is not running; call start() first")
        return self._fleet

    def start(self, timeout: float = 60.0) -> Fleet:
        if self._thread is not None:
            raise RuntimeError("FleetThread can only be started once")
        self._thread = threading.Thread(target=self._run, name="distdl-fleet", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the fleet did not start within {timeout} s")
        if self._startup_error is not None:
            self._thread.join(timeout)
            raise RuntimeError("the fleet failed to start") from self._startup_error
        return self.fleet

    def stop(self, timeout: float = 30.0) -> None:
        """Shut every host down and join the thread; the fleet's log stays readable."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None or loop is None or stop_event is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(stop_event.set)
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"the fleet did not stop within {timeout} s")

    def snapshot(self) -> list[RequestRecord]:
        """A copy of the request log, consistent at the moment it is taken."""
        # list() of a list is one C-level copy under the GIL: no torn reads while serving
        return list(self.fleet.requests)

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _serve(self) -> None:
        self._stop_event = asyncio.Event()
        fleet = Fleet(self._hosts, **self._fleet_kwargs)
        try:
            await fleet.start()
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            return
        self._fleet = fleet
        self._ready.set()
        try:
            await self._stop_event.wait()
        finally:
            await fleet.stop()
