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
to a last-in, first-out list of the task's pending work; kernels before 4.x ran that list
first-in, first-out, and there the order is not guaranteed): the lifeline is therefore held
at a descriptor above the PMI socket's, which MPICH's launcher names in ``PMI_FD``, and high
enough to stay above the sockets MPI opens later.

The launcher names a rank only when every rank's lifeline was connected and each end was seen
in order; a lifeline already closed when accepted (its end has no place in the order) makes
the ranks it could have preceded unknown, and the error names none of them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import selectors
import socket
from pathlib import Path

_RANK_ENV = "PMI_RANK"
_PMI_FD_ENV = "PMI_FD"  # the socket the rank talks to hydra through (MPICH's wheel)
_CONNECT_TIMEOUT = 5.0
_HIGH_FD = 4096  # where a lifeline goes at most (below the descriptor limit)
_held: list[int] = []  # this process's lifeline: never closed


def lifeline_path(ready_dir: Path, rank: int) -> Path:
    """Where the launcher listens for ``rank``'s lifeline."""
    return ready_dir / f"lifeline-{rank}"


def hold_lifeline(ready_dir: str | None) -> bool:
    """In a rank the launcher started: connect its lifeline; whether it did (anywhere
    else, or when it cannot, nothing happens: the launcher then names no rank that ended
    first)."""
    rank = os.environ.get(_RANK_ENV)
    if not ready_dir or rank is None or not rank.isascii() or not rank.isdigit():
        return False
    try:
        line = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    except (OSError, AttributeError):  # out of descriptors, or no Unix sockets here
        return False
    try:
        line.settimeout(_CONNECT_TIMEOUT)
        line.connect(str(lifeline_path(Path(ready_dir), int(rank))))
        _held.append(_above_the_pmi_socket(line.fileno()))
    except (OSError, ValueError):
        return False
    finally:
        line.close()  # the one held is a copy
    return True


def _above_the_pmi_socket(fd: int) -> int:
    """A copy of ``fd`` at a descriptor above the PMI socket's and, room permitting, above
    those the process opens later (see the module's docstring)."""
    pmi = os.environ.get(_PMI_FD_ENV, "")
    above_pmi = int(pmi) + 1 if pmi.isascii() and pmi.isdigit() else 0
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = _HIGH_FD if soft == resource.RLIM_INFINITY else min(soft, _HIGH_FD)
    high = max(above_pmi, room - 16)
    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, high)
    except OSError:  # no descriptor free up there
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, above_pmi)


class Lifelines:
    """The launcher's end: a listening socket per rank, and the ranks' lifelines.

    A lifeline carries nothing: its only event is its end, so the epoll's ready list holds
    the lifelines in the order they closed."""

    def __init__(self, ready_dir: Path, ranks: int) -> None:
        self._ranks = ranks
        self._selector = selectors.DefaultSelector()  # epoll on Linux: ordered ready list
        self._listeners: dict[socket.socket, int] = {}
        self._lines: dict[socket.socket, int] = {}  # connected lifeline -> its rank
        self._connected: set[int] = set()  # ranks whose lifeline was ever accepted
        self._ended: list[int] = []  # ranks whose lifeline's end was seen, in order
        self._ended_unseen: list[int] = []  # ranks whose lifeline had closed when accepted
        for rank in range(ranks):
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                listener.bind(str(lifeline_path(ready_dir, rank)))
                listener.listen(4)
            except OSError:  # e.g. a path too long for a socket: no rank will be named
                listener.close()
                continue
            listener.setblocking(False)
            self._listeners[listener] = rank
            self._selector.register(listener, selectors.EVENT_READ)

    @property
    def holding(self) -> int:
        """How many lifelines are connected and still open."""
        return len(self._lines)

    @property
    def first_ended(self) -> list[int]:
        """The rank whose lifeline closed first; several when that is unknown (lifelines
        that had closed before they were accepted); none while a rank never connected."""
        if len(self._connected) < self._ranks:
            return []
        return sorted({*self._ended_unseen, *self._ended[:1]})

    def watch(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for lifelines to connect or close."""
        for key, _ in self._selector.select(timeout):
            connection = key.fileobj
            assert isinstance(connection, socket.socket)
            if connection in self._listeners:
                self._accept(connection)
            elif connection in self._lines and self._closed(connection):
                self._ended.append(self._lines[connection])
                self._forget(connection)

    def close(self) -> None:
        for connection in [*self._lines, *self._listeners]:
            self._forget(connection)
        self._selector.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. out of descriptors: the rest waits for the next call
                return
            rank = self._listeners[listener]
            self._connected.add(rank)
            connection.setblocking(False)
            self._lines[connection] = rank
            self._selector.register(connection, selectors.EVENT_READ)
            if self._closed(connection):
                # Closed before it was accepted: when, among the others, is unknown.
                self._ended_unseen.append(rank)
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
