"""Where the stop signals (SIGINT, SIGTERM, SIGUSR1) go while distdl runs.

* During the download, a rank's event loop turns each of them into a call of its
  coordinator's or worker's ``request_stop`` (:func:`loop_stop_signals`): a graceful stop.
* Around the rest of a run (planning, profiling, the wait for launched ranks),
  :func:`raising_stop_signals` makes SIGTERM and SIGUSR1 raise :class:`StopSignal` where the
  program is, and SIGINT raise KeyboardInterrupt; the API turns either into a
  :class:`~distdl.errors.RunStopped`. Every write there is atomic, so stopping anywhere is safe.
* Between the ranks' collective steps (:mod:`distdl.runtime.rank_zero`) a signal is only
  noted (:func:`noting_stop_signals`): a rank that left on its own would leave the others
  waiting for it in a collective forever. Rank 0 acts on it inside its next step (or the
  download loop does), and every rank then stops together.
* Before that, while the command line starts (imports take seconds on a busy node),
  :func:`defer_stop_signals` only notes a signal; the run acts on it as soon as it handles
  signals itself. A rank that ``distdl run --ranks N`` launched then says it is ready for
  signals (a file named by its pid in ``DISTDL_READY_DIR``): its parent forwards none before.

Handlers are only installed in the main thread (Python allows no other), and the previous
ones are put back on the way out: library users keep theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from distdl.core.stopping import STOP_SIGNALS

_Handler = Callable[[int, FrameType | None], object] | int | None
READY_ENV = "DISTDL_READY_DIR"
_noted: list[int] = []  # stop signals received before the run handled them itself


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


def _install(handler: _Handler) -> dict[int, _Handler]:
    """Every stop signal to ``handler``; what each had before."""
    previous = {int(s): signal.getsignal(s) for s in STOP_SIGNALS}
    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)
    return previous


@contextlib.contextmanager
def _handled_by(handler: _Handler) -> Iterator[bool]:
    """Every stop signal to ``handler`` inside the block, then back to what it was; yields
    whether it did (only the main thread may set handlers: elsewhere nothing changes)."""
    if not _in_main_thread():
        yield False
        return
    previous = _install(handler)
    try:
        yield True
    finally:
        _restore(previous)


def _restore(previous: dict[int, _Handler]) -> None:
    for signum, handler in previous.items():
        if handler is not None:  # None: installed outside Python, nothing to put back
            signal.signal(signum, handler)


def _note(signum: int, frame: FrameType | None) -> None:
    _noted.append(signum)


def defer_stop_signals() -> None:
    """From the command line's start: stop signals are noted, to be acted on by the run."""
    if not _in_main_thread():
        return
    _install(_note)
    ready = os.environ.get(READY_ENV)
    if ready:
        with contextlib.suppress(OSError):  # the parent then forwards nothing: no worse
            Path(ready, str(os.getpid())).touch()


def ignore_stop_signals() -> None:
    """Once the command is over: a stop signal has nothing left to stop. Left to Python,
    the interpreter's exit would put back the default action of the signals it handled, so
    one arriving then (a launcher forwarding a stop as the ranks end) would kill the process
    and turn a finished run into one killed by a signal."""
    if _in_main_thread():
        _install(signal.SIG_IGN)


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise StopSignal(signum)


@contextlib.contextmanager
def raising_stop_signals() -> Iterator[None]:
    """Inside the block SIGTERM and SIGUSR1 raise StopSignal, SIGINT KeyboardInterrupt; a
    signal noted before is raised on entry."""
    with _handled_by(_raise_stop) as installed:
        if installed and _noted:
            _raise_stop(_noted.pop(0), None)
        yield


@contextlib.contextmanager
def noting_stop_signals() -> Iterator[None]:
    """Inside the block stop signals are only noted (for :func:`raising_stop_signals` or
    :func:`loop_stop_signals` to act on later), whatever was installed before."""
    with _handled_by(_note):
        yield


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
    while _noted:
        loop.call_soon(on_signal, _noted.pop(0))
    try:
        yield
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
        _restore(previous)
