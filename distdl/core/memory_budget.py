"""A rank's byte budget for images (``memory_per_rank``): the bodies fetched and waiting for,
or in, the image pipeline, plus the decoded pixels each of them will need.

How bytes are counted, and why:

* A body that has arrived *holds* its claim: its bytes plus the decoded footprint estimated
  from the image header, before any pixel is decoded. This is taken unconditionally (the
  bytes exist already), and decoding never waits for memory, so nothing can deadlock: every
  held byte is released by work that is already running or queued.
* A request in flight counts as ``allowance`` bytes: what an answer is expected to claim,
  the largest claim among the last :data:`WINDOW` bodies (before the first one,
  ``first_allowance``: the largest body the config allows, so a rank starts carefully). It
  is re-evaluated as claims come in, so requests started while little was known (or hanging
  on a dead host) count as what the host's images are now known to weigh.
* ``reserved = held + requests in flight x allowance``, and a request starts only while one
  more allowance fits: when the pipeline lags, held bytes pile up and fetching waits
  (back-pressure, never more buffering).

Reserving ``max_image_bytes`` for every request would be a hard bound, but at the default
50 MiB only 20 requests per GiB could be in flight, whatever the images weigh. The window
adapts instead: bounded by the budget when the images are alike, and the only excess is an
answer bigger than the largest recent one, arriving while the budget is full:
``reserved <= capacity + sum over requests in flight of max(0, claim - allowance)``.

Pure bookkeeping: the event-loop glue (waiting, waking) is :mod:`distdl.runtime.image_stage`.
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
        self.held = 0  # claims of bodies that arrived
        self.in_flight = 0  # requests whose answer has not arrived
        self.peak = 0  # the most ever reserved at once
        self._first_allowance = first_allowance
        self._claims: deque[int] = deque(maxlen=window)

    @property
    def reserved(self) -> int:
        return self.held + self.in_flight * self.allowance()

    def allowance(self) -> int:
        """What a request whose answer has not arrived is expected to claim."""
        expected = max(self._claims) if self._claims else self._first_allowance
        # Never above the capacity, so an idle rank can always start a request.
        return min(self.capacity, max(MIN_ALLOWANCE, expected))

    def admits(self) -> bool:
        """Whether one more request may start now."""
        return self.reserved + self.allowance() <= self.capacity

    def fits(self, claim: int) -> bool:
        """Whether one image needing ``claim`` bytes could ever be held (on an idle rank)."""
        return claim <= self.capacity

    def start(self) -> None:
        """A request starts (the caller asked :meth:`admits`)."""
        self.in_flight += 1
        self._note_peak()

    def land(self, size: int) -> None:
        """A request's answer arrived: from now on it holds ``size`` bytes."""
        self._check(size)
        if self.in_flight < 1:
            raise ValueError("an answer landed with no request in flight")
        self.in_flight -= 1
        self.held += size
        self._note_peak()

    def abandon(self) -> None:
        """A request ended without an answer to hold (cancelled)."""
        if self.in_flight < 1:
            raise ValueError("abandoning a request that is not in flight")
        self.in_flight -= 1

    def resize(self, old: int, new: int) -> None:
        """A held ``old`` bytes becomes ``new`` bytes (taken unconditionally)."""
        self._check(new)
        self.release(old)
        self.held += new
        self._note_peak()

    def release(self, size: int) -> None:
        self._check(size)
        if size > self.held:
            raise ValueError(f"releasing {size} bytes, only {self.held} held")
        self.held -= size

    def record_claim(self, claim: int) -> None:
        """What an arrived body turned out to need (body + decoded estimate)."""
        self._check(claim)
        self._claims.append(claim)
        self._note_peak()  # requests in flight are now expected to claim this much

    def _note_peak(self) -> None:
        self.peak = max(self.peak, self.reserved)

    @staticmethod
    def _check(size: int) -> None:
        if size < 0:
            raise ValueError(f"a byte count cannot be negative, got {size}")
