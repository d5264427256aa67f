"""The bounded time series: coarser with age, counts conserved, gauges time-weighted."""

from __future__ import annotations

import math

import pytest

from distdl.core.timeseries import BoundedSeries, Point, deltas


def _week_of_samples(series: BoundedSeries, seconds: int, step: int = 5) -> None:
    for i, start in enumerate(range(0, seconds, step)):
        series.add(Point(float(start), float(step), {"requests": 2.0}, {"budget": float(i % 7)}))


def test_four_weeks_of_samples_stay_small_and_lose_no_count() -> None:
    series = BoundedSeries(per_level=30)
    seconds = 4 * 7 * 86_400
    _week_of_samples(series, seconds, step=60)
    points = series.points()
    assert len(series) == len(points) <= 30 * math.ceil(math.log2(seconds / 60 / 30) + 2)
    assert len(points) < 400
    assert sum(p.counts["requests"] for p in points) == pytest.approx(2.0 * seconds / 60)
    assert sum(p.span for p in points) == pytest.approx(seconds)
    starts = [p.start for p in points]
    assert starts == sorted(starts) and starts[0] == 0.0
    # The newest points keep their full resolution, the oldest are the coarsest.
    assert points[-1].span == 60.0 and points[0].span >= 12 * 3600


def test_merging_sums_counts_and_weights_gauges_by_time() -> None:
    short = Point(0.0, 10.0, {"ok": 3.0}, {"budget": 1.0})
    long = Point(10.0, 30.0, {"ok": 5.0, "rate_limited": 1.0}, {"budget": 5.0, "latency_ms": 9})
    merged = short.merged(long)
    assert merged == Point(
        0.0, 40.0, {"ok": 8.0, "rate_limited": 1.0}, {"budget": 4.0, "latency_ms": 9}
    )


def test_json_round_trip_keeps_levels() -> None:
    series = BoundedSeries(per_level=4)
    _week_of_samples(series, 200)
    again = BoundedSeries.from_json(series.to_json(), per_level=4)
    assert again.points() == series.points()
    again.add(Point(300.0, 5.0, {"requests": 1.0}))
    assert again.points()[-1].start == 300.0


def test_deltas_of_running_totals_and_a_restart() -> None:
    assert deltas({"a": 5.0}, {"a": 8.0, "b": 2.0}) == {"a": 3.0, "b": 2.0}
    assert deltas({"a": 50.0}, {"a": 4.0}) == {"a": 4.0}  # a new run counts from zero


def test_a_level_needs_room_for_two() -> None:
    with pytest.raises(ValueError):
        BoundedSeries(per_level=1)
