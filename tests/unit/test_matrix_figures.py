"""benchmarks/matrix_figures.py: the politeness matrix's figures from hand-made records."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from distdl.testing.fleet import Fleet, HostSpec, RequestRecord
from distdl.testing.fleet_matrix import Scenario


def _load_figures() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "matrix_figures.py"
    spec = importlib.util.spec_from_file_location("matrix_figures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["matrix_figures"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


figures = _load_figures()


def _scenario() -> Scenario:
    hosts = [
        HostSpec("big", rate_limit=10),
        HostSpec("tiny", rate_limit=2),
        HostSpec("flaky", rate_limit=10, error_rate_5xx=0.5, error_retry_after=None),
        HostSpec("resolver", rate_limit=5, redirect_to="big"),
        HostSpec("dead", mode="refused"),
    ]
    urls = {"big": 100, "tiny": 4, "flaky": 50, "resolver": 10, "dead": 3}
    roles = {"big": "bucket", "tiny": "tiny", "flaky": "fault", "resolver": "resolver"}
    return Scenario(seed=1, hosts=hosts, urls=urls, roles={**roles, "dead": "dead"})


def _records(host: str, times: list[float], fault: str = "") -> list[RequestRecord]:
    status = {"": 200, "rate_limited": 429, "overload": 503, "5xx": 503}[fault]
    return [RequestRecord(host, t, "/img/1.jpeg", status, "127.0.0.1", fault) for t in times]


def test_run_figures_from_records() -> None:
    scenario = _scenario()
    fleet = Fleet(scenario.hosts, seed=scenario.seed)
    records = [
        *_records("big", [100 + 0.1 * i for i in range(110)]),  # 10 req/s: at the limit
        *_records("tiny", [100.0, 100.1, 100.2, 100.3, 100.4]),  # 5 in 1 s: 2.5x
        *_records("tiny", [100.5, 100.6, 100.7], "rate_limited"),
        *_records("flaky", [100 + 0.1 * i for i in range(100)]),
        *_records("flaky", [120.0], "5xx"),
    ]
    stored = [f"big/{i}" for i in range(100)] + ["tiny/0", "resolver/3", "dead/0"]
    run = figures.run_figures(scenario, fleet, records, stored, 10.0, (30.0, 0, False), 95.0)
    hosts = {host.name: host for host in run.hosts}
    assert run.bound_s == pytest.approx(11.0)  # big: 100 own + 10 redirected, at 10 req/s
    assert hosts["big"].window_ratio == pytest.approx(1.0)
    assert hosts["tiny"].window_ratio == pytest.approx(4.0)  # 8 requests within 1 s / 2
    assert hosts["tiny"].refusal_score == pytest.approx(1.5)  # 3 refusals, 2 allowed
    assert hosts["flaky"].bound_s == pytest.approx(10.0)  # 50 URLs / 0.5 at 10 req/s
    assert hosts["flaky"].finish_ratio == pytest.approx(2.0)  # 20 s from first to last
    assert hosts["flaky"].kept_ratio is None  # 101 requests: too few to leave a ramp
    assert hosts["dead"].fetchable == 0 and hosts["dead"].stored == 0
    assert hosts["resolver"].stored == 1
    assert run.first_request_s == pytest.approx(5.0)  # the first request came at 100, 95 + 5
    assert run.last_host is not None and run.last_host.name == "flaky"
    assert hosts["flaky"].last_s == pytest.approx(25.0)
    headline = run.headline()
    assert headline["makespan_ratio"] == pytest.approx(30.0 / 11.0)
    assert headline["refused_share"] == pytest.approx(3 / len(records))
    assert headline["fault_5xx_share"] == pytest.approx(1 / len(records))
    assert headline["host_refusal_score"] == pytest.approx(1.5)
    assert headline["fault_finish_ratio"] == pytest.approx(2.0)
    assert headline["fault_kept_rate"] == pytest.approx(1.0)  # no fault host judged
    fetchable = sum(host.fetchable for host in run.hosts)
    assert headline["stored_share"] == pytest.approx(102 / fetchable)


def test_host_refusal_score_is_a_share_for_busy_hosts_and_a_count_for_small_ones() -> None:
    busy = figures.HostFigures("a", "bucket", 100, 10.0, 10.0, requests=100, refused=5)
    small = figures.HostFigures("b", "tiny", 10, 1.0, 10.0, requests=12, refused=2)
    assert busy.refusal_score == pytest.approx(0.5)
    assert small.refusal_score == pytest.approx(1.0)


def _run(seed: int, makespan: float, *, failed: bool = False) -> object:
    run = figures.RunFigures(seed, 100, makespan, 10.0, 1 if failed else 0, False)
    run.hosts.append(
        figures.HostFigures("a", "bucket", 100, 10.0, 10.0, requests=100, fetchable=5, stored=5)
    )
    return run


def test_summary_reports_the_worst_seed_and_the_median() -> None:
    runs = [_run(1, 11.0), _run(2, 12.5), _run(3, 11.2)]
    summary = {s.figure: s for s in figures.summarize(runs)}
    ratio = summary["makespan_ratio"]
    assert (ratio.worst, ratio.worst_seed, ratio.median) == pytest.approx((1.25, 2, 1.12))
    assert ratio.passed is True
    assert summary["stored_share"].passed is True
    assert summary["load_503_share"].passed is None
    assert figures.verdict(runs, list(summary.values())) is True
    slow = [*runs, _run(4, 20.0)]
    assert figures.verdict(slow, figures.summarize(slow)) is False
    broken = [*runs[:2], _run(5, 11.0, failed=True)]
    assert figures.verdict(broken, figures.summarize(broken)) is False


def test_the_kept_rate_leaves_the_ramp_and_the_last_retries_out() -> None:
    ramp = [0.5 * i for i in range(20)]  # 10 s at 2 req/s
    steady = [10 + 0.1 * i for i in range(160)]  # 16 s at 10 req/s
    tail = [40.0, 45.0]  # the last retries, after their waits
    assert figures.middle_rate([*ramp, *steady, *tail], 100) == pytest.approx(10.0)
    starved = [1.0 * i for i in range(120)]  # the fault host: 1 req/s throughout
    assert figures.middle_rate(starved, 100) == pytest.approx(1.0)
    assert figures.middle_rate(steady[:50], 100) is None  # too few requests to say


def test_a_large_fault_host_is_judged_on_its_kept_rate_and_others_are_not() -> None:
    scenario = _scenario()
    scenario.urls["flaky"] = 400
    fleet = Fleet(scenario.hosts, seed=scenario.seed)
    records = [
        *_records("flaky", [100 + 0.2 * i for i in range(20)]),  # a ramp at 5 req/s
        *_records("flaky", [104 + 0.1 * i for i in range(400)]),  # then its limit, 10 req/s
        *_records("big", [100 + 0.1 * i for i in range(400)]),
    ]
    run = figures.run_figures(scenario, fleet, records, [], 10.0, (60.0, 0, False), 95.0)
    hosts = {host.name: host for host in run.hosts}
    assert hosts["flaky"].kept_ratio == pytest.approx(1.0, abs=0.02)
    assert hosts["big"].kept_ratio is None  # judged on fault hosts only


def test_the_worst_kept_rate_is_the_lowest() -> None:
    runs = [_run(1, 11.0), _run(2, 11.0)]
    runs[1].hosts.append(  # type: ignore[attr-defined]
        figures.HostFigures("f", "fault", 300, 30.0, 10.0, kept_ratio=0.5)
    )
    kept = {s.figure: s for s in figures.summarize(runs)}["fault_kept_rate"]
    assert (kept.worst, kept.worst_seed, kept.passed) == (0.5, 2, False)
