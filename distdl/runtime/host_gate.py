"""How fast one lease may start requests on its host: an aiolimiter bucket plus an in-flight cap.

aiolimiter cannot change its rate (upstream issue #98), so a rate change swaps the limiter;
a waiter that got through the old limiter after a swap queues again on the new one, so every
request passes the current rate. ``AsyncLimiter(1, 1 / rate)`` has a bucket of one: starts
are spaced by ``1 / rate`` with no burst, so in any 1 s window a lease starts at most
``rate + 1`` requests (the documented tolerance is one request per open lease).

``resume_in`` is a pause that also sets the phase: the first start after it is due at its
end, whatever came before, and the next ones are paced from there. Rank 0 gives the holders
of one host resume times one budget interval apart (:mod:`distdl.core.start_slots`); a plain
``pause`` would keep each gate's own phase, and gates in lock-step would stay in it.
"""

from __future__ import annotations

import asyncio

from aiolimiter import AsyncLimiter

# Servers count arrivals, and arrivals jitter by milliseconds: paced at exactly its limit, a
# host with a one-request bucket answers 429 whenever one request travels faster than the
# one before. Starting requests at 97% of the rate leaves that jitter room (15 ms at 2 req/s)
# for a 3% longer run, instead of a 429, a retry and a rate cut.
PACING_MARGIN = 0.97


# uvloop's clock (loop.time()) ticks in milliseconds.
CLOCK_TICK = 0.001


class _Bucket(AsyncLimiter):
    """aiolimiter's bucket, whose wake-up for the next waiter is never due within the
    loop's current clock tick.

    Under uvloop a wake-up due within the tick runs at once (a plain callback), reads the
    same millisecond, finds no token leaked yet and sets another: the loop spins until the
    tick ends, for every paced start (the cost is in benchmarks/README.md). One tick later
    a token has leaked. It relies on aiolimiter's ``_wake_next`` and ``_waker_handle`` (1.2
    and later); tests/unit/test_host_gate.py checks it.
    """

    def _wake_next(self, *args: object) -> None:
        super()._wake_next(*args)
        handle = self._waker_handle
        if handle is None:
            return
        now = self._loop.time()
        when = getattr(handle, "when", None)  # uvloop makes one due now a plain Handle
        if when is None or when() - now < CLOCK_TICK:
            handle.cancel()
            self._waker_handle = self._loop.call_at(now + CLOCK_TICK, self._wake_next)


def _limiter_for(rate: float) -> AsyncLimiter:
    return _Bucket(1, 1.0 / (rate * PACING_MARGIN))


class StartLog:
    """When this rank last started a request on each host, across the gates it opens.

    A new gate on a host this rank has already talked to keeps the spacing from the last
    start; on a host it has never talked to, the first request may go at once.
    """

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def last(self, server_name: str) -> float | None:
        return self._last.get(server_name)

    def record(self, server_name: str, when: float) -> None:
        self._last[server_name] = max(when, self._last.get(server_name, when))


class HostGate:
    def __init__(
        self,
        rate: float,
        max_in_flight: int,
        server_name: str = "",
        starts: StartLog | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self._rate = rate
        self._limiter = _limiter_for(rate)
        self._slots = asyncio.Semaphore(max_in_flight)
        self._paused_until = 0.0
        self._server_name = server_name
        self._starts = starts
        # Loop time of the last start, across swaps (and across this rank's gates on the
        # host when a StartLog is shared).
        self._last_start: float | None = starts.last(server_name) if starts else None
        self._fresh = starts is not None and self._last_start is None
        self._resume_at: float | None = None  # set by resume_in until the next start
        self._priming: tuple[AsyncLimiter, asyncio.Future[None]] | None = None

    @property
    def rate(self) -> float:
        return self._rate

    def set_rate(self, rate: float) -> None:
        if rate <= 0 or rate == self._rate:
            return
        self._rate = rate
        self._limiter = _limiter_for(rate)

    def pause(self, seconds: float) -> None:
        until = asyncio.get_running_loop().time() + seconds
        self._paused_until = max(self._paused_until, until)

    def resume_in(self, seconds: float) -> None:
        """Start nothing for ``seconds``, then pace from that moment on: the first start is
        due then, however recent the last one was (a longer pause still holds it back)."""
        until = asyncio.get_running_loop().time() + max(0.0, seconds)
        self._paused_until = max(self._paused_until, until)
        self._resume_at = until
        self._limiter = _limiter_for(self._rate)  # waiters prime again, from the resume time

    async def _wait_pause(self) -> None:
        loop = asyncio.get_running_loop()
        while (delay := self._paused_until - loop.time()) > 0:
            await asyncio.sleep(delay)

    async def acquire(self) -> None:
        """Wait for an in-flight slot, the end of any pause, and a token at the current rate."""
        await self._slots.acquire()
        try:
            while True:
                await self._wait_pause()
                limiter = self._limiter
                await self._primed(limiter)
                await limiter.acquire()
                now = asyncio.get_running_loop().time()
                if limiter is self._limiter and self._paused_until <= now:
                    self._last_start = now
                    self._resume_at = None
                    if self._starts is not None:
                        self._starts.record(self._server_name, now)
                    return
        except BaseException:
            self._slots.release()
            raise

    async def _primed(self, limiter: AsyncLimiter) -> None:
        """Every waiter on a fresh limiter waits for the same one-time priming."""
        if self._priming is None or self._priming[0] is not limiter:
            task = asyncio.ensure_future(self._prime(limiter))
            self._priming = (limiter, task)
        await asyncio.shield(self._priming[1])

    async def _prime(self, limiter: AsyncLimiter) -> None:
        """A fresh bucket is empty and would let a request through at once.

        After a rate change the next start keeps the new spacing from the last start. A new
        gate on a host this rank never contacted lets its first request go at once (the one
        request per open lease the module docstring allows); one without that knowledge may
        follow another lease on the host, so it waits one whole interval. After
        ``resume_in`` the first start is due at the resume time.
        """
        if self._resume_at is not None:
            wait = self._resume_at - asyncio.get_running_loop().time()
            if wait > 0:
                await asyncio.sleep(wait)
            return  # the bucket's one token is the resumed first start's
        if self._last_start is None:
            if self._fresh:
                self._fresh = False  # the bucket's one token is this first request's
                return
            await limiter.acquire()
            return
        interval = 1.0 / (self._rate * PACING_MARGIN)
        wait = self._last_start + interval - asyncio.get_running_loop().time()
        if wait > 0:
            await asyncio.sleep(wait)

    def release(self) -> None:
        self._slots.release()
