"""The politeness matrix's fleet generator and lower bounds (pure: no sockets)."""

from __future__ import annotations

import pytest

from distdl.testing.fleet import Fleet, HostSpec
from distdl.testing.fleet_bounds import (
    give_up_time,
    host_bound,
    lower_bound,
    peak_window_ratio,
    serve_time,
)
from distdl.testing.fleet_matrix import BODY_ROLES, MatrixParameters, draw_scenario


@pytest.mark.parametrize("seed", range(8))
def test_every_scenario_has_every_behaviour_and_builds_a_fleet(seed: int) -> None:
    scenario = draw_scenario(seed, 2000)
    params = MatrixParameters()
    roles = list(scenario.roles.values())
    for role in {*BODY_ROLES, "tiny", "slow", "dead"}:
        assert role in roles
    assert roles.count("fault") == 2
    assert scenario.total_urls == 2000
    specs = {spec.name: spec for spec in scenario.hosts}
    for name, role in scenario.roles.items():
        spec, urls = specs[name], scenario.urls[name]
        if role == "tiny":
            assert params.tiny_urls[0] <= urls <= params.tiny_urls[1]
            assert spec.rate_limit is not None and spec.rate_limit <= params.tiny_limit[1]
        if role == "fault":
            assert params.fault_share[0] <= spec.error_rate_5xx <= params.fault_share[1]
        if role == "overload":
            assert spec.rate_limit is None and spec.overload_knee is not None
        if role == "resolver":
            assert scenario.roles[spec.redirect_to or ""] == "cdn"
        if role == "slow":
            assert spec.rate_limit is not None and spec.rate_limit * spec.latency <= 15.0
    assert {specs[n].mode for n, r in scenario.roles.items() if r == "dead"} <= {
        "black_hole",
        "refused",
    }
    Fleet(scenario.hosts, seed=seed)  # names unique, redirect targets valid


def test_scenarios_are_seeded_and_sizes_drawn_in_range() -> None:
    assert draw_scenario(3) == draw_scenario(3)
    assert draw_scenario(3) != draw_scenario(4)
    sizes = [draw_scenario(seed).total_urls for seed in range(30)]
    assert all(2_000 <= size <= 50_000 for size in sizes)
    assert min(sizes) < 10_000 < max(sizes)


def test_too_few_urls_for_the_body_is_an_error() -> None:
    with pytest.raises(ValueError, match="too few"):
        draw_scenario(0, 150)


def test_bound_is_requests_over_limit_plus_fault_retries() -> None:
    assert host_bound(HostSpec("a", rate_limit=10), 100) == pytest.approx(10.0)
    assert host_bound(HostSpec("f", rate_limit=10, error_rate_5xx=0.2), 80) == pytest.approx(10.0)
    says_when = HostSpec("w", rate_limit=10, error_rate_5xx=0.2, error_retry_after=3.0)
    assert host_bound(says_when, 80) == pytest.approx(13.0)  # the last retry waits 3 s
    no_503 = HostSpec("x", rate_limit=10, error_rate_5xx=0.2, error_statuses=(500,), retry_after=3)
    assert host_bound(no_503, 80) == pytest.approx(10.0)
    assert host_bound(HostSpec("o", overload_knee=4), 20) == pytest.approx(5.0)
    assert host_bound(HostSpec("free"), 1000) == 0.0
    assert host_bound(HostSpec("void", mode="black_hole"), 100) == 0.0


def test_a_limit_drop_is_integrated() -> None:
    spec = HostSpec(
        "d", rate_limit=10, limit_drop_start=2.0, limit_drop_end=6.0, limit_drop_factor=0.5
    )
    assert serve_time(spec, 15) == pytest.approx(1.5)  # before the drop
    assert serve_time(spec, 30) == pytest.approx(4.0)  # 20 by t=2, then 5 req/s
    assert serve_time(spec, 50) == pytest.approx(7.0)  # 40 by t=6, then 10 req/s


def test_a_dead_host_costs_one_attempt() -> None:
    assert give_up_time("refused", read_timeout=10.0) == 0.0
    assert give_up_time("black_hole", read_timeout=10.0) == 10.0
    assert give_up_time("normal", read_timeout=10.0) == 0.0


def test_lower_bound_takes_the_slowest_host_and_a_dead_hosts_give_up() -> None:
    specs = [HostSpec("a", rate_limit=10), HostSpec("dead", mode="black_hole")]
    assert lower_bound(specs, {"a": 100, "dead": 5}, read_timeout=4.0) == pytest.approx(10.0)
    assert lower_bound(specs, {"a": 5, "dead": 5}, read_timeout=4.0) == pytest.approx(4.0)
    assert lower_bound(specs, {"a": 5}, read_timeout=4.0) == pytest.approx(0.5)


def test_peak_window_ratio_counts_against_the_limit_in_force() -> None:
    steady = HostSpec("s", rate_limit=4)
    assert peak_window_ratio(steady, [100.0 + 0.25 * i for i in range(20)]) == 1.0
    assert peak_window_ratio(steady, [100.0 + 0.1 * i for i in range(20)]) == 2.5
    assert peak_window_ratio(HostSpec("free"), [1.0, 1.1]) is None
    assert peak_window_ratio(steady, []) is None
    drop = HostSpec(
        "d", rate_limit=4, limit_drop_start=5.0, limit_drop_end=20.0, limit_drop_factor=0.5
    )
    paced_at_4 = [0.25 * i for i in range(60)]
    # windows touching [5, 7) are skipped; from 7 s on, 4 req/s is twice the dropped limit
    assert peak_window_ratio(drop, paced_at_4) == pytest.approx(2.0)
    assert peak_window_ratio(drop, [t for t in paced_at_4 if t < 7.0]) == pytest.approx(1.0)


def test_past_the_crossing_leaves_out_two_seconds_around_the_first_complaint() -> None:
    bucket = HostSpec("b", rate_limit=4)
    # 4 req/s, then 12 req/s from 10 to 11 s (a ramp crossing a hidden limit), then 4 again.
    times = [0.25 * i for i in range(40)] + [10 + i / 12 for i in range(12)]
    times += [11 + 0.25 * i for i in range(40)]
    assert peak_window_ratio(bucket, times) == pytest.approx(3.0)
    assert peak_window_ratio(bucket, times, first_complaint=10.9) == pytest.approx(1.0)
    # A second overshoot, well after the first complaint, still counts.
    later = times + [30 + i / 12 for i in range(12)]
    assert peak_window_ratio(bucket, later, first_complaint=10.9) == pytest.approx(3.0)
