"""Time as a dependency: policy code asks a ``Clock`` instead of reading the system time.

Monotonic seconds only. Wall-clock time is needed in one place (HTTP-date Retry-After) and
is passed there explicitly as ``now_epoch``, so nothing here offers it.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds; only differences between two readings mean anything."""
        ...


class MonotonicClock:
    """The real clock (``time.monotonic``): never jumps back when NTP adjusts the system time."""

    def now(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that only moves when told to, for deterministic tests of time-based policy."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot go back ({seconds} s)")
        self._now += seconds
