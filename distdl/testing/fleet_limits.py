"""Pure pieces of the simulated hosts: the server-side token bucket, what load does to a
host (:class:`HostLoad`), deterministic dice, and the ``Retry-After`` header value. No I/O;
time is always an argument.

The overload model (a back end that degrades as it is pushed, unlike a token bucket that
refuses cleanly): with ``rate`` the requests per second the host received over its last
``overload_window`` seconds and ``knee`` its ``overload_knee``,

* latency = ``latency * (1 + rate / knee)``: answers slow down first, doubling at the knee;
* shed share = ``min(0.9, (rate / knee - 1) * slope)`` above the knee, 0 below: that share
  of requests is answered 503 for load. The cap keeps a pushed server answering some
  requests, as real ones do (a server answering none is a dead host, modelled apart).
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from dataclasses import dataclass
from email.utils import formatdate

from distdl.testing.fleet_spec import HostSpec

OVERLOAD_MAX_SHARE = 0.9


class TokenBucket:
    """``rate`` tokens per second, at most ``capacity`` stored; starts full.

    A request takes one token or is refused (the host answers 429). Refused requests take
    nothing, so a client hammering the host does not dig itself a deeper hole.
    """

    __slots__ = ("_stamp", "_tokens", "capacity", "rate")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        _check_bucket(rate, capacity)
        self.rate = rate
        self.capacity = float(capacity)
        self._tokens = self.capacity
        self._stamp = now

    def try_take(self, now: float) -> bool:
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def retune(self, rate: float, capacity: float, now: float) -> None:
        """From ``now`` on, refill at ``rate`` up to ``capacity`` (tokens above it are lost)."""
        _check_bucket(rate, capacity)
        self._refill(now)  # the time so far refills at the old rate
        self.rate, self.capacity = rate, float(capacity)
        self._tokens = min(self._tokens, self.capacity)

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._stamp)
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
        self._stamp = max(self._stamp, now)


def _check_bucket(rate: float, capacity: float) -> None:
    if rate <= 0 or capacity < 1:
        raise ValueError("rate must be > 0 and capacity >= 1")


class RateMeter:
    """Requests per second over the last ``window`` seconds, as a server would measure it."""

    def __init__(self, window: float) -> None:
        if window <= 0:
            raise ValueError("window must be > 0")
        self.window = window
        self._arrivals: deque[float] = deque()

    def arrive(self, now: float) -> float:
        """Count a request arriving at ``now``; the rate seen, this request included."""
        self._arrivals.append(now)
        while now - self._arrivals[0] >= self.window:
            self._arrivals.popleft()
        return len(self._arrivals) / self.window


def overload_share(rate: float, knee: float, slope: float) -> float:
    """Share of requests shed with 503 at ``rate`` (see the module docstring)."""
    if rate <= knee:
        return 0.0
    return min(OVERLOAD_MAX_SHARE, (rate / knee - 1.0) * slope)


def overload_latency_factor(rate: float, knee: float) -> float:
    """How much slower than its base latency a host answers at ``rate``."""
    return 1.0 + rate / knee


@dataclass(frozen=True)
class Admission:
    """What the host's load does to one request."""

    limited: bool  # the bucket was empty: answer ``limited_status``
    latency_factor: float = 1.0  # multiplies the host's base latency
    shed_share: float = 0.0  # chance the request is answered 503 for load


class HostLoad:
    """A host's bucket (following its limit schedule) and its overload, request by request.

    The limit schedule's clock starts at the first request the host receives.
    """

    def __init__(self, spec: HostSpec) -> None:
        self.spec = spec
        self._bucket: TokenBucket | None = None
        self._first: float | None = None
        self._last = -math.inf  # the latest request seen
        self._meter = RateMeter(spec.overload_window) if spec.overload_knee else None

    def admit(self, now: float) -> Admission:
        spec = self.spec
        if self._first is None:
            self._first = now
        factor, shed = 1.0, 0.0
        if self._meter is not None and spec.overload_knee is not None:
            seen = self._meter.arrive(now)
            factor = overload_latency_factor(seen, spec.overload_knee)
            shed = overload_share(seen, spec.overload_knee, spec.overload_slope)
        return Admission(not self._take(now), factor, shed)

    def _take(self, now: float) -> bool:
        spec, first = self.spec, self._first
        assert first is not None
        rate = spec.limit_at(now - first)
        if rate is None:
            return True
        if self._bucket is None:
            self._bucket = TokenBucket(rate, spec.capacity_at(rate), now)
        for offset in self._limit_changes(first, self._last, now):
            # The limit at the offset itself: (first + offset) - first may round to just
            # below it, where the old limit still holds, and the change would be missed.
            changed = spec.limit_at(offset)
            assert changed is not None
            # retuned at the moment the limit changed, so tokens are earned at the right rate
            self._bucket.retune(changed, spec.capacity_at(changed), first + offset)
        self._last = max(self._last, now)
        return self._bucket.try_take(now)

    def _limit_changes(self, first: float, after: float, until: float) -> list[float]:
        """The offsets (from the first request) of the limit changes in (after, until]."""
        start, end = self.spec.limit_drop_start, self.spec.limit_drop_end
        if start is None or end is None:
            return []
        return [offset for offset in (start, end) if after < first + offset <= until]


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
