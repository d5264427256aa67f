from __future__ import annotations

import pytest

from distdl.core import codes
from distdl.core.host_profile import ProbeOutcome, judge_host
from distdl.core.robots import RobotsRules

OK = ProbeOutcome(0, 0.05)


def _judge(rules: RobotsRules, probes: list[ProbeOutcome]) -> object:
    return judge_host(rules, probes, "distdl", default_rate=4.0, max_rate=50.0)


def test_healthy_host_starts_at_the_default_rate() -> None:
    verdict = _judge(RobotsRules.from_response(404, None), [OK, OK, OK])
    assert verdict.status == "healthy"
    assert (verdict.start_rate, verdict.max_rate, verdict.latency_ms) == (4.0, 50.0, 50.0)


def test_robots_crawl_delay_caps_start_and_ceiling() -> None:
    rules = RobotsRules.from_response(200, "User-agent: *\nCrawl-delay: 2\n")
    verdict = _judge(rules, [OK])
    assert verdict.max_rate == pytest.approx(0.5) and verdict.start_rate == pytest.approx(0.5)
    assert verdict.crawl_delay == 2


@pytest.mark.parametrize(
    ("probes", "status", "start"),
    [
        ([ProbeOutcome(codes.TIMEOUT, 10.0)] * 3, "unreachable", 2.0),
        ([ProbeOutcome(503, 0.1), ProbeOutcome(500, 0.1)], "erroring", 2.0),
        ([ProbeOutcome(0, 3.0), ProbeOutcome(0, 2.5)], "slow", 2.0),
        ([ProbeOutcome(404, 0.1), OK], "healthy", 4.0),
    ],
)
def test_struggling_hosts_start_at_half_the_default(
    probes: list[ProbeOutcome], status: str, start: float
) -> None:
    verdict = _judge(RobotsRules.from_response(200, ""), probes)
    assert (verdict.status, verdict.start_rate) == (status, start)


def test_no_probe_allowed_is_judged_by_robots_reachability() -> None:
    assert _judge(RobotsRules.from_response(200, "User-agent: *\nDisallow: /\n"), []).status == (
        "healthy"
    )
    assert _judge(RobotsRules.from_response(None, None), []).status == "unreachable"
