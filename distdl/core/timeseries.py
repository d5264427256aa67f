"""A time series of bounded size for a weeks-long run: coarser with age (pure).

Points live in levels. Level 0 holds the newest, finest points; when a level holds more than
``per_level`` points, its two oldest merge into one point of the next level (twice as
long). So a series keeps the last ``per_level`` samples at full resolution, the
``per_level`` before them at half of it, and so on: ``levels × per_level`` points cover
``sample × per_level × 2^levels`` seconds. At 5 s samples and 60 points a level, 4 weeks
take 16 levels, under a thousand points.

A point sums counters (requests, 429s, bytes: additive over time) and averages gauges
(budget, latency) weighted by the time each covers.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

DEFAULT_PER_LEVEL = 60


@dataclass(frozen=True)
class Point:
    start: float  # epoch seconds
    span: float  # seconds it covers
    counts: dict[str, float] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)

    def merged(self, later: Point) -> Point:
        span = self.span + later.span
        counts = dict(self.counts)
        for key, value in later.counts.items():
            counts[key] = counts.get(key, 0.0) + value
        gauges = dict(self.gauges)
        for key, value in later.gauges.items():
            if key in gauges and span > 0:
                gauges[key] = (gauges[key] * self.span + value * later.span) / span
            else:
                gauges[key] = value
        return Point(self.start, span, counts, gauges)

    def to_json(self) -> list[Any]:
        return [round(self.start, 1), round(self.span, 1), self.counts, self.gauges]

    @classmethod
    def from_json(cls, data: list[Any]) -> Point:
        start, span, counts, gauges = data
        return cls(float(start), float(span), dict(counts), dict(gauges))


class BoundedSeries:
    def __init__(self, per_level: int = DEFAULT_PER_LEVEL) -> None:
        if per_level < 2:
            raise ValueError("a level needs room for at least two points")
        self.per_level = per_level
        self._levels: list[deque[Point]] = [deque()]

    def add(self, point: Point) -> None:
        self._levels[0].append(point)
        level = 0
        while len(self._levels[level]) > self.per_level:
            older, newer = self._levels[level].popleft(), self._levels[level].popleft()
            if level + 1 == len(self._levels):
                self._levels.append(deque())
            self._levels[level + 1].append(older.merged(newer))
            level += 1

    def points(self) -> list[Point]:
        """Oldest first."""
        return [point for level in reversed(self._levels) for point in level]

    def __len__(self) -> int:
        return sum(len(level) for level in self._levels)

    def to_json(self) -> list[list[list[Any]]]:
        return [[point.to_json() for point in level] for level in self._levels]

    @classmethod
    def from_json(cls, data: list[list[list[Any]]], per_level: int) -> BoundedSeries:
        series = cls(per_level)
        series._levels = [deque(Point.from_json(p) for p in level) for level in data] or [deque()]
        return series


def deltas(previous: dict[str, float], current: dict[str, float]) -> dict[str, float]:
    """What running totals gained since ``previous`` (a restart counts from zero)."""
    out = {}
    for key, value in current.items():
        before = previous.get(key, 0.0)
        out[key] = value - before if value >= before else value
    return out
