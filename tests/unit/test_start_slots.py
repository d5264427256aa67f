"""Start slots: the holders of one host come back one budget interval apart, never together,
and no holder's start is pushed away again and again (fake time throughout)."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distdl.core.scheduler import SHARE_PARTITION, Lease
from distdl.core.start_slots import HolderStart, StartSlots

HOST = "cdn.org"
EPS = 1e-9


def lease(lease_id: int, worker: int = 1, rate: float = 1.0) -> Lease:
    return Lease(lease_id, worker, HOST, 0, 10, rate)


def share(lease_id: int, worker: int = 2, rate: float = 1.0) -> Lease:
    return Lease(lease_id, worker, HOST, SHARE_PARTITION, 0, rate)


def at(starts: list[HolderStart]) -> dict[int, float]:
    return {start.lease_id: start.at for start in starts}


def test_a_pause_spreads_the_holders_one_budget_interval_apart_from_its_end() -> None:
    slots = StartSlots()
    starts = slots.spread(HOST, [share(7), lease(3)], budget=2.0, now=10.0, pause_end=14.0)
    assert at(starts) == {3: 14.0, 7: 14.5}
    assert [(s.lease_id, s.worker) for s in starts] == [(3, 1), (7, 2)]


def test_the_first_slot_is_never_sooner_than_one_interval_after_the_refusal() -> None:
    # A Retry-After shorter than the budget's interval: the budget still holds.
    starts = StartSlots().spread(HOST, [lease(1)], budget=0.2, now=10.0, pause_end=11.0)
    assert at(starts) == {1: 15.0}


def test_a_new_pause_always_spreads_again() -> None:
    slots = StartSlots()
    slots.spread(HOST, [lease(1), share(2)], budget=1.0, now=0.0, pause_end=4.0)
    again = slots.spread(HOST, [lease(1), share(2)], budget=1.0, now=1.0, pause_end=9.0)
    assert sorted(at(again).values()) == [9.0, 10.0]


def test_a_share_asked_for_during_a_pause_waits_for_its_end() -> None:
    slots = StartSlots()
    holders = [lease(1)]
    slots.spread(HOST, holders, budget=2.0, now=0.0, pause_end=4.0)  # lease 1: 4.0
    newcomer = share(2)
    starts = slots.join(HOST, newcomer, [*holders, newcomer], budget=2.0, now=1.0)
    assert starts == [HolderStart(2, 2, 4.5)]  # the next slot: only the newcomer moves


def test_a_share_asked_for_during_a_pause_nobody_held_waits_for_its_end() -> None:
    slots = StartSlots()
    # The only lease ended before rank 0 heard the Retry-After: nobody to spread, yet the
    # pause still holds for whoever comes next.
    assert slots.spread(HOST, [], budget=2.0, now=0.0, pause_end=4.0) == []
    newcomer = share(5)
    assert at(slots.join(HOST, newcomer, [newcomer], budget=2.0, now=1.0)) == {5: 4.0}


def test_a_lone_newcomer_starts_at_once_and_a_second_one_spreads_both() -> None:
    slots = StartSlots()
    first = lease(1)
    assert slots.join(HOST, first, [first], budget=4.0, now=0.0) == []
    second = share(2)
    # In step with the lease otherwise (a new gate keeps this rank's last start's spacing).
    starts = slots.join(HOST, second, [first, second], budget=4.0, now=1.0)
    assert at(starts) == {1: 1.25, 2: 1.5}


def test_a_refusal_spreads_several_holders_but_not_a_lone_one() -> None:
    slots = StartSlots()
    assert slots.spread(HOST, [lease(1)], budget=2.0, now=0.0) == []
    assert at(slots.spread(HOST, [lease(1), share(2)], budget=2.0, now=0.0)) == {1: 0.5, 2: 1.0}


def test_refusals_and_openings_never_push_a_slot_that_is_still_ahead() -> None:
    slots = StartSlots()
    holders = [lease(1), share(2)]
    slots.spread(HOST, holders, budget=1.0, now=0.0)  # slots 1.0 and 2.0
    assert slots.spread(HOST, holders, budget=1.0, now=1.5) == []  # 2.0 is still ahead
    newcomer = share(3, worker=3)
    assert slots.join(HOST, newcomer, [*holders, newcomer], budget=1.0, now=1.5) == [
        HolderStart(3, 3, 3.0)  # the next slot; nobody else moves
    ]
    assert slots.spread(HOST, [*holders, newcomer], budget=1.0, now=3.5) == []
    # One interval after the last slot, the next spread may come.
    assert len(slots.spread(HOST, [*holders, newcomer], budget=1.0, now=4.0)) == 3


def test_turns_rotate_so_no_holder_always_comes_last() -> None:
    slots = StartSlots()
    holders = [lease(1), share(2), share(3, worker=3)]
    firsts = []
    for round_ in range(3):
        now = 100.0 * round_
        starts = slots.spread(HOST, holders, budget=1.0, now=now, pause_end=now + 4)
        firsts.append(min(starts, key=lambda start: start.at).lease_id)
    assert sorted(firsts) == [1, 2, 3]


def test_hosts_are_spread_independently() -> None:
    slots = StartSlots()
    slots.spread(HOST, [lease(1), share(2)], budget=1.0, now=0.0, pause_end=10.0)
    other = Lease(9, 1, "other.org", 0, 10, 1.0)
    assert slots.join("other.org", other, [other], budget=1.0, now=1.0) == []


# --------------------------------------------------------------------- properties

EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["pause", "refusal", "join", "leave", "wait"]),
        st.floats(min_value=0.0, max_value=8.0),
        st.integers(min_value=0, max_value=9),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(EVENTS, st.floats(min_value=0.2, max_value=50.0))
def test_slots_are_spaced_bounded_and_never_pushed_while_ahead(
    events: list[tuple[str, float, int]], budget: float
) -> None:
    slots = StartSlots()
    holders: dict[int, Lease] = {}
    slot_of: dict[int, float] = {}
    now, next_id, last_pause_end = 0.0, 1, -math.inf
    spacing = 1.0 / budget
    for kind, value, index in events:
        if kind == "wait":
            now += value
            continue
        if kind == "leave":
            if holders:
                slot_of.pop(holders.pop(sorted(holders)[index % len(holders)]).lease_id, None)
            continue
        pause_end: float | None = None
        if kind == "pause":
            pause_end = last_pause_end = now + value
            starts = slots.spread(HOST, list(holders.values()), budget, now, pause_end)
        elif kind == "refusal":
            starts = slots.spread(HOST, list(holders.values()), budget, now)
        else:
            newcomer = share(next_id, worker=index)
            next_id += 1
            holders[newcomer.lease_id] = newcomer
            starts = slots.join(HOST, newcomer, list(holders.values()), budget, now)
        times = sorted(start.at for start in starts)
        assert all(b - a >= spacing - EPS for a, b in itertools.pairwise(times))
        latest = max(slot_of.values(), default=-math.inf)
        for start in starts:
            assert start.lease_id in holders
            assert start.at >= last_pause_end - EPS  # Retry-After honoured, by newcomers too
            if kind == "join" and len(starts) == 1:  # the next slot of a spread under way
                assert start.at >= latest + spacing - EPS
                assert start.at > now
            else:  # a spread: never sooner than one interval away
                assert start.at >= now + spacing - EPS
            if pause_end is not None:
                assert start.at >= pause_end - EPS  # Retry-After honoured
            else:
                # Only a pause may move a slot that is still ahead (no starvation)...
                assert slot_of.get(start.lease_id, -math.inf) <= now + EPS
            # ...and no slot is ever further than one per holder opened so far.
            first = max(now, last_pause_end) + spacing
            assert start.at <= first + (next_id - 1) * spacing + EPS
            slot_of[start.lease_id] = start.at


# -------------------------------------------------------------------- simulation


def run_lock_step(slotted: bool, seconds: float = 120.0) -> tuple[int, dict[int, int]]:
    """Two holders of a host whose bucket takes one request per 1/24 s and answers a
    refusal with Retry-After: 4; each holder paces itself at half the budget. Both start at
    the same instant (the lock-step a shared pause end, or this rank's last start on the
    host, puts them in). Returns (refusals, successes per holder).

    ``slotted``: each pause spreads the holders (start slots); otherwise every holder
    resumes at the pause end (the rule before start slots)."""
    budget, limit, retry_after = 2.0, 24.0, 4.0
    interval = 2 / budget
    holders = [lease(1), share(2)]
    next_start = {1: 0.0, 2: 0.0}
    last_accepted = -math.inf
    refusals, successes = 0, {1: 0, 2: 0}
    slots = StartSlots()
    while True:
        lease_id = min(next_start, key=lambda i: (next_start[i], i))
        now = next_start[lease_id]
        if now > seconds:
            return refusals, successes
        if now - last_accepted >= 1 / limit:
            last_accepted = now
            successes[lease_id] += 1
            next_start[lease_id] = now + interval
            continue
        refusals += 1
        if slotted:
            for start in slots.spread(HOST, holders, budget, now, now + retry_after):
                next_start[start.lease_id] = start.at
        else:
            for holder in next_start:
                next_start[holder] = max(next_start[holder], now + retry_after)


def test_start_slots_break_the_lock_step_a_one_request_bucket_keeps_refusing() -> None:
    refusals, successes = run_lock_step(slotted=True)
    assert refusals == 1
    assert min(successes.values()) >= 100  # both holders go at their pace: 1 req/s each
    # The rule before start slots, for contrast: a refusal at every pause end, for ever.
    refusals, successes = run_lock_step(slotted=False)
    assert refusals >= 25 and sum(successes.values()) <= refusals + 1


@pytest.mark.parametrize("budget", [0.2, 1.0, 24.0])
def test_a_spread_never_sends_the_host_two_starts_closer_than_its_interval(budget: float) -> None:
    holders = [lease(i, worker=i) for i in range(1, 6)]
    starts = StartSlots().spread(HOST, holders, budget, now=0.0, pause_end=1.0)
    times = sorted(start.at for start in starts)
    assert min(b - a for a, b in itertools.pairwise(times)) == pytest.approx(1 / budget)
