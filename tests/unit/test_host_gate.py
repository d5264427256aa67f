"""The per-lease pacer: starts are never closer than the rate allows, across rate changes.

Only lower bounds on spacing are asserted: a loaded machine can make starts later, never
earlier, so these hold however noisy the box is.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest
from aiolimiter import AsyncLimiter

from distdl.runtime.host_gate import PACING_MARGIN, HostGate, StartLog

pytestmark = pytest.mark.timeout(30)
SLACK = 0.004  # event-loop timer granularity


async def _starts(gate: HostGate, count: int) -> list[float]:
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def one() -> None:
        await gate.acquire()
        times.append(loop.time())
        gate.release()

    await asyncio.gather(*(one() for _ in range(count)))
    return times


def _gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


async def test_starts_are_spaced_by_the_rate_with_no_burst_at_creation() -> None:
    loop = asyncio.get_running_loop()
    created = loop.time()
    gate = HostGate(rate=40.0, max_in_flight=8)
    times = await _starts(gate, 10)
    interval = 1 / (40.0 * PACING_MARGIN)
    assert times[0] - created >= interval - SLACK  # a new lease never bursts
    assert min(_gaps(times)) >= interval - SLACK


async def test_a_rate_change_keeps_the_spacing_from_the_last_start() -> None:
    gate = HostGate(rate=50.0, max_in_flight=4)
    first = await _starts(gate, 3)
    gate.set_rate(10.0)
    second = await _starts(gate, 3)
    slow = 1 / (10.0 * PACING_MARGIN)
    assert second[0] - first[-1] >= slow - SLACK
    assert min(_gaps(second)) >= slow - SLACK


async def test_pause_holds_every_start_and_in_flight_cap_holds() -> None:
    loop = asyncio.get_running_loop()
    gate = HostGate(rate=200.0, max_in_flight=2)
    gate.pause(0.2)
    paused_at = loop.time()
    (start,) = await _starts(gate, 1)
    assert start - paused_at >= 0.2 - SLACK

    await gate.acquire()
    await gate.acquire()
    third = asyncio.ensure_future(gate.acquire())
    await asyncio.sleep(0.05)
    assert not third.done()  # two in flight: the third waits for a release
    gate.release()
    await asyncio.wait_for(third, 1.0)


async def test_a_host_this_rank_never_contacted_gets_its_first_request_at_once() -> None:
    loop = asyncio.get_running_loop()
    starts = StartLog()
    created = loop.time()
    gate = HostGate(rate=2.0, max_in_flight=4, server_name="a.org", starts=starts)
    times = await _starts(gate, 3)
    interval = 1 / (2.0 * PACING_MARGIN)
    assert times[0] - created < interval / 2  # no wait for the very first request
    assert min(_gaps(times)) >= interval - SLACK  # then the rate, as always
    assert starts.last("a.org") == pytest.approx(times[-1])


async def test_a_new_gate_keeps_the_spacing_from_this_ranks_last_start_on_the_host() -> None:
    starts = StartLog()
    first = HostGate(rate=5.0, max_in_flight=4, server_name="a.org", starts=starts)
    before = await _starts(first, 2)
    second = HostGate(rate=5.0, max_in_flight=4, server_name="a.org", starts=starts)
    after = await _starts(second, 2)
    assert after[0] - before[-1] >= 1 / (5.0 * PACING_MARGIN) - SLACK
    other = HostGate(rate=5.0, max_in_flight=4, server_name="b.org", starts=starts)
    loop = asyncio.get_running_loop()
    created = loop.time()
    (alone,) = await _starts(other, 1)
    assert alone - created < 0.1  # another host: its own first request goes at once


async def test_resume_in_starts_at_the_slot_then_paces_from_it() -> None:
    # Slow enough that pacing from the last start would put the next one 5 s away: a slot
    # from rank 0 restarts the pacing instead (gates in lock-step must come apart).
    loop = asyncio.get_running_loop()
    gate = HostGate(rate=0.2, max_in_flight=4)
    gate.set_rate(50.0)
    (last,) = await _starts(gate, 1)
    gate.set_rate(0.2)
    gate.resume_in(0.2)
    asked = loop.time()
    gate.set_rate(0.25)  # a rate change after the slot keeps the slot
    gate.pause(0.1)  # a shorter pause does not cut the slot either
    first = asyncio.ensure_future(_starts(gate, 1))
    (resumed,) = await asyncio.wait_for(first, 3.0)  # not 4-5 s after the last start
    assert resumed - asked >= 0.2 - SLACK
    assert resumed - last < 3.0
    gate.set_rate(20.0)
    after = await _starts(gate, 2)
    assert min(_gaps([resumed, *after])) >= 1 / (20.0 * PACING_MARGIN) - SLACK


async def test_a_pause_longer_than_the_slot_still_holds() -> None:
    loop = asyncio.get_running_loop()
    gate = HostGate(rate=50.0, max_in_flight=2)
    gate.pause(0.3)  # the host's own Retry-After, on this lease's refusal
    asked = loop.time()
    gate.resume_in(0.05)
    (start,) = await _starts(gate, 1)
    assert start - asked >= 0.3 - SLACK


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        HostGate(rate=0.0, max_in_flight=1)


def test_under_uvloop_a_waiting_start_neither_spins_the_loop_nor_breaks_the_spacing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uvloop's clock ticks in milliseconds: aiolimiter alone would wake its next waiter
    over and over within the tick, for every start at these rates."""
    uvloop = pytest.importorskip("uvloop")
    wake_ups = 0
    wake_next = AsyncLimiter._wake_next

    def counted(self: AsyncLimiter, *args: object) -> None:
        nonlocal wake_ups
        wake_ups += 1
        wake_next(self, *args)

    monkeypatch.setattr(AsyncLimiter, "_wake_next", counted)
    fast = uvloop.run(_starts(HostGate(rate=5000.0, max_in_flight=8), 200))
    assert wake_ups / len(fast) < 10, wake_ups
    slow = uvloop.run(_starts(HostGate(rate=200.0, max_in_flight=8), 20))
    assert min(_gaps(slow)) >= 1 / (200.0 * PACING_MARGIN) - SLACK
