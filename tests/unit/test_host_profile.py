"""The status a run's observations give a host in the profiles table."""

from __future__ import annotations

import pytest

from distdl.core.host_profile import SLOW_LATENCY, judge_observed


@pytest.mark.parametrize(
    ("ok", "answered", "asked", "latency", "unreachable", "status"),
    [
        (10, 10, 10, 0.05, False, "healthy"),
        (1, 3, 5, 0.05, False, "healthy"),  # some answers were 404s, some timeouts
        (5, 5, 5, SLOW_LATENCY + 0.5, False, "slow"),
        (0, 4, 4, 0.05, False, "erroring"),  # every answer a 4xx/5xx
        (0, 0, 6, None, False, "unreachable"),  # timeouts and refused connections only
        (3, 3, 3, 0.05, True, "unreachable"),  # a breaker gave up on it later
        (0, 0, 0, None, True, "unreachable"),  # its robots.txt got no answer
        (0, 0, 0, None, False, None),  # never asked: nothing to say
    ],
)
def test_status_from_what_the_run_saw(
    ok: int,
    answered: int,
    asked: int,
    latency: float | None,
    unreachable: bool,
    status: str | None,
) -> None:
    verdict = judge_observed(
        ok=ok, answered=answered, asked=asked, mean_latency=latency, unreachable=unreachable
    )
    assert verdict == status
