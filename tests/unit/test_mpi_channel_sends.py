"""MpiChannel's pending sends, on a fake communicator (the real one is exercised by every
MPI test): completed sends are released without testing every pending one at each send."""

from __future__ import annotations

from typing import Any

from distdl.runtime.messages import WorkerStopped
from distdl.runtime.mpi_channel import PRUNE_AT, MpiChannel


class _Request:
    def __init__(self, comm: _Comm) -> None:
        self._comm = comm
        self.done = False

    def Test(self) -> bool:
        self._comm.tests += 1
        return self.done


class _Comm:
    def __init__(self) -> None:
        self.tests = 0
        self.requests: list[_Request] = []

    def isend(self, message: Any, dest: int, tag: int) -> _Request:
        request = _Request(self)
        self.requests.append(request)
        return request

    def Get_rank(self) -> int:
        return 0


def test_sends_that_completed_are_released_and_tests_stay_linear() -> None:
    comm = _Comm()
    channel = MpiChannel(comm)
    sends = 10_000
    for _ in range(sends):
        channel.send(1, WorkerStopped())
        comm.requests[-1].done = True  # an eager send: done as soon as it is posted
    assert len(channel._pending) < PRUNE_AT
    assert comm.tests <= 2 * sends  # testing every pending request per send: ~PRUNE_AT x more


def test_sends_a_slow_receiver_holds_are_kept_until_flush_lets_them_go() -> None:
    comm = _Comm()
    channel = MpiChannel(comm)
    for _ in range(1_000):
        channel.send(1, WorkerStopped())  # never received: none completes
    assert len(channel._pending) == 1_000
    assert comm.tests <= 2 * 1_000
    for request in comm.requests:
        request.done = True
    channel.flush(timeout=1.0)
    assert channel._pending == []
