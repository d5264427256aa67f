"""robots.txt rules per RFC 9309, with Crawl-delay and Request-rate."""

from __future__ import annotations

import pytest
from protego import Protego

from distdl.core.robots import MAX_CRAWL_DELAY, RobotsRules, may_disallow

UA = "distdl"
SITE = "https://images.example.org"


def _rules(text: str) -> RobotsRules:
    return RobotsRules.from_response(200, text)


def test_2xx_is_parsed_and_disallow_rules_apply() -> None:
    rules = _rules("User-agent: *\nDisallow: /private/\n")
    assert rules.kind == "parsed"
    assert not rules.allowed(f"{SITE}/private/a.jpg", UA)
    assert rules.allowed(f"{SITE}/public/a.jpg", UA)
    assert rules.allowed(f"{SITE}/privateer.jpg", UA)


def test_our_group_wins_over_the_star_group_case_insensitively() -> None:
    rules = _rules("User-agent: DistDL\nDisallow: /media/\n\nUser-agent: *\nDisallow: /\n")
    assert rules.allowed(f"{SITE}/photos/1.jpg", UA)
    assert not rules.allowed(f"{SITE}/media/1.jpg", UA)
    assert not rules.allowed(f"{SITE}/photos/1.jpg", "otherbot")


def test_a_full_user_agent_string_matches_its_product_token() -> None:
    rules = _rules("User-agent: distdl\nDisallow: /\n")
    assert not rules.allowed(f"{SITE}/a.jpg", "distdl/0.1 (+https://github.com/distdl/distdl)")
    assert rules.allowed(f"{SITE}/a.jpg", "notdistdlbot/1.0")


def test_the_longest_match_wins_and_allow_breaks_ties() -> None:
    rules = _rules("User-agent: *\nDisallow: /img/\nAllow: /img/open/\nDisallow: /x\nAllow: /x\n")
    assert rules.allowed(f"{SITE}/img/open/1.jpg", UA)
    assert not rules.allowed(f"{SITE}/img/closed/1.jpg", UA)
    assert rules.allowed(f"{SITE}/x/1.jpg", UA)


def test_wildcards_and_end_anchors() -> None:
    rules = _rules("User-agent: *\nDisallow: /*.tif$\nDisallow: /*/thumbs/\n")
    assert not rules.allowed(f"{SITE}/a/b.tif", UA)
    assert rules.allowed(f"{SITE}/a/b.tif?size=large", UA)
    assert not rules.allowed(f"{SITE}/a/thumbs/b.jpg", UA)
    assert rules.allowed(f"{SITE}/a/b.jpg", UA)


def test_robots_txt_itself_is_always_allowed() -> None:
    rules = _rules("User-agent: *\nDisallow: /\n")
    assert not rules.allowed(f"{SITE}/a.jpg", UA)
    assert rules.allowed(f"{SITE}/robots.txt", UA)
    assert RobotsRules.from_response(503, None).allowed(f"{SITE}/robots.txt", UA)


@pytest.mark.parametrize("text", [None, "", "  \n# nothing here\n"])
def test_an_empty_2xx_body_allows_everything(text: str | None) -> None:
    rules = RobotsRules.from_response(200, text)
    assert rules.allowed(f"{SITE}/a.jpg", UA)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 451, 301])
def test_4xx_and_unfollowed_redirects_mean_unavailable_so_no_restrictions(status: int) -> None:
    rules = RobotsRules.from_response(status, None)
    assert rules.kind == "allow_all"
    assert rules.allowed(f"{SITE}/anything/at/all.jpg", UA)
    assert rules.rate_cap(UA) is None


@pytest.mark.parametrize("status", [None, 429, 500, 502, 503, 504, 599, 100, 600])
def test_5xx_429_or_unreachable_disallow_everything(status: int | None) -> None:
    rules = RobotsRules.from_response(status, "User-agent: *\nAllow: /\n")
    assert rules.kind == "disallow_all"
    assert not rules.allowed(f"{SITE}/a.jpg", UA)
    assert rules.crawl_delay(UA) is None


