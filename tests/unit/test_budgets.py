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
        "new.org": 1.0,  # unknown: the safe start, below default_rate_limit
    }


def test_a_hand_set_budget_is_never_exceeded(tmp_path: Path) -> None:
    layout, params = _setup(tmp_path, [HostProfile("hand.org", rate_limit=7.0)])
    budgets = HostBudgets.from_profiles(layout, params, ["hand.org"], now=0.0)
    for step in range(1, 200):
        budgets.observe("hand.org", Feedback(ok=20, latency_sum=0.2, latency_count=20), step * 0.5)
        assert budgets.rate("hand.org") <= 7.0 + 1e-9
    budgets.save()
    saved = read_profiles(layout.profiles_table)["hand.org"]
    assert (saved.rate_limit, saved.max_rate_limit, saved.learned_at) == (7.0, None, None)
    assert (saved.status, saved.latency_ms) == ("healthy", 10.0)  # what the run saw


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


def test_robots_caps_the_budget_as_if_known_from_the_start(tmp_path: Path) -> None:
    layout, params = _setup(
        tmp_path, [HostProfile("hand.org", rate_limit=7.0), HostProfile("wide.org", 30.0, 50.0)]
    )
    budgets = HostBudgets.from_profiles(layout, params, ["a.org", "hand.org", "wide.org"], 0.0)
    assert budgets.apply_robots("a.org", 0.5, 2.0, 1.0) == pytest.approx(0.5)
    assert budgets.apply_robots("a.org", 0.5, 2.0, 1.5) is None  # heard twice: no news
    assert budgets.apply_robots("hand.org", 3.0, None, 1.0) == pytest.approx(3.0)
    assert budgets.apply_robots("wide.org", None, None, 1.0) is None  # asks for nothing
    for step in range(1, 100):
        feedback = Feedback(ok=20, latency_sum=0.2, latency_count=20)
        for host in ("a.org", "hand.org"):
            budgets.observe(host, feedback, 1.0 + step * 0.5)
        assert budgets.rate("a.org") <= 0.5 + 1e-9 and budgets.rate("hand.org") <= 3.0 + 1e-9
    budgets.save()
    saved = read_profiles(layout.profiles_table)
    assert saved["a.org"].crawl_delay == 2.0 and saved["a.org"].max_rate_limit == 0.5
    assert saved["hand.org"].max_rate_limit is None  # still a hand-set budget
    assert saved["wide.org"] == HostProfile("wide.org", 30.0, 50.0)  # never asked: unchanged


def test_a_redirect_target_gets_a_budget_and_a_profile(tmp_path: Path) -> None:
    layout, params = _setup(tmp_path, [])
    budgets = HostBudgets.from_profiles(layout, params, ["a.org"], now=0.0)
    assert not budgets.knows("cdn.org")
    start = budgets.add("cdn.org", 1.0)
    assert budgets.knows("cdn.org") and budgets.add("cdn.org", 2.0) == start
    budgets.observe("cdn.org", Feedback(ok=3, latency_sum=0.3, latency_count=3), 2.0)
    budgets.save()
    assert read_profiles(layout.profiles_table)["cdn.org"].status == "healthy"


def test_hosts_that_never_answered_keep_their_rate_and_say_why(tmp_path: Path) -> None:
    unseen = HostProfile("hole.org", 4.0, 50.0, status="unseen")
    layout, params = _setup(tmp_path, [unseen, HostProfile("dead.org", 4.0, 50.0)])
    budgets = HostBudgets.from_profiles(layout, params, ["hole.org", "dead.org"], now=0.0)
    budgets.observe("hole.org", Feedback(timeouts=3), 1.0)
    budgets.mark_unreachable("dead.org")
    budgets.save()
    saved = read_profiles(layout.profiles_table)
    assert saved["hole.org"] == HostProfile("hole.org", 4.0, 50.0, status="unreachable")
    assert saved["dead.org"] == HostProfile("dead.org", 4.0, 50.0, status="unreachable")


def test_an_unseen_row_is_a_guess_unless_its_ceiling_was_removed_by_hand(tmp_path: Path) -> None:
    layout, params = _setup(
        tmp_path,
        [
            HostProfile("guess.org", 4.0, 50.0, status="unseen"),
            HostProfile("edited.org", 2.0, None, status="unseen"),  # made a hard budget
        ],
    )
    budgets = HostBudgets.from_profiles(layout, params, ["guess.org", "edited.org"], now=0.0)
    assert budgets.rate("guess.org") <= 4.0  # a starting guess: the safe start applies
    for step in range(1, 200):
        feedback = Feedback(ok=20, latency_sum=0.2, latency_count=20)
        budgets.observe("guess.org", feedback, step * 0.5)
        budgets.observe("edited.org", feedback, step * 0.5)
        assert budgets.rate("edited.org") <= 2.0 + 1e-9
    assert budgets.rate("guess.org") > 4.0  # learned past the guess


def test_a_host_with_few_urls_left_is_not_ramped_like_a_big_one(tmp_path: Path) -> None:
    layout, params = _setup(tmp_path, [])
    hosts = ["tiny.org", "big.org", "robots.org"]
    budgets = HostBudgets.from_profiles(layout, params, hosts, now=0.0)
    left = {"tiny.org": 30, "big.org": 100_000, "robots.org": 30}
    budgets.expect_urls(left)
    # robots.txt rebuilds the controller: the host's URLs are still known to it.
    budgets.apply_robots("robots.org", 40.0, None, 0.0)
    for step in range(1, 40):
        for host in hosts:
            served = min(left[host], max(2, round(budgets.rate(host) * 0.5)))  # all it may
            left[host] -= served
            if served:
                budgets.observe(host, Feedback(ok=served), step * 0.5)
    assert budgets.rate("big.org") >= 20.0
    # Thirty URLs: done within seconds at a couple of requests a second.
    assert budgets.rate("tiny.org") <= 3.0
    assert budgets.rate("robots.org") <= 3.0


def test_a_redirect_target_serves_urls_its_plan_never_counted(tmp_path: Path) -> None:
    layout, params = _setup(tmp_path, [])
    budgets = HostBudgets.from_profiles(layout, params, ["cdn.org"], now=0.0)
    budgets.expect_urls({"cdn.org": 12})  # its own URLs; a resolver's redirects come too
    budgets.expect_redirects("cdn.org")
    for step in range(1, 40):
        served = max(2, round(budgets.rate("cdn.org") * 0.5))
        budgets.observe("cdn.org", Feedback(ok=served), step * 0.5)
    assert budgets.rate("cdn.org") >= 20.0


@pytest.mark.parametrize("recorded", [30.0, 80.0])
def test_the_configs_max_rate_limit_is_the_ceiling_of_a_learned_host(
    tmp_path: Path, recorded: float
) -> None:
    # The row's max_rate_limit is the ceiling of the run that learned it: raising the
    # config's (50 here) must let the host go past 30, lowering it must hold it under 50.
    learned = HostProfile("a.org", 20.0, max_rate_limit=recorded, learned_at="2026-01-01")
    layout, params = _setup(tmp_path, [learned])
    budgets = HostBudgets.from_profiles(layout, params, ["a.org"], now=0.0)
    assert budgets.initial_budgets() == {"a.org": 20.0}
    for step in range(1, 2000):
        budgets.observe("a.org", Feedback(ok=40, latency_sum=0.4, latency_count=40), step * 0.5)
    assert 30.0 < budgets.rate("a.org") <= 50.0
    budgets.save()
    assert read_profiles(layout.profiles_table)["a.org"].max_rate_limit == 50.0
