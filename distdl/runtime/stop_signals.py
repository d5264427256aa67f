"""Where the stop signals (SIGINT, SIGTERM, SIGUSR1) go while distdl runs.

* During the download, a rank's event loop turns each of them into a call of its
  coordinator's or worker's ``request_stop`` (:func:`loop_stop_signals`): a graceful stop.
* Around the rest of a run (planning, profiling, the wait for launched ranks),
  :func:`raising_stop_signals` makes SIGTERM and SIGUSR1 raise :class:`StopSignal` where the
  program is, as SIGINT raises KeyboardInterrupt; the API turns either into a
  :class:`~distdl.errors.RunStopped`. Every write there is atomic, so stopping anywhere is safe.

Handlers are only installed in the main thread (Python allows no other), and the previous
ones are put back on the way out: library users keep theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from distdl.core.stopping import STOP_SIGNALS

_Handler = Callable[[int, FrameType | None], object] | int | None


class StopSignal(BaseException):
    """SIGTERM or SIGUSR1 arrived outside the download loop (like KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def stop_signal_of(exc: BaseException) -> int | None:
    """The signal behind a KeyboardInterrupt or StopSignal; None for anything else."""
    if isinstance(exc, StopSignal):
        return exc.signum
    if isinstance(exc, KeyboardInterrupt):
        return int(signal.SIGINT)
    return None


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _restore(previous: dict[int, _Handler]) -> None:
    for signum, handler in previous.items():
        if handler is not None:  # None: installed outside Python, nothing to put back
            signal.signal(signum, handler)


@contextlib.contextmanager
def raising_stop_signals() -> Iterator[None]:
    """SIGTERM and SIGUSR1 raise StopSignal inside the block (SIGINT keeps raising
    KeyboardInterrupt)."""
    if not _in_main_thread():
        yield
        return

    def raise_stop(signum: int, frame: FrameType | None) -> None:
        raise StopSignal(signum)

    raised = (signal.SIGTERM, signal.SIGUSR1)
    previous = {int(s): signal.getsignal(s) for s in raised}
    for signum in raised:
        signal.signal(signum, raise_stop)
    try:
        yield
    finally:
        _restore(previous)


@contextlib.contextmanager
def loop_stop_signals(on_signal: Callable[[int], None]) -> Iterator[None]:
    """In the running loop, each stop signal calls ``on_signal(signum)`` (in the loop)."""
    if not _in_main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous = {int(s): signal.getsignal(s) for s in STOP_SIGNALS}
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal, int(signum))
    try:
        yield
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
        _restore(previous)
