"""Lifelines: how ``distdl run --ranks N`` learns, in the order it happened, which rank ended.

Each rank it launched connects a Unix socket to it at start-up (:func:`hold_lifeline`), at
the address it listens on for that rank; the connection stays open until the rank's process
ends, when the kernel closes it. The launcher (:class:`Lifelines`) watches them all with one
epoll, whose ready list keeps the order in which the connections were closed.

Why not watch the ranks' pids: when a rank dies, MPICH's process manager (hydra) reads the
end of the rank's PMI socket and at once kills every other rank. The dead rank's pid is only
reported ended once *all* its threads have finished exiting, which on a busy machine can come
after a killed rank's: the pid order then names the wrong rank. A lifeline instead closes
in the same pass over the rank's open files as the PMI socket, and is placed so that it
closes *before* it: hydra cannot have reacted yet, so no other rank can have ended first
because of it. A dying process drops its descriptors in ascending order, and the kernel then
releases the files whose last descriptor went, last dropped first (Linux defers each release
to a last-in, first-out list of the task's pending work): the lifeline is therefore held at a
descriptor above the PMI socket's, which MPICH's launcher names in ``PMI_FD``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import selectors
import socket
from pathlib import Path

_RANK_ENV = "PMI_RANK"
_PMI_FD_ENV = "PMI_FD"  # the socket the rank talks to hydra through (MPICH's wheel)
_CONNECT_TIMEOUT = 5.0
_held: list[int] = []  # this process's lifeline: never closed


def lifeline_path(ready_dir: Path, rank: int) -> Path:
    """Where the launcher listens for ``rank``'s lifeline."""
    return ready_dir / f"lifeline-{rank}"


def hold_lifeline(ready_dir: str | None) -> bool:
    """In a rank the launcher started: connect its lifeline; whether it did (anywhere
    else, or when it cannot, nothing happens: the launcher then names no rank that ended
    first)."""
    rank = os.environ.get(_RANK_ENV)
    if not ready_dir or rank is None or not rank.isdigit() or not hasattr(socket, "AF_UNIX"):
        return False
    line = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        line.settimeout(_CONNECT_TIMEOUT)
        line.connect(str(lifeline_path(Path(ready_dir), int(rank))))
        _held.append(_above_the_pmi_socket(line.fileno()))
    except OSError:
        return False
    finally:
        line.close()  # the one held is a copy
    return True


def _above_the_pmi_socket(fd: int) -> int:
    """A copy of ``fd`` at a descriptor above the PMI socket's (see the module's docstring)."""
    pmi = os.environ.get(_PMI_FD_ENV, "")
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, int(pmi) + 1 if pmi.isdigit() else 0)


class Lifelines:
    """The launcher's end: a listening socket per rank, and the ranks' lifelines.

    A lifeline carries nothing: its only event is its end, so the epoll's ready list holds
    the lifelines in the order they closed. ``first_ended`` is the rank whose closed first,
    or several when their lifelines were already closed when accepted (which went first is
    then unknown), or empty."""

    def __init__(self, ready_dir: Path, ranks: int) -> None:
        self._selector = selectors.DefaultSelector()  # epoll on Linux: ordered ready list
        self._listeners: dict[socket.socket, int] = {}
        self._lines: dict[socket.socket, int] = {}  # connected lifeline -> its rank
        for rank in range(ranks):
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                listener.bind(str(lifeline_path(ready_dir, rank)))
                listener.listen(4)
            except OSError:  # e.g. a path too long for a socket: that rank goes unnamed
                listener.close()
                continue
            listener.setblocking(False)
            self._listeners[listener] = rank
            self._selector.register(listener, selectors.EVENT_READ)
        self.first_ended: list[int] = []

    @property
    def holding(self) -> int:
        """How many lifelines are connected and still open."""
        return len(self._lines)

    def watch(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for lifelines to connect or close."""
        closed_already: list[int] = []
        for key, _ in self._selector.select(timeout):
            connection = key.fileobj
            assert isinstance(connection, socket.socket)
            if connection in self._listeners:
                closed_already += self._accept(connection)
            elif connection in self._lines and self._closed(connection):
                if not self.first_ended:
                    self.first_ended = [self._lines[connection]]
                self._forget(connection)
        if closed_already and not self.first_ended:
            self.first_ended = sorted(closed_already)

    def close(self) -> None:
        for connection in [*self._lines, *self._listeners]:
            self._forget(connection)
        self._selector.close()

    def _accept(self, listener: socket.socket) -> list[int]:
        """Registers the lifelines waiting on ``listener``; the ranks of those already
        closed (they have no place in the epoll's order)."""
        closed: list[int] = []
        while True:
            try:
                connection, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return closed
            connection.setblocking(False)
            self._lines[connection] = self._listeners[listener]
            self._selector.register(connection, selectors.EVENT_READ)
            if self._closed(connection):
                closed.append(self._lines[connection])
                self._forget(connection)

    @staticmethod
    def _closed(connection: socket.socket) -> bool:
        try:
            return connection.recv(1) == b""  # a lifeline sends nothing: readable is ended
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True

    def _forget(self, connection: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(connection)
        self._lines.pop(connection, None)
        self._listeners.pop(connection, None)
        connection.close()
