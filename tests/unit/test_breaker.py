"""The circuit breaker's state machine, in fake time."""

from __future__ import annotations

import math
import random

import pytest

from distdl.core import codes
from distdl.core.breaker import CircuitBreaker, HostCause, unreachable_row


def _breaker(**kwargs: float) -> CircuitBreaker:
    return CircuitBreaker(rng=random.Random(7), **kwargs)  # type: ignore[arg-type]


def _trip(breaker: CircuitBreaker, now: float = 0.0) -> None:
    for _ in range(breaker.threshold):
        breaker.record_failure(now)


def _fail_probe(breaker: CircuitBreaker) -> float:
    """Wait out the cool-down, claim the probe and let it fail; returns the time."""
    now = breaker.open_until
    assert breaker.allow_request(now)
    breaker.record_failure(now)
    return now


def test_closed_until_threshold_consecutive_failures() -> None:
    breaker = _breaker()
    for _ in range(4):
        breaker.record_failure(0.0)
    assert breaker.state(0.0) == "closed"
    assert breaker.allow_request(0.0)
    breaker.record_failure(0.0)
    assert breaker.state(0.0) == "open"
    assert not breaker.allow_request(0.0)


def test_an_answer_resets_the_consecutive_count() -> None:
    breaker = _breaker()
    for step in range(20):
        breaker.record_failure(float(step))
        if step % 4 == 3:
            breaker.record_success(float(step))
    assert breaker.state(20.0) == "closed"


def test_open_until_the_jittered_cooldown_then_exactly_one_probe() -> None:
    breaker = _breaker()
    _trip(breaker, now=100.0)
    until = breaker.open_until
    assert 100.0 + 4.0 <= until <= 100.0 + 6.0  # 5 s ± 20%
    assert breaker.state(until - 0.01) == "open"
    assert not breaker.allow_request(until - 0.01)
    assert breaker.state(until) == "half_open"
    assert breaker.allow_request(until)
    assert not breaker.allow_request(until + 0.5)  # one probe at a time
    assert breaker.state(until + 0.5) == "half_open"


def test_a_successful_probe_closes_the_breaker() -> None:
    breaker = _breaker()
    _trip(breaker)
    now = breaker.open_until
    assert breaker.allow_request(now)
    breaker.record_success(now + 0.2)
    assert breaker.state(now + 0.2) == "closed"
    assert breaker.allow_request(now + 0.2)
    assert breaker.failed_probes == 0
    for _ in range(4):  # the count starts again from zero
        breaker.record_failure(now + 1)
    assert breaker.state(now + 1) == "closed"


def test_failed_probes_grow_the_cooldown_until_the_host_is_dead() -> None:
    breaker = _breaker()
    _trip(breaker)
    cooldowns = []
    for probe in range(1, 4):
        started = _fail_probe(breaker)
        assert breaker.state(started) == "open"
        assert breaker.failed_probes == probe
        cooldowns.append(breaker.open_until - started)
    for nominal, cooldown in zip((10.0, 20.0, 40.0), cooldowns, strict=True):
        assert 0.8 * nominal <= cooldown <= 1.2 * nominal
    last = _fail_probe(breaker)
    assert breaker.state(last) == "dead"
    assert breaker.open_until == math.inf
    assert not breaker.allow_request(last + 1e6)


def test_a_black_hole_is_dead_within_minutes() -> None:
    breaker = _breaker()
    now = 0.0
    timeout = 30.0  # every attempt hangs until the read timeout
    while breaker.state(now) != "dead":
        if breaker.allow_request(now):
            breaker.record_failure(now + timeout)
        now += 0.5
    assert now < 300.0


def test_dead_is_final() -> None:
    breaker = _breaker(max_probes=1)
    _trip(breaker)
    _fail_probe(breaker)
    breaker.record_success(1000.0)  # a late answer does not revive it
    assert breaker.state(1000.0) == "dead"


def test_cooldowns_are_capped() -> None:
    breaker = _breaker(base_cooldown=100.0, max_cooldown=150.0, max_probes=10)
    _trip(breaker)
    for _ in range(5):
        started = _fail_probe(breaker)
        assert breaker.open_until - started <= 150.0 + 1e-9


def test_failures_from_requests_in_flight_while_open_are_ignored() -> None:
    breaker = _breaker()
    _trip(breaker)
    until = breaker.open_until
    for _ in range(10):
        breaker.record_failure(until - 1.0)
    assert breaker.failed_probes == 0
    assert breaker.open_until == until
    breaker.record_failure(until + 1.0)  # half open, but no probe was started
    assert breaker.failed_probes == 0
    assert breaker.allow_request(until + 1.0)


def test_a_lost_probe_is_given_up_after_the_probe_timeout() -> None:
    breaker = _breaker(probe_timeout=60.0)
    _trip(breaker)
    now = breaker.open_until
    assert breaker.allow_request(now)
    assert not breaker.allow_request(now + 59.0)
    assert breaker.allow_request(now + 60.0)


def test_jitter_differs_between_hosts() -> None:
    opened = []
    for seed in range(5):
        breaker = CircuitBreaker(rng=random.Random(seed))
        _trip(breaker)
        opened.append(breaker.open_until)
    assert len(set(opened)) == 5
    assert all(4.0 <= until <= 6.0 for until in opened)


@pytest.mark.parametrize(
    "bad",
    [
        {"threshold": 0},
        {"max_probes": 0},
        {"base_cooldown": 0.0},
        {"base_cooldown": 10.0, "max_cooldown": 5.0},
        {"jitter": 1.0},
    ],
)
def test_rejects_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(**bad)  # type: ignore[arg-type]


def test_a_dead_breaker_keeps_the_cause_that_killed_it_and_rows_say_it() -> None:
    breaker = CircuitBreaker(threshold=1, base_cooldown=1.0, max_probes=1, jitter=0.0)
    tls = HostCause(codes.SSL_ERROR, "TLS certificate error: self-signed certificate")
    breaker.record_failure(0.0, HostCause(codes.TIMEOUT, "connect timeout"))
    assert breaker.allow_request(1.5)
    breaker.record_failure(1.6, tls)
    assert breaker.state(2.0) == "dead" and breaker.cause == tls
    breaker.record_failure(3.0, HostCause(codes.CONNECTION_ERROR, "late"))  # already dead
    assert breaker.cause == tls
    assert unreachable_row(breaker.cause) == (
        codes.SSL_ERROR,
        "host unreachable: TLS certificate error: self-signed certificate",
    )
    refused = HostCause(codes.CONNECTION_ERROR, "connection refused")
    expected = (codes.HOST_UNREACHABLE, "host unreachable: connection refused")
    assert unreachable_row(refused) == expected
    assert unreachable_row(None)[0] == codes.HOST_UNREACHABLE


def test_declared_dead_by_another_rank_takes_its_cause() -> None:
    breaker = CircuitBreaker()
    dns = HostCause(codes.DNS_ERROR, "name not known")
    breaker.declare_dead(dns)
    assert breaker.state(0.0) == "dead" and breaker.cause == dns
