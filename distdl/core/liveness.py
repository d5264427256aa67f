"""Which ranks are alive: silence counted while listening, and when a rank must fence itself.

Every rank speaks at least every :data:`HEARTBEAT_INTERVAL` seconds (a worker's periodic
reports to rank 0, or a tiny heartbeat when it has nothing else to say; rank 0 heartbeats
every worker). A peer silent for ``limit`` seconds is declared dead.

Silence is only counted while the listener itself was listening. A listener whose own loop
stalled (a long synchronous write, a SIGSTOP, a swapped-out node) heard nothing during the
stall through no fault of its peers: each gap between two of its :meth:`Silence.tick` calls
counts for at most :data:`STALL_TOLERANCE` seconds. Otherwise a rank 0 that paused for 30 s
would declare every worker dead at once.

The other side of the same rule: a rank whose own loop stalled for half the limit or more
may have been declared dead by its peers while it was away (:func:`may_be_declared_dead`),
and its partitions handed to someone else. Such a rank must write nothing more: it fences
itself. Half the limit leaves room for the heartbeat interval and for messages in transit.

Pure: time is an argument; no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

HEARTBEAT_INTERVAL = 1.0  # seconds: a silent rank is noticed within the limit + this
# A loop tick normally comes every few milliseconds; a one-second gap is already a stall.
STALL_TOLERANCE = 1.0
# The default silence after which a rank is dead. It must outlast the longest pause a live
# rank can make without anyone's fault: a garbage collection or a multi-MB parquet write on
# a busy shared file system take seconds, not tens of seconds. And it must leave room in a
# minute for noticing a dead rank and stopping the job cleanly.
DEFAULT_SILENCE_LIMIT = 30.0
MIN_SILENCE_LIMIT = 2 * HEARTBEAT_INTERVAL + STALL_TOLERANCE


class Silence:
    """How long each peer has been silent, in seconds this listener spent listening."""

    def __init__(self, peers: Iterable[int], now: float, tolerance: float = STALL_TOLERANCE):
        self._tolerance = tolerance
        self._last_tick = now
        self._listened = 0.0  # seconds spent listening since the start, stalls clipped
        self._heard_at: dict[int, float] = {peer: 0.0 for peer in peers}

    def tick(self, now: float) -> float:
        """The listener's loop came round; returns the gap since the previous tick."""
        gap = max(0.0, now - self._last_tick)
        self._last_tick = now
        self._listened += min(gap, self._tolerance)
        return gap

    def heard(self, peer: int) -> None:
        """A message from ``peer`` arrived (at the time of the last tick)."""
        if peer in self._heard_at:
            self._heard_at[peer] = self._listened

    def forget(self, peer: int) -> None:
        """Stop watching ``peer`` (it stopped cleanly, or was declared dead)."""
        self._heard_at.pop(peer, None)

    def silent_for(self, peer: int) -> float:
        return self._listened - self._heard_at[peer]

    def silent_beyond(self, limit: float) -> list[int]:
        """The watched peers silent for ``limit`` seconds or more, quietest first."""
        silent = [peer for peer in self._heard_at if self.silent_for(peer) >= limit]
        return sorted(silent, key=lambda peer: (-self.silent_for(peer), peer))

    def stalled_since_tick(self, now: float) -> float:
        """How long the listener has been away from its loop, as of ``now``."""
        return max(0.0, now - self._last_tick)


def may_be_declared_dead(stall: float, limit: float) -> bool:
    """Whether a rank that was away ``stall`` seconds may have been declared dead."""
    return stall >= limit / 2
