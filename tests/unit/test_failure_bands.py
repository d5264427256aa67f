"""Failures by rate band: a share that grows with the rate is load, a steady one is not."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from distdl.core.failure_bands import FailureBands, band_of, binomial_tail


@given(st.integers(0, 60), st.integers(0, 60), st.floats(0.0, 1.0))
def test_binomial_tail_matches_the_exact_sum(k: int, n: int, p: float) -> None:
    exact = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))
    assert binomial_tail(k, n, p) == pytest.approx(min(1.0, exact), abs=1e-9)


def test_rates_a_quarter_apart_fall_in_neighbouring_bands() -> None:
    assert band_of(10.0) == band_of(11.0)
    assert band_of(10.0) + 1 == band_of(10.0 * 1.25 + 0.01)


def _bands_with(shares: dict[float, float], answers: int, seed: int = 0) -> FailureBands:
    rng = random.Random(seed)
    bands = FailureBands(prior_share=0.02, prior_answers=50.0)
    for rate, share in shares.items():
        for _ in range(answers // 10):
            bands.record(rate, sum(rng.random() < share for _ in range(10)), 10)
    return bands


@pytest.mark.parametrize("share", [0.01, 0.05, 0.10])
def test_the_same_share_at_every_rate_is_never_load(share: float) -> None:
    for seed in range(20):
        bands = _bands_with({2.0: share, 4.0: share, 8.0: share, 16.0: share}, 200, seed)
        assert bands.tail_at(16.0) > 5e-4


@pytest.mark.parametrize("share", [0.15, 0.3])
def test_a_share_that_jumps_past_a_knee_is_load(share: float) -> None:
    for seed in range(20):
        bands = _bands_with({2.0: 0.0, 4.0: 0.0, 8.0: share}, 200, seed)
        assert bands.tail_at(8.0) < 5e-4


def test_a_first_failure_or_two_is_not_load_before_anything_is_known() -> None:
    bands = FailureBands(prior_share=0.02, prior_answers=50.0)
    bands.record(5.0, 1, 5)
    assert bands.tail_at(5.0) == 1.0
    bands.record(5.0, 1, 5)
    assert bands.tail_at(5.0) > 5e-4


def test_forgetting_halves_the_evidence_so_the_rate_can_be_tried_again() -> None:
    bands = _bands_with({2.0: 0.0, 8.0: 0.2}, 40)
    loaded = bands.tail_at(8.0)
    bands.forget_at(8.0)
    assert bands.tail_at(8.0) > loaded


def test_share_pools_every_band_and_the_prior() -> None:
    bands = FailureBands(prior_share=0.0, prior_answers=10.0)
    bands.record(2.0, 5, 45)
    bands.record(9.0, 5, 45)
    assert bands.share() == pytest.approx(10 / 100)
