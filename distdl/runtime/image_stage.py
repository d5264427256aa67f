"""A rank's image work under its byte budget (``memory_per_rank``): which requests may start,
what each body claims, and the decoders that process it.

A lease asks :meth:`ImageStage.admit` before every request (before its host's gate, so that
waiting for memory never spends a request's slot in the host's pacing): it returns at once
while the budget admits one (:mod:`distdl.core.memory_budget`), else when enough is released,
first come first served. The :class:`Reservation` it returns follows the request:
:meth:`Reservation.arrived` when the answer is in (its body's size, 0 without a body), then
:meth:`ImageStage.process` claims the body plus the decoded footprint read from the image
header (:mod:`distdl.image.footprint`) before the image goes to a decoder, and refuses an
image that could not fit the whole budget (``DECOMPRESSION_BOMB``, naming memory_per_rank).
The lease releases the reservation when the row is settled.
"""

from __future__ import annotations

import asyncio
import warnings
from collections import deque
from typing import Protocol

from distdl.config import DownloaderParameters
from distdl.core import codes
from distdl.core.byte_size import format_byte_size
from distdl.core.memory_budget import MemoryBudget
from distdl.image.decode import ImageRejected
from distdl.image.decoder_child import DEFAULT_WORK, Work
from distdl.image.decoder_pool import DecoderPool, decoder_log
from distdl.image.footprint import plain_jpeg, probe_with_pillow
from distdl.image.pipeline import ImageFailure, ImageOptions, ProcessedImage


class Decoders(Protocol):
    async def process(self, data: bytes, label: str = "") -> ProcessedImage | ImageFailure: ...

    def close(self) -> None: ...


class Reservation:
    """One request's share of the budget, from its start until its row is settled: an
    allowance while in flight, then what its body claims."""

    def __init__(self, stage: ImageStage) -> None:
        self._stage = stage
        self.size: int | None = None  # None while the request is in flight
        self._released = False

    def arrived(self, body_size: int) -> None:
        """The answer is in: hold what its body weighs. Room this frees is not handed out
        yet: the body's claim (:meth:`ImageStage.process`) or its release comes next,
        before the loop runs anything else."""
        self._stage.budget.land(body_size)
        self.size = body_size

    def claim(self, size: int) -> None:
        """Hold ``size`` bytes (the body and its decoded footprint) until released."""
        if self.size is None or self._released:
            raise RuntimeError("a claim needs an arrived, unreleased body")
        self._stage.budget.resize(self.size, size)
        shrunk = size < self.size
        self.size = size
        if shrunk:
            self._stage.wake()

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        if self.size is None:
            self._stage.budget.abandon()
        else:
            self._stage.budget.release(self.size)
        self._stage.wake()


class ImageStage:
    def __init__(self, budget: MemoryBudget, decoders: Decoders, options: ImageOptions) -> None:
        self.budget = budget
        self.decoders = decoders
        self._options = options
        self._waiters: deque[asyncio.Future[Reservation]] = deque()

    async def admit(self) -> Reservation:
        """A reservation for one request, once the budget admits it (FIFO among waiters)."""
        if not self._waiters and self.budget.admits():
            return self._reserve()
        waiter: asyncio.Future[Reservation] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                waiter.result().release()  # admitted just as it was cancelled
            else:
                self._waiters.remove(waiter)
            raise

    def wake(self) -> None:
        """Admit waiting requests while the budget allows, oldest first."""
        while self._waiters and self.budget.admits():
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(self._reserve())

    async def process(
        self, body: bytes, reservation: Reservation, url: str = ""
    ) -> ProcessedImage | ImageFailure:
        """Claim ``body``'s bytes and decoded footprint, then run the pipeline on it; refuse
        (before decoding) what must not or could never be decoded within the budget. ``url``
        tags what a decoder writes to its stderr (the rank's log file)."""
        max_pixels, longer_side = self._options.max_pixels, self._options.image_size
        caught: list[warnings.WarningMessage] = []
        try:
            # Most bodies are plain JPEGs, read without Pillow: nothing to catch.
            footprint = plain_jpeg(body, max_pixels, longer_side)
            if footprint is None:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")  # each image's own, with its URL
                    footprint = probe_with_pillow(body, max_pixels, longer_side)
        except ImageRejected as rejected:
            _log_warnings(caught, url)
            self.budget.record_claim(len(body))
            return ImageFailure(rejected.code, rejected.message)
        claim = len(body) + footprint.peak_bytes
        if not self.budget.fits(claim):
            # Refused, so only its body was held: that is what the next answers should expect.
            self.budget.record_claim(len(body))
            width, height = footprint.size
            return ImageFailure(
                codes.DECOMPRESSION_BOMB,
                f"{width}x{height} {footprint.mode} needs about "
                f"{format_byte_size(footprint.peak_bytes)} to decode (+ "
                f"{format_byte_size(len(body))} body) > memory_per_rank "
                f"{format_byte_size(self.budget.capacity)}",
            )
        _log_warnings(caught, url)
        self.budget.record_claim(claim)
        reservation.claim(claim)
        return await self.decoders.process(body, url)

    def close(self) -> None:
        self.decoders.close()

    def _reserve(self) -> Reservation:
        self.budget.start()
        return Reservation(self)


# A decoder per CPU: the rank's event loop keeps the next body queued in each decoder's pipe
# (distdl.image.decoder_pool), so a decoder never waits for its rank, and a second one per
# CPU would only add a process contending for the same core (benchmarks/README.md).
DECODERS_PER_CPU = 1


def open_image_stage(params: DownloaderParameters, work: Work = DEFAULT_WORK) -> ImageStage:
    """The stage of a worker rank: its budget and DECODERS_PER_CPU decoder processes per
    ``cpu_per_worker``."""
    options = ImageOptions.from_config(params)
    # Before any answer has told what this rank's images weigh, a request reserves the
    # largest body allowed: a rank starts carefully (20 requests per GiB at the defaults).
    budget = MemoryBudget(params.memory_per_rank, params.max_image_bytes)
    processes = DECODERS_PER_CPU * params.cpu_per_worker
    decoders = DecoderPool(processes, options, params.image_timeout, work)
    return ImageStage(budget, decoders, options)


def _log_warnings(caught: list[warnings.WarningMessage], url: str) -> None:
    """Pillow's warnings while reading a header (corrupt EXIF, truncated reads): the rank's
    log file, one line each with the image's URL, never the terminal."""
    for warning in caught:
        decoder_log.warning("%s: %s: %s", url, warning.category.__name__, warning.message)
