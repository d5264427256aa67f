"""benchmarks/controller_matrix.py: every family draws hosts the controller finishes."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import pytest

# The benchmark imports its sibling matrix_figures as a script would: from its own folder.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
controller_matrix = importlib.import_module("controller_matrix")
FAMILIES, run_one = controller_matrix.FAMILIES, controller_matrix.run_one

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_runs_to_the_end_with_sane_figures(family: str) -> None:
    for seed in range(3):
        outcome = run_one(seed, family)
        assert math.isfinite(outcome.ratio) and outcome.ratio >= 0.95  # never beats its bound
        assert 0 <= outcome.refused <= outcome.requests


def test_a_late_drop_is_integrated_into_the_bound() -> None:
    drops = [o for o in (run_one(seed, "body") for seed in range(60)) if o.kind == "late_drop"]
    assert drops
    for outcome in drops:
        # Served at the limit all along, the host would be done sooner than its bound says
        # only when the drop lands after its URLs are done.
        assert outcome.bound >= outcome.urls / outcome.limit - 0.02
    assert any(o.bound > 1.05 * o.urls / o.limit for o in drops)


def test_reach_is_the_limit_for_a_roomy_bucket_and_far_below_it_for_one_token() -> None:
    from distdl.testing.host_model import HostModel

    roomy = HostModel(20.0, burst=1.0, latency=0.1, seed=1, jitter=0.01)
    assert controller_matrix.reach(roomy) >= 0.95
    one_token = HostModel(34.4, burst=0.03, latency=0.1, seed=1, jitter=0.01)
    assert 0.5 < controller_matrix.reach(one_token) < 0.8  # ±10 ms at 29 ms a token
    # The model's load is the requests of the last second: a slow knee is hit early.
    slow_knee = HostModel(None, knee=1.3, overload_slope=2.0, latency=0.1, seed=1, jitter=0.005)
    assert controller_matrix.reach(slow_knee) < 0.85
    assert controller_matrix.reach(HostModel(None, seed=1)) == 1.0