def test_allow_everything_for_runs_that_ignore_robots() -> None:
    assert RobotsRules.allow_everything().allowed(f"{SITE}/a.jpg", UA)


def test_crawl_delay_of_our_group() -> None:
    rules = _rules("User-agent: distdl\nCrawl-delay: 2\n\nUser-agent: *\nCrawl-delay: 10\n")
    assert rules.crawl_delay(UA) == 2.0
    assert rules.crawl_delay("otherbot") == 10.0
    assert rules.rate_cap(UA) == pytest.approx(0.5)


def test_request_rate_in_requests_per_second() -> None:
    rules = _rules("User-agent: *\nRequest-rate: 1/5\n")
    assert rules.request_rate(UA) == pytest.approx(0.2)
    minutes = _rules("User-agent: *\nRequest-rate: 30/1m\n")
    assert minutes.request_rate(UA) == pytest.approx(0.5)


def test_a_request_rate_for_some_hours_is_applied_at_all_hours() -> None:
    rules = _rules("User-agent: *\nRequest-rate: 1/10 0100-0600\n")
    assert rules.rate_cap(UA) == pytest.approx(0.1)


def test_rate_cap_is_the_stricter_of_the_two() -> None:
    rules = _rules("User-agent: *\nCrawl-delay: 2\nRequest-rate: 3/1\n")
    assert rules.rate_cap(UA) == pytest.approx(0.5)
    stricter_rate = _rules("User-agent: *\nCrawl-delay: 0.1\nRequest-rate: 1/4\n")
    assert stricter_rate.rate_cap(UA) == pytest.approx(0.25)


def test_crawl_delays_are_capped_at_thirty_seconds() -> None:
    rules = _rules("User-agent: *\nCrawl-delay: 3600\n")
    assert MAX_CRAWL_DELAY == 30.0
    assert rules.crawl_delay(UA) == 3600.0  # as written
    assert rules.rate_cap(UA) == pytest.approx(1 / 30)


def test_no_cap_when_the_site_asks_for_none() -> None:
    assert _rules("User-agent: *\nDisallow: /private/\n").rate_cap(UA) is None
    assert _rules("User-agent: *\nCrawl-delay: 0\n").rate_cap(UA) is None
    assert _rules("User-agent: *\nCrawl-delay: soon\n").rate_cap(UA) is None


@pytest.mark.parametrize(
    "text",
    [
        "User-agent: *\nAllow: /\n",
        "# nothing to hide\nUser-agent: *\nDisallow:\nCrawl-delay: 2\nSitemap: /s.xml\n",
        "user-agent: distdl\nallow: /images/ # all of them\n\nHost: example.org\n",
    ],
)
def test_a_file_that_forbids_nothing_allows_every_url_without_asking_the_parser(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = RobotsRules.from_response(200, text)
    monkeypatch.setattr(Protego, "can_fetch", lambda *_: pytest.fail("parser asked"))
    assert rules.allowed("https://example.org/private/x.jpg?a=1", "distdl")
    assert rules.rate_cap("distdl") in (None, 0.5)  # its other rules still read


@pytest.mark.parametrize(
    "text",
    [
        "User-agent: *\nAllow: /\nDisallow: /private\n",
        "User-agent: *\nDissallow: /private\n",  # misspelt, and honoured by protego
        "\ufeffUser-agent: *\nDisallow: /private\n",
        "User-agent: *\nDisallow /private\n",
    ],
)
def test_a_file_that_may_forbid_something_is_asked_of_the_parser(text: str) -> None:
    assert may_disallow(text)
    rules = RobotsRules.from_response(200, text)
    assert rules.allowed("https://example.org/public/x.jpg", "distdl")
    expected = RobotsRules("parsed", 200, Protego.parse(text)).allowed(
        "https://example.org/private/x.jpg", "distdl"
    )
    assert rules.allowed("https://example.org/private/x.jpg", "distdl") is expected
