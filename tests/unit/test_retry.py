from __future__ import annotations

import random

import pytest

from distdl.core import codes
from distdl.core.retry import RetryPolicy


def _tries_until_final(policy: RetryPolicy, code: int) -> int:
    """How many times a URL that always fails with ``code`` is tried."""
    rng = random.Random(0)
    attempt = 0
    while policy.decide(code, attempt, rng).retry:
        attempt += 1
    return attempt + 1


@pytest.mark.parametrize("code", [503, 429, 500, codes.TIMEOUT, codes.CONNECTION_ERROR])
def test_retryable_code_is_tried_max_retries_plus_one_times(code: int) -> None:
    assert _tries_until_final(RetryPolicy(max_retries=3), code) == 4
    assert _tries_until_final(RetryPolicy(max_retries=0), code) == 1


@pytest.mark.parametrize("code", [404, 410, codes.UNDECODABLE, codes.TOO_LARGE, codes.SSL_ERROR])
def test_permanent_failures_are_never_retried(code: int) -> None:
    decision = RetryPolicy().decide(code, 0, random.Random(0))
    assert not decision.retry
    assert decision.delay == 0.0
    assert "not retryable" in decision.reason


def test_exhausted_decision_says_how_many_tries() -> None:
    decision = RetryPolicy(max_retries=2).decide(503, 2, random.Random(0))
    assert not decision.retry
    assert "3 tries" in decision.reason


@pytest.mark.parametrize("attempt", [0, 1, 2, 5])
def test_delay_is_full_jitter_over_the_exponential_window(attempt: int) -> None:
    policy = RetryPolicy(max_retries=10, base=0.5, cap=8.0)
    window = min(8.0, 0.5 * 2**attempt)
    rng = random.Random(attempt)
    delays = [policy.decide(codes.TIMEOUT, attempt, rng).delay for _ in range(2000)]
    assert all(0.0 <= d <= window for d in delays)
    # Full jitter spreads over the whole window, not just near its top or bottom.
    assert min(delays) < 0.05 * window
    assert max(delays) > 0.95 * window


@pytest.mark.parametrize("code", [429, 500, 503])
@pytest.mark.parametrize("attempt", [0, 3, 6])
def test_a_host_that_answered_leaves_only_a_short_jitter_to_the_url(
    code: int, attempt: int
) -> None:
    # Whether the host is overloaded is the rate controller's call for the whole host; a
    # host failing some requests whatever the rate must not end on a tail of backoffs.
    policy = RetryPolicy(max_retries=10, base=0.5, cap=8.0)
    rng = random.Random(attempt)
    delays = [policy.decide(code, attempt, rng).delay for _ in range(500)]
    assert max(delays) <= 0.5
    assert policy.decide(code, attempt, rng, retry_after=3.0).delay >= 3.0


def test_window_is_capped_and_huge_attempts_do_not_overflow() -> None:
    policy = RetryPolicy(max_retries=100_000, base=1.0, cap=60.0)
    assert policy.backoff_window(0) == 1.0
    assert policy.backoff_window(3) == 8.0
    assert policy.backoff_window(6) == 60.0
    assert policy.backoff_window(50_000) == 60.0
    assert policy.decide(503, 50_000, random.Random(1)).delay <= 60.0


def test_retry_after_is_a_floor_on_the_delay() -> None:
    policy = RetryPolicy(base=1.0, cap=60.0)
    decision = policy.decide(429, 0, random.Random(3), retry_after=30.0)
    assert decision.retry
    assert decision.delay == 30.0
    assert "Retry-After" in decision.reason


def test_jitter_wins_when_larger_than_retry_after() -> None:
    policy = RetryPolicy(max_retries=10, base=10.0, cap=1000.0)
    plain = policy.decide(503, 5, random.Random(7))
    with_header = policy.decide(503, 5, random.Random(7), retry_after=0.0)
    assert with_header.delay == plain.delay > 0.0


def test_retry_after_does_not_make_a_permanent_error_retryable() -> None:
    decision = RetryPolicy().decide(404, 0, random.Random(0), retry_after=5.0)
    assert not decision.retry


def test_same_seed_gives_same_delays() -> None:
    policy = RetryPolicy()
    first = [policy.decide(503, a % 3, random.Random(42)).delay for a in range(5)]
    second = [policy.decide(503, a % 3, random.Random(42)).delay for a in range(5)]
    assert first == second


def test_invalid_arguments_are_rejected() -> None:
    with pytest.raises(ValueError):
        RetryPolicy().decide(503, -1, random.Random(0))
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError):
        RetryPolicy(cap=-1.0)


def test_a_403_gets_two_more_tries_at_most_and_time_to_cool_down() -> None:
    # Some CDNs answer 403 to a burst; most 403s forbid the image for good.
    policy = RetryPolicy(max_retries=7, base=1.0, cap=60.0)
    rng = random.Random(0)
    assert policy.decide(403, 0, rng).retry
    assert policy.decide(403, 1, rng).retry
    assert not policy.decide(403, 2, rng).retry
    assert not RetryPolicy(max_retries=1).decide(403, 1, rng).retry
    assert max(policy.decide(403, 1, rng).delay for _ in range(200)) > 1.0
