"""The coordinator simulation at a tiny scale: behaviour, not the figures of one seed."""

from __future__ import annotations

import logging
import random

import pytest

from distdl.testing.fleet_spec import HostSpec
from distdl.testing.scale_fleet import READ_TIMEOUT, ScaleFleet, gbif_fleet, window_answers
from distdl.testing.scale_model import SimSettings, simulate_fleet


@pytest.fixture(autouse=True)
def _quiet_coordinator(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="distdl")  # hosts given up on are expected here


def _settings(**changes: object) -> SimSettings:
    base = {"ranks": 6, "batch_size": 400, "samples": (0.2,), "sample_seconds": 2.0}
    return SimSettings(**{**base, **changes})  # type: ignore[arg-type]


def test_every_url_is_accounted_once_and_no_run_beats_its_bound() -> None:
    fleet = gbif_fleet(30_000, 40, seed=3)
    assert {"fault", "slow", "dead"} <= set(fleet.roles.values())
    result = simulate_fleet(fleet, _settings())
    planned = {
        (host, index) for host, urls in fleet.urls.items() for index in range(-(-urls // 400))
    }
    assert set(result.completed) == planned
    assert set(result.completed.values()) == {1}
    assert result.urls_completed == fleet.total_urls
    assert result.bound > 0 and result.makespan >= result.bound
    sample = result.cost.worst
    assert sample is not None and sample.messages_per_second > 0 and sample.cpu_per_message > 0
    assert result.cost.peak_bytes > 0


def test_a_dead_host_costs_a_timeout_and_holds_nobody_back() -> None:
    alive = {
        "big": HostSpec("big", rate_limit=20.0, latency=0.05),
        "small": HostSpec("small", rate_limit=5.0, latency=0.05),
    }
    urls = {"big": 6_000, "small": 600}
    roles = dict.fromkeys(alive, "bucket")
    settings = _settings(ranks=3, samples=(), max_window=5.0)
    without = simulate_fleet(ScaleFleet(alive, urls, roles), settings)
    dead = HostSpec("dead", mode="black_hole")
    fleet = ScaleFleet({"dead": dead, **alive}, {"dead": 8_000, **urls}, {"dead": "dead", **roles})
    result = simulate_fleet(fleet, settings)
    # Its first lease waits one read timeout; its other partitions become error rows at once.
    assert result.finish_by_host["dead"] < READ_TIMEOUT + 10
    assert result.makespan == pytest.approx(without.makespan, rel=0.1)
    assert result.makespan < 1.3 * result.bound


def test_a_bucket_admits_its_limit_and_refuses_the_rest() -> None:
    spec = HostSpec("h", rate_limit=10.0, latency=0.1)
    rng = random.Random(1)
    under = window_answers(spec, host_rate=8.0, lease_rate=8.0, seconds=100, since_first=0, rng=rng)
    over = window_answers(
        spec, host_rate=40.0, lease_rate=20.0, seconds=100, since_first=0, rng=rng
    )
    assert under.rate_limited == 0 and under.total == 800
    # This lease sends half the host's 40 req/s; the bucket serves 10 of them, 5 its own.
    assert over.total == 2000
    assert over.ok + over.other_errors == pytest.approx(500, rel=0.1)
