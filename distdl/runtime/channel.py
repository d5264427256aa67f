"""Point-to-point message channels: one role (`Channel`), two mechanisms.

`QueueChannel` connects ranks living in one process (tests, ``--ranks 1``);
`distdl.runtime.mpi_channel.MpiChannel` connects real MPI ranks. Both are polled without
blocking so that no rank ever stalls its downloads waiting for a message.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

from distdl.runtime.messages import Message

POLL_INTERVAL = 0.005  # seconds between polls when idle: cheap, and far below any rate limit


class Channel(Protocol):
    @property
    def rank(self) -> int: ...

    def send(self, dest: int, message: Message) -> None: ...

    def poll(self) -> list[tuple[int, Message]]:
        """Every message that has arrived, as (source rank, message), without blocking."""
        ...


async def receive(channel: Channel, timeout: float) -> list[tuple[int, Message]]:
    """Wait up to ``timeout`` seconds for at least one message, yielding to the event loop."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        messages = channel.poll()
        if messages or loop.time() >= deadline:
            return messages
        await asyncio.sleep(min(POLL_INTERVAL, max(0.0, deadline - loop.time())))


class QueueHub:
    """In-process mailboxes for ``size`` ranks."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._boxes: list[deque[tuple[int, Message]]] = [deque() for _ in range(size)]

    def channel(self, rank: int) -> QueueChannel:
        return QueueChannel(self, rank)

    def deliver(self, source: int, dest: int, message: Message) -> None:
        self._boxes[dest].append((source, message))

    def drain(self, rank: int) -> list[tuple[int, Message]]:
        box = self._boxes[rank]
        out = list(box)
        box.clear()
        return out


class QueueChannel:
    def __init__(self, hub: QueueHub, rank: int) -> None:
        self._hub = hub
        self._rank = rank

    @property
    def rank(self) -> int:
        return self._rank

    def send(self, dest: int, message: Message) -> None:
        self._hub.deliver(self._rank, dest, message)

    def poll(self) -> list[tuple[int, Message]]:
        return self._hub.drain(self._rank)
