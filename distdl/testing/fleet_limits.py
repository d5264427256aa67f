"""Pure pieces of the simulated hosts: the server-side token bucket, deterministic dice,
and the ``Retry-After`` header value. No I/O; time is always an argument.
"""

from __future__ import annotations

import hashlib
import math
from email.utils import formatdate


class TokenBucket:
    """``rate`` tokens per second, at most ``capacity`` stored; starts full.

    A request takes one token or is refused (the host answers 429). Refused requests take
    nothing, so a client hammering the host does not dig itself a deeper hole.
    """

    __slots__ = ("_stamp", "_tokens", "capacity", "rate")

    def __init__(self, rate: float, capacity: int, now: float) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("rate must be > 0 and capacity >= 1")
        self.rate = rate
        self.capacity = capacity
        self._tokens = float(capacity)
        self._stamp = now

    def try_take(self, now: float) -> bool:
        elapsed = max(0.0, now - self._stamp)
        self._tokens = min(float(self.capacity), self._tokens + elapsed * self.rate)
        self._stamp = max(self._stamp, now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def roll(*key: object) -> float:
    """A uniform number in [0, 1) that depends only on ``key``.

    Stable across processes and Python runs (unlike ``hash``), so a fleet's faults are
    reproducible from its seed.
    """
    text = "\x1f".join(str(part) for part in key).encode()
    digest = hashlib.blake2b(text, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def pick_band(value: float, bands: list[tuple[str, float]]) -> str | None:
    """The name of the band ``value`` falls in, bands laid end to end from 0; None past them."""
    edge = 0.0
    for name, width in bands:
        edge += width
        if value < edge:
            return name
    return None


def retry_after_value(setting: float | str | None, form: str, wall_now: float) -> str | None:
    """The ``Retry-After`` header for ``setting`` (see :class:`HostSpec`), or None.

    ``form="seconds"`` gives whole delay-seconds (rounded up, RFC 9110 allows no fraction);
    ``form="date"`` gives the IMF-fixdate ``wall_now + setting`` rounded up to a second.
    """
    if setting is None:
        return None
    if isinstance(setting, str):
        return setting
    delay = max(0, math.ceil(setting))
    if form == "date":
        return formatdate(math.ceil(wall_now) + delay, usegmt=True)
    return str(delay)
