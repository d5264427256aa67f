"""benchmarks/ramp_frontier.py: the best sender's figures follow from the bucket, and the
controller sweep really changes the controller."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import pytest

from distdl.testing.host_model import busiest_count

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
ramp_frontier = importlib.import_module("ramp_frontier")
controller_matrix = importlib.import_module("controller_matrix")

pytestmark = pytest.mark.timeout(120)


def worst_window(k: float, burst: float, delay: float) -> float:
    return max(
        busiest_count(ramp_frontier.ideal_arrivals(k, limit, burst, delay)) / limit
        for limit in ramp_frontier.LIMITS
    )


def test_a_slow_enough_ramp_keeps_every_window_within_twice_the_limit() -> None:
    # k <= (1 - ln 2) / B per second, less for the answer's delay: 2 s of burst allows 0.15.
    assert worst_window(0.15, burst=2.0, delay=0.4) <= 2.0 + 1e-9
    assert worst_window(0.52, burst=2.0, delay=0.4) > 2.5  # x1.3 a 0.5-s window
    assert worst_window(0.52, burst=0.0, delay=0.0) <= 2.0  # no burst: the crossing shows


def test_the_ideal_sender_stops_after_its_first_refusal_and_delay() -> None:
    times = ramp_frontier.ideal_arrivals(0.5, 10.0, 1.0, 0.4)
    assert times == sorted(times) and times[0] == 0.0
    # It reached past the limit (the burst hid it), and not forever.
    assert 10.0 < math.exp(0.5 * times[-1]) < 40.0


def test_ramped_finish_is_the_ramp_then_the_limit() -> None:
    k, limit = 0.5, 25.0
    on_ramp = (limit - 1) / k
    assert ramp_frontier.ramped_finish(k, on_ramp / 2, limit) == pytest.approx(
        math.log(1 + k * on_ramp / 2) / k
    )
    ramp = math.log(limit) / k
    assert ramp_frontier.ramped_finish(k, on_ramp + 100, limit) == pytest.approx(ramp + 4.0)


def test_the_sweep_overrides_reach_the_controller() -> None:
    # A body host of a few hundred URLs spends most of its run ramping: a slower ramp shows.
    shipped = controller_matrix.run_one(1, "body")
    slow = controller_matrix.run_one(
        1, "body", {"fast_growth": 1.05, "careful_growth": 1.05, "small_host_growth": 1.05}
    )
    assert slow.ratio > 1.2 * shipped.ratio


def test_the_crossing_is_where_the_host_first_refused() -> None:
    # Buckets with 1.7-1.9 s of burst under the shipped ramp: the busiest second is the
    # crossing of the limit the burst hid; past it, within twice the limit.
    for seed in (43, 160):  # 3.7 and 10.2 req/s
        outcome = controller_matrix.run_one(seed, "matrix")
        assert outcome.window_past_crossing <= 2.0 < outcome.window_ratio
