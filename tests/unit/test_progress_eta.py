"""The live tally (core.progress) and the makespan estimate (core.eta): pure, fake clock."""

from __future__ import annotations

import math

import pytest

from distdl.core.eta import (
    HostLoad,
    estimate,
    eta_from_json,
    eta_to_json,
    format_duration,
    format_range,
)
from distdl.core.progress import ProgressBook, RowCounts, Sample, Throughput
from distdl.core.throttle import Feedback


def test_rows_count_as_leases_report_them_not_only_when_partitions_complete() -> None:
    book = ProgressBook({"a": 100, "b": 50})
    book.lease_reported(1, "a", RowCounts(3, 1, 4000))
    book.lease_reported(2, "a", RowCounts(2, 0, 1000))
    assert book.totals().rows_settled == 6
    book.lease_reported(1, "a", RowCounts(5, 1, 6000))  # running totals: replaced, not added
    assert book.hosts["a"].rows_settled == 8 and book.hosts["a"].settled.bytes == 7000
    # Completion counts the whole partition (carried-over rows too), not just the lease's.
    book.lease_completed(1, "a", 10, RowCounts(7, 1, 8000))
    assert book.hosts["a"].rows_settled == 12 and book.hosts["a"].rows_left == 88
    book.lease_dropped(2)  # failed: leased again from scratch, counts nothing
    assert book.hosts["a"].rows_settled == 10
    assert book.totals().settled == RowCounts(7, 1, 8000)
    assert book.totals().rows_left == 140
    hosts = book.hosts.values()  # the run's totals are kept as they change: they add up
    assert book.totals().rows_settled == sum(host.rows_settled for host in hosts)


def test_a_report_after_completion_or_for_an_unknown_lease_changes_nothing() -> None:
    book = ProgressBook({"a": 10})
    book.lease_completed(1, "a", 10, RowCounts(10, 0, 0))
    book.lease_dropped(1)
    book.lease_dropped(99)
    assert book.hosts["a"].rows_settled == 10 and book.hosts["a"].rows_left == 0


def test_answers_are_counted_per_host_and_in_total() -> None:
    book = ProgressBook({"a": 10, "b": 10})
    book.answers_seen("a", Feedback(ok=5, rate_limited=2))
    book.answers_seen("b", Feedback(ok=1, server_errors=3))
    total = book.totals().answers
    assert (total.total, total.rate_limited, total.server_errors) == (11, 2, 3)


def test_rates_come_from_the_recent_window_only() -> None:
    rates = Throughput(window=10.0)
    rates.add(Sample(0.0, rows=0, images=0, bytes=0, requests=0, rate_limited=0))
    rates.add(Sample(5.0, rows=500, images=400, bytes=5_000, requests=500, rate_limited=50))
    assert rates.rates().images_per_s == pytest.approx(80.0)
    assert rates.rates().rate_limited_share == pytest.approx(0.1)
    # An hour later, the rate is the last window's, not the run's average.
    for at in range(10, 3610, 5):  # samples every 5 s; the last 10 s gain 2 images a second
        images = 400 + (2 * (at - 3590) if at > 3590 else 0)
        rates.add(Sample(float(at), images, images, 5_000, 500 + images, rate_limited=50))
    assert rates.rates().images_per_s == pytest.approx(2.0)
    assert rates.rates().rate_limited_share == 0.0


def test_one_slow_host_sets_the_makespan_whatever_the_ranks() -> None:
    # The example: 2M URLs at 1 req/s is 23 days, however many ranks there are.
    hosts = [HostLoad("slow", 2_000_000, 1.0, 1.0, "server")]
    hosts += [HostLoad(f"h{i}", 1000, 10.0, 100.0) for i in range(50)]
    eta = estimate(hosts, slots=64)
    assert eta.high == pytest.approx(2_000_000)
    assert format_duration(eta.high) == "23 d 3 h"
    assert eta.critical[0].server_name == "slow"


def test_before_learning_the_estimate_is_a_range_and_tightens_once_learned() -> None:
    unlearned = [HostLoad("a", 36_000, 3.0, 100.0), HostLoad("b", 3600, 3.0, 100.0)]
    eta = estimate(unlearned, slots=4)
    assert eta.low == pytest.approx(360.0) and eta.high == pytest.approx(12_000.0)
    assert not eta.settled and " to " in format_range(eta)
    learned = [HostLoad("a", 36_000, 20.0, 20.0, "server"), HostLoad("b", 3600, 50.0, 50.0)]
    tight = estimate(learned, slots=4)
    assert tight.settled and tight.high == pytest.approx(1800.0)


def test_few_slots_spread_the_hosts_time() -> None:
    hosts = [HostLoad(f"h{i}", 100, 1.0, 1.0) for i in range(10)]  # 100 s each
    assert estimate(hosts, slots=10).high == pytest.approx(100.0)
    assert estimate(hosts, slots=2).high == pytest.approx(500.0)


def test_a_host_without_budget_never_ends_and_json_round_trips() -> None:
    hosts = [HostLoad("done", 0, 5.0, 5.0), HostLoad("never", 10, 0.0, 0.0, "unreachable")]
    eta = estimate(hosts, slots=1)
    assert math.isinf(eta.high) and eta_to_json(eta)["high_s"] is None
    back = eta_from_json(eta_to_json(estimate([HostLoad("a", 10, 2.0, 4.0)], slots=1)))
    assert (back.low, back.high, back.critical[0].server_name) == (2.5, 5.0, "a")
    assert estimate([], slots=3).high == 0.0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(42, "42 s"), (423, "7 min 3 s"), (18_720, "5 h 12 min"), (math.inf, "never")],
)
def test_durations_read_well(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_a_run_slower_than_its_budgets_raises_the_high_end_only() -> None:
    hosts = [HostLoad("a", 600, 20.0, 40.0), HostLoad("b", 400, 20.0, 40.0)]
    budgets_only = estimate(hosts, slots=8)
    assert budgets_only.high == pytest.approx(30.0)
    paced = estimate(hosts, slots=8, rows_per_s=5.0)  # decoding holds the ranks back
    assert paced.high == pytest.approx(200.0) and paced.low == budgets_only.low
    assert estimate(hosts, slots=8, rows_per_s=500.0).high == pytest.approx(30.0)
