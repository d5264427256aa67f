"""A rank's byte budget for images (``memory_per_rank``): the bodies fetched and waiting for,
or in, the image pipeline, plus the decoded pixels each of them will need.

How bytes are counted, and why:

* A request starts only while ``reserved + allowance <= capacity``. ``allowance`` is what an
  answer not received yet is expected to cost: the largest claim among the last
  :data:`WINDOW` bodies (before the first, ``first_allowance``: the largest body the config
  lets through, so a rank starts carefully). When the pipeline lags, reserved bytes pile up
  and fetching waits: back-pressure, never more buffering.
* When a body arrives, its reservation becomes its *claim*: the body's bytes plus the
  decoded footprint estimated from the image header, before any pixel is decoded. This is
  taken unconditionally (the bytes exist already), and decoding never waits for memory, so
  nothing can deadlock: every reserved byte is released by work that is already running or
  queued.
* Reserving ``max_image_bytes`` for every request would be a hard bound, but at the default
  50 MiB only 20 requests per GiB could be in flight, whatever the images weigh. The claim
  window adapts instead: bounded by the budget when the images are alike, and the only
  excess is an answer bigger than the largest of the recent ones arriving while the budget
  is full: ``reserved <= capacity + sum over requests in flight of max(0, claim -
  allowance)``.

Pure bookkeeping: the event-loop glue (waiting, waking) is
:mod:`distdl.runtime.image_stage`.
"""

from __future__ import annotations

from collections import deque

WINDOW = 32  # claims the allowance looks back on: long enough to catch a site's big images
MIN_ALLOWANCE = 64 * 1024  # an answer costs at least its buffers, even when it has no body


class MemoryBudget:
    def __init__(self, capacity: int, first_allowance: int, window: int = WINDOW) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1 byte, got {capacity}")
        if first_allowance < 0 or window < 1:
            raise ValueError("first_allowance must be >= 0 and window >= 1")
        self.capacity = capacity
        self.reserved = 0
        self.peak = 0  # the most ever reserved at once
        self._first_allowance = first_allowance
        self._claims: deque[int] = deque(maxlen=window)

    def allowance(self) -> int:
        """Bytes to reserve for a request whose answer has not arrived yet."""
        expected = max(self._claims) if self._claims else self._first_allowance
        # Never above the capacity, so an idle rank can always start a request.
        return min(self.capacity, max(MIN_ALLOWANCE, expected))

    def admits(self) -> bool:
        """Whether a request may start now."""
        return self.reserved + self.allowance() <= self.capacity

    def fits(self, claim: int) -> bool:
        """Whether one image needing ``claim`` bytes could ever be held (on an idle rank)."""
        return claim <= self.capacity

    def take(self, size: int) -> None:
        self._check(size)
        self.reserved += size
        self.peak = max(self.peak, self.reserved)

    def resize(self, old: int, new: int) -> None:
        """A reservation of ``old`` bytes becomes ``new`` bytes (taken unconditionally)."""
        self._check(old)
        self._check(new)
        self.release(old)
        self.take(new)

    def release(self, size: int) -> None:
        self._check(size)
        if size > self.reserved:
            raise ValueError(f"releasing {size} bytes, only {self.reserved} reserved")
        self.reserved -= size

    def record_claim(self, claim: int) -> None:
        """What an arrived body turned out to need (body + decoded estimate)."""
        self._check(claim)
        self._claims.append(claim)

    @staticmethod
    def _check(size: int) -> None:
        if size < 0:
            raise ValueError(f"a byte count cannot be negative, got {size}")
