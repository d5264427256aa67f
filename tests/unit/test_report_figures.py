"""The report's figures from metric series, without a browser."""

from __future__ import annotations

from distdl.core.timeseries import Point
from distdl.report.html import throughput_figure


def test_a_series_opening_sample_covers_no_time_and_has_no_rate() -> None:
    points = [
        Point(1000.0, 0.0, {"images": 0.0}, {"budget": 1.0}),  # as a run's first sample
        Point(1000.0, 5.0, {"images": 10.0, "requests": 12.0}, {"budget": 2.0}),
    ]
    figure = throughput_figure(points)
    images = next(trace for trace in figure.data if trace.name == "images/s")
    assert list(images.y) == [None, 2.0]
