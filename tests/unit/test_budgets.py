"""Where budgets start, how feedback moves them, and what is written back."""

from __future__ import annotations

from pathlib import Path

import pytest

from distdl.config import parse_config
from distdl.core.throttle import Feedback
from distdl.io.profiles import HostProfile, read_profiles, write_profiles
from distdl.layout import Layout
from distdl.runtime.budgets import HostBudgets


def _setup(tmp_path: Path, profiles: list[HostProfile]) -> tuple[Layout, object]:
    config = parse_config(
        {
            "path_to_input": "in.csv",
            "path_to_output": "out",
            "downloader_parameters": {"default_rate_limit": 4, "max_rate_limit": 50},
        },
        tmp_path,
    )
    layout = Layout.from_config(config)
    if profiles:
        write_profiles(layout.profiles_table, profiles)
    return layout, config.downloader_parameters


def test_sources_of_the_starting_budget(tmp_path: Path) -> None:
    layout, params = _setup(
        tmp_path,
        [
            HostProfile("hand.org", rate_limit=7.0),  # set by hand: a hard budget
            HostProfile("probed.org", rate_limit=2.0, max_rate_limit=80.0),
            HostProfile(
                "learned.org", rate_limit=9.0, max_rate_limit=30.0, learned_at="2026-01-01"
            ),
        ],
    )
    budgets = HostBudgets.from_profiles(
        layout, params, ["hand.org", "probed.org", "learned.org", "new.org"], now=0.0
    )
    assert budgets.initial_budgets() == {
        "hand.org": 7.0,
        "probed.org": 2.0,
        "learned.org": 9.0,
        "new.org": 4.0,
    }


def test_a_hand_set_budget_is_never_exceeded(tmp_path: Path) -> None:
    layout, params = _setup(tmp_path, [HostProfile("hand.org", rate_limit=7.0)])
    budgets = HostBudgets.from_profiles(layout, params, ["hand.org"], now=0.0)
    for step in range(1, 200):
        budgets.observe("hand.org", Feedback(ok=20, latency_sum=0.2, latency_count=20), step * 0.5)
        assert budgets.rate("hand.org") <= 7.0 + 1e-9
    budgets.save()
    assert read_profiles(layout.profiles_table)["hand.org"] == HostProfile("hand.org", 7.0)


def test_throttling_lowers_the_budget_and_retry_after_pauses_the_host(tmp_path: Path) -> None:
    layout, params = _setup(tmp_path, [])
    budgets = HostBudgets.from_profiles(layout, params, ["a.org"], now=0.0)
    decision = budgets.observe("a.org", Feedback(ok=5, rate_limited=5, retry_after=3.0), 1.0)
    assert decision.rate is not None and decision.rate < 4.0
    assert decision.pause_seconds == pytest.approx(3.0)
    again = budgets.observe("a.org", Feedback(ok=1), 1.1)
    assert again.pause_seconds is None  # the same pause is not announced twice


def test_learned_rates_are_saved_with_their_ceiling(tmp_path: Path) -> None:
    layout, params = _setup(tmp_path, [])
    budgets = HostBudgets.from_profiles(layout, params, ["a.org"], now=0.0)
    for step in range(1, 40):
        budgets.observe("a.org", Feedback(ok=30, latency_sum=0.3, latency_count=30), step * 0.5)
    budgets.save()
    saved = read_profiles(layout.profiles_table)["a.org"]
    assert saved.rate_limit > 4.0 and saved.max_rate_limit == 50.0 and saved.learned_at
