"""Pure liveness and stop decisions, on a fake clock."""

from __future__ import annotations

import signal

import pytest

from distdl.core.clock import FakeClock
from distdl.core.liveness import (
    HEARTBEAT_INTERVAL,
    STALL_TOLERANCE,
    Silence,
    may_be_declared_dead,
)
from distdl.core.stopping import (
    SETTLE_SHARE,
    WAIT_SHARE,
    StopPlan,
    exit_code,
    parse_kill_wait,
    stopped_line,
)

LIMIT = 30.0


def _listen(silence: Silence, clock: FakeClock, seconds: float, heard: tuple[int, ...] = ()):
    """Tick every 20 ms for ``seconds``, hearing ``heard`` every heartbeat interval."""
    steps = round(seconds / 0.02)
    every = round(HEARTBEAT_INTERVAL / 0.02)
    for step in range(1, steps + 1):
        clock.advance(0.02)
        silence.tick(clock.now())
        if step % every == 0:
            for peer in heard:
                silence.heard(peer)


def test_a_peer_that_stops_speaking_is_silent_beyond_the_limit_and_the_others_not() -> None:
    clock = FakeClock()
    silence = Silence([1, 2, 3], clock.now())
    _listen(silence, clock, 10.0, heard=(1, 2, 3))
    _listen(silence, clock, LIMIT - 1, heard=(1, 3))
    assert silence.silent_beyond(LIMIT) == []
    _listen(silence, clock, 1.5, heard=(1, 3))
    assert silence.silent_beyond(LIMIT) == [2]
    assert silence.silent_for(2) == pytest.approx(LIMIT + 0.5, abs=0.05)
    assert silence.silent_for(1) < HEARTBEAT_INTERVAL + 0.05


def test_the_listeners_own_stall_does_not_count_against_its_peers() -> None:
    clock = FakeClock()
    silence = Silence([1, 2], clock.now())
    _listen(silence, clock, 5.0, heard=(1, 2))
    clock.advance(10 * LIMIT)  # rank 0 itself was stopped (SIGSTOP, a long write)
    gap = silence.tick(clock.now())
    assert gap == pytest.approx(10 * LIMIT)
    assert silence.silent_beyond(LIMIT) == []
    assert silence.silent_for(1) <= STALL_TOLERANCE + HEARTBEAT_INTERVAL
    # Back to listening: a peer that really is gone is still found within the limit.
    _listen(silence, clock, LIMIT, heard=(1,))
    assert silence.silent_beyond(LIMIT) == [2]


def test_quietest_first_and_a_forgotten_peer_is_never_reported() -> None:
    clock = FakeClock()
    silence = Silence([1, 2, 3], clock.now())
    _listen(silence, clock, 5.0, heard=(1,))
    _listen(silence, clock, 1.0)
    silence.heard(3)
    _listen(silence, clock, LIMIT + 0.5)
    assert silence.silent_beyond(LIMIT) == [2, 1, 3]
    silence.forget(2)
    assert silence.silent_beyond(LIMIT) == [1, 3]
    silence.heard(2)  # a forgotten peer speaking again changes nothing
    assert 2 not in silence.silent_beyond(0.0)


def test_a_rank_away_for_half_the_limit_may_have_been_declared_dead() -> None:
    # Rank 0 declares a rank dead after LIMIT s of silence; a rank that heartbeats every
    # second was away at least LIMIT - 1 s then: half the limit is well on the safe side.
    assert not may_be_declared_dead(LIMIT / 2 - 0.1, LIMIT)
    assert may_be_declared_dead(LIMIT / 2, LIMIT)
    assert may_be_declared_dead(LIMIT - HEARTBEAT_INTERVAL, LIMIT)
    clock = FakeClock()
    silence = Silence([0], clock.now())
    clock.advance(LIMIT / 2 + 1)
    assert may_be_declared_dead(silence.stalled_since_tick(clock.now()), LIMIT)


def test_exit_codes_are_128_plus_the_signal_and_sigusr1_ends_like_sigterm() -> None:
    assert exit_code(signal.SIGINT) == 130
    assert exit_code(signal.SIGTERM) == 143
    assert exit_code(signal.SIGUSR1) == 143


def test_the_grace_is_split_between_settling_and_committing() -> None:
    plan = StopPlan.begin(signal.SIGTERM, now=100.0, grace=5.0)  # the CI cluster's KillWait
    assert plan.settle_deadline == pytest.approx(100.0 + 5.0 * SETTLE_SHARE)
    assert plan.wait_deadline == pytest.approx(100.0 + 5.0 * WAIT_SHARE)
    assert plan.started < plan.settle_deadline < plan.wait_deadline < plan.started + plan.grace
    assert plan.settle_seconds(101.0) == pytest.approx(1.5)
    assert plan.settle_seconds(200.0) == 0.0
    assert plan.exit_code == 143


def test_a_second_signal_gives_up_on_the_requests_in_flight_at_once() -> None:
    plan = StopPlan.begin(signal.SIGINT, now=0.0, grace=30.0)
    hurried = plan.hurried(now=2.0)
    assert hurried.settle_deadline == 2.0
    assert hurried.settle_seconds(2.0) == 0.0
    assert hurried.wait_deadline == plan.wait_deadline  # commits still get their time
    assert hurried.signum == signal.SIGINT
    assert plan.hurried(now=100.0).settle_deadline == plan.settle_deadline


def test_kill_wait_is_read_from_scontrol_show_config() -> None:
    shown = "KillOnBadExit           = 0\nKillWait                = 5 sec\nLaunchType = x\n"
    assert parse_kill_wait(shown) == 5.0
    assert parse_kill_wait("KillWait=30 sec") == 30.0
    assert parse_kill_wait("KillOnBadExit = 0\n") is None


def test_the_stopped_line() -> None:
    assert stopped_line(3, 8, "c.yaml") == (
        "stopped: 3 partitions done, 8 left; continue with: distdl resume c.yaml"
    )
    assert "the plan not finished" in stopped_line(0, None, "c.yaml")
    assert stopped_line(0, None, "c.yaml", started=False).endswith("distdl run c.yaml")
