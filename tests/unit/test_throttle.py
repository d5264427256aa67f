"""The rate controller against simulated servers in fake time (distdl.testing.host_model).

Every behaviour is checked over several seeds and shapes of host: what must hold is the
rule (follows the limit, ignores faults whatever the rate, backs off from load, starts
safely), never the exact trace of one simulation. Reports come every 0.25 s and new rates
reach the senders 50 ms later, as on rank 0; senders pace at 97% of the rate.
"""

from __future__ import annotations

import itertools
import math

import pytest

from distdl.core.throttle import Feedback, HostThrottle, ThrottleSettings
from distdl.testing.host_model import HostModel, SimStats, simulate

SEEDS = range(4)
DELAY = 0.05


def _run(
    host: HostModel,
    *,
    seconds: float = 120.0,
    urls: int | None = None,
    start_rate: float = 3.0,
    **settings: float,
) -> tuple[HostThrottle, SimStats]:
    throttle = HostThrottle(ThrottleSettings(start_rate=start_rate, **settings), now=0.0)
    if urls is not None:
        throttle.set_remaining(urls)  # as rank 0 does from the plan
    stats = simulate(throttle, host, seconds, urls=urls, control_delay=DELAY)
    return throttle, stats


# --- token buckets -----------------------------------------------------------------------
@pytest.mark.parametrize("limit", [2.0, 5.0, 20.0, 60.0])
@pytest.mark.parametrize("burst", [0.0, 0.5, 2.0])
def test_follows_a_token_bucket_closely_with_few_429s(limit: float, burst: float) -> None:
    # A bucket of one token refuses whatever arrives early by a millisecond: jitter only
    # where the bucket holds a few.
    jitter = 0.005 if burst * limit >= 2 else 0.0
    # A long burst allowance hides an overshoot for seconds, so each crossing of the limit
    # (the first, and the rare probes above it) costs more 429s before it shows.
    allowed = 0.015 if burst < 2 else 0.03
    for seed in SEEDS:
        host = HostModel(limit, burst=burst, seed=seed, jitter=jitter)
        _, stats = _run(host)
        assert 0.8 * limit <= stats.mean_rate(40.0, 120.0) <= 1.05 * limit
        assert stats.refused_share < allowed + 2 / stats.requests  # two at the crossing


@pytest.mark.parametrize("limit", [5.0, 20.0, 60.0])
def test_a_large_host_finishes_within_a_fifth_of_its_bound(limit: float) -> None:
    urls = int(300 * limit)  # five minutes of work at the limit
    for seed in SEEDS:
        _, stats = _run(HostModel(limit, burst=0.5, seed=seed), seconds=900.0, urls=urls)
        assert stats.time_to_finish is not None
        assert stats.time_to_finish <= 1.2 * urls / limit


@pytest.mark.parametrize("start_rate", [3.0, 10.0, 30.0])
@pytest.mark.parametrize("limit", [1.0, 2.0])
def test_a_tiny_host_is_never_stormed_whatever_the_default_rate(
    start_rate: float, limit: float
) -> None:
    for seed in SEEDS:
        host = HostModel(limit, burst=0.0, seed=seed, jitter=0.005)
        _, stats = _run(host, urls=40, seconds=200.0, start_rate=start_rate)
        assert stats.refused <= 2
        assert stats.max_in_window() <= 2 * limit + 1


@pytest.mark.parametrize("start_rate", [3.0, 10.0])
def test_a_tiny_host_with_a_burst_allowance_is_not_ramped_past_it(start_rate: float) -> None:
    # A burst allowance hides the overshoot of a ramp until it drains; a host with a few
    # dozen URLs is done at a modest rate, so its ramp stops before it gets there.
    for seed, limit in itertools.product(SEEDS, [1.5, 2.5, 4.0]):
        host = HostModel(limit, burst=2.0, seed=seed, jitter=0.005)
        _, stats = _run(host, urls=40, seconds=200.0, start_rate=start_rate)
        assert stats.refused <= 2
        assert stats.time_to_finish is not None
        assert stats.time_to_finish <= 40 / limit + 12.0


@pytest.mark.parametrize("retry_after", [None, 3.0])
@pytest.mark.parametrize("burst", [0.0, 0.5, 1.0, 2.0])
def test_a_small_hosts_ramp_crosses_its_limit_in_small_steps(
    burst: float, retry_after: float | None
) -> None:
    # A host of under 50 URLs may be refused twice in all: the crossing of its limit, and
    # one step back up that finds it. Limits just above the safe start are the hard case:
    # a step of x1.5 there overshoots a burst allowance by half and is refused again.
    for seed, limit in itertools.product(SEEDS, [1.25, 1.5, 1.8, 2.2, 3.0]):
        host = HostModel(limit, burst=burst, seed=seed, jitter=0.005, retry_after=retry_after)
        _, stats = _run(host, urls=45, seconds=300.0)
        assert stats.refused <= 2
        assert stats.time_to_finish is not None
        assert stats.time_to_finish <= 1.8 * 45 / limit
        assert stats.max_in_window() <= 2 * limit + 1


@pytest.mark.parametrize("seed", SEEDS)
def test_the_start_rate_is_reached_fast_and_passed_carefully(seed: int) -> None:
    # From 1 req/s, each step judged on the first answer served at the new rate (two answers
    # would take 2 s a step at the bottom of the ramp: about 6.5 s to 10 req/s).
    host = HostModel(None, seed=seed)
    _, stats = _run(host, start_rate=10.0, max_rate=80.0, seconds=40.0)
    reached = next(t for t, rate in stats.rate_trace if rate >= 10.0)
    top = next(t for t, rate in stats.rate_trace if rate >= 80.0)
    assert reached <= 5.5
    assert reached + 5.0 <= top <= 12.0
    assert stats.refused == 0


def test_a_host_with_few_urls_left_judges_its_ramp_on_two_answers() -> None:
    # A faster ramp has sent more requests past a limit by the time the first refusal
    # comes back: a host of a few dozen URLs cannot afford them.
    for urls, raised in [(1000, True), (40, False)]:
        throttle = HostThrottle(ThrottleSettings(), now=0.0)
        throttle.set_remaining(urls)
        throttle.observe(Feedback(ok=1), 1.0)
        assert (throttle.rate > 1.0) is raised
        throttle.observe(Feedback(ok=1), 2.0)
        assert throttle.rate > 1.0


def test_follows_a_limit_that_drops_and_finds_it_again_when_it_recovers() -> None:
    for seed in SEEDS:
        host = HostModel(40.0, burst=0.5, seed=seed)
        host.change_limit(at=40.0, limit=10.0)
        host.change_limit(at=100.0, limit=40.0)
        _, stats = _run(host, seconds=240.0)
        assert stats.rate_at(39.0) >= 30.0
        assert stats.rate_at(43.0) <= 11.0  # followed down within a few seconds
        assert stats.max_in_window(start=42.0, end=100.0) <= 2 * 10.0
        assert stats.mean_rate(200.0, 240.0) >= 0.8 * 40.0  # and back up
        assert stats.refused_share < 0.02


def test_a_slow_host_whose_limit_came_back_is_regained_within_minutes_not_hours() -> None:
    # At 1–2 req/s a probe waiting for 100 answers waits 100 s: the limit that came back
    # at 60 s would be regained only after several such probes.
    for seed in SEEDS:
        host = HostModel(2.0, burst=0.3, seed=seed)
        host.change_limit(at=20.0, limit=1.0)
        host.change_limit(at=60.0, limit=2.0)
        _, stats = _run(host, seconds=400.0)
        assert stats.mean_rate(250.0, 400.0) >= 0.75 * 2.0
        assert stats.refused_share < 0.05


def test_recovery_below_the_ceiling_ends_in_one_step_not_a_crawl() -> None:
    # Halving the distance to the top (in ratio) never reaches it: the last few percent
    # are one step, and what follows are probes.
    settings = ThrottleSettings(start_rate=10.0)
    throttle = HostThrottle(settings, now=0.0, known=True)
    now = 0.0
    throttle.observe(Feedback(ok=5, rate_limited=5), now)  # measured: cut, ceiling set
    top = settings.settle_share * throttle.ceiling
    rates = [throttle.rate]
    while throttle.rate < top and now < 600.0:
        now += 0.25
        throttle.observe(Feedback(ok=max(1, round(throttle.rate / 4))), now)
        if throttle.rate != rates[-1]:
            rates.append(throttle.rate)
    assert throttle.rate == pytest.approx(top)
    assert len(rates) <= 5


def test_retry_after_on_a_refusal_pauses_the_whole_host() -> None:
    host = HostModel(10.0, burst=0.25, seed=0, retry_after=2.0)
    throttle, stats = _run(host)
    assert stats.refused > 0
    gaps = [later - earlier for earlier, later in itertools.pairwise(stats.arrivals)]
    assert max(gaps) >= 2.0  # "Retry-After: 2" on every 429: nothing sent meanwhile
    assert throttle.paused_until() > 0


def _quiet_at_the_top(settings: ThrottleSettings) -> tuple[HostThrottle, float]:
    throttle = HostThrottle.restore(settings, {"rate": 18.0, "ceiling": 20.0}, now=0.0)
    now = 0.0
    while now < 5.0:  # a quiet stretch at the top: a lone refusal now could be jitter
        now += 0.25
        throttle.observe(Feedback(ok=4), now)
    assert throttle.rate == 18.0
    return throttle, now


def test_a_lone_refusal_with_retry_after_delays_its_url_not_the_host() -> None:
    settings = ThrottleSettings(start_rate=3.0)
    throttle, now = _quiet_at_the_top(settings)
    throttle.observe(Feedback(ok=3, rate_limited=1, retry_after=4.0), now)
    # One early request at a drained bucket: its URL waits (the retry policy), the host
    # does not, and the rate only steps back as for jitter.
    assert throttle.paused_until() < now
    assert throttle.rate == pytest.approx(18.0 * settings.mild_decrease)


def test_refusals_that_cluster_pause_the_host_and_its_refill_proves_nothing() -> None:
    settings = ThrottleSettings(start_rate=3.0)
    throttle, now = _quiet_at_the_top(settings)
    throttle.observe(Feedback(ok=3, rate_limited=1, retry_after=4.0), now)
    now += 0.25
    throttle.observe(Feedback(ok=3), now)
    now += 0.25
    throttle.observe(Feedback(ok=3, rate_limited=1, retry_after=4.0), now)
    # Refused again within a few answers: the host is overloaded. It said when to come
    # back, and a refusal that paused it is an overshoot, never jitter.
    assert throttle.paused_until() == pytest.approx(now + 4.0)
    assert throttle.ceiling <= 18.0
    cut = throttle.rate
    assert cut < 18.0 * settings.mild_decrease
    pause_end = throttle.paused_until()
    now = pause_end
    while now < pause_end + 3.75:  # the bucket refilled during the pause: nothing proven
        now += 0.25
        throttle.observe(Feedback(ok=max(1, round(cut / 4))), now)
    assert throttle.rate == cut
    while now < pause_end + 11.0:  # the refill is spent: recovery goes on
        now += 0.25
        throttle.observe(Feedback(ok=max(1, round(throttle.rate / 4))), now)
    assert cut < throttle.rate <= settings.settle_share * throttle.ceiling


def test_a_cdn_refusing_with_403_is_followed_like_429() -> None:
    for seed in SEEDS:
        host = HostModel(20.0, burst=0.25, seed=seed, refusal_status=403)
        _, stats = _run(host)
        assert 0.7 * 20.0 <= stats.mean_rate(40.0, 120.0) <= 1.2 * 20.0
        assert stats.refused_share < 0.05


@pytest.mark.parametrize("share", [0.005, 0.01])
def test_a_forbidden_image_now_and_then_does_not_end_a_fast_hosts_ramp(share: float) -> None:
    for seed in SEEDS:
        host = HostModel(40.0, burst=0.5, seed=seed, forbidden_share=share)
        _, stats = _run(host, start_rate=10.0)
        assert stats.forbidden > 0
        assert stats.mean_rate(30.0, 120.0) >= 0.8 * 40.0


def test_a_host_that_forbids_content_whatever_the_rate_is_not_slowed_to_a_crawl() -> None:
    throttle = HostThrottle(ThrottleSettings(start_rate=10.0), now=0.0)
    now = 0.0
    for _ in range(200):  # 60% of its images are forbidden, at any rate
        now += 0.5
        throttle.observe(Feedback(ok=4, forbidden=6), now)
    assert throttle.rate >= 10.0


@pytest.mark.parametrize("burst", [1.0, 1.3, 1.6])
@pytest.mark.parametrize("limit", [20.0, 27.0, 35.0])
def test_a_cdn_whose_burst_allowance_hid_the_ramp_is_not_taken_for_forbidden_content(
    burst: float, limit: float
) -> None:
    # The window where the 403s begin was mostly served by the burst allowance as it
    # drained. Measured against it, the images served after the first cut look halved, as
    # forbidden content's would, and the host would go on being refused for good.
    for seed in SEEDS:
        host = HostModel(limit, burst=burst, seed=seed, refusal_status=403, latency=0.2)
        _, stats = _run(host, seconds=60.0)
        assert stats.refused_share < 0.05
        assert stats.mean_rate(30.0, 60.0) <= 1.2 * limit


def _slow_start_cut_by_403s() -> tuple[HostThrottle, float, float]:
    """A host in slow start answers two 403s together: cut as a CDN refusing the ramp.
    Returns the throttle, the time, and the rate before the cut."""
    throttle = HostThrottle(ThrottleSettings(start_rate=10.0), now=0.0)
    now = 0.0
    for _ in range(6):  # clean windows: the ramp goes up
        now += 0.6
        throttle.observe(Feedback(ok=int(throttle.rate * 0.6) + 2), now)
    before = throttle.rate
    now += 0.6
    throttle.observe(Feedback(ok=2, forbidden=2), now)
    assert throttle.rate < before  # taken for a refusal, as the rule says
    return throttle, now, before


def test_403s_repeated_on_retry_are_content_and_the_cut_they_caused_is_undone() -> None:
    throttle, now, before = _slow_start_cut_by_403s()
    now += 1.5  # the two URLs are retried after a pause: forbidden again
    throttle.observe(Feedback(ok=3, forbidden_again=2), now)
    assert throttle.rate == pytest.approx(before)
    assert throttle.phase == "slow_start"  # the ramp goes on
    for _ in range(20):  # 15% of its images stay forbidden: the ramp is not stopped again
        now += 0.6
        answers = int(throttle.rate * 0.6) + 4
        forbidden = max(1, answers * 15 // 100)
        throttle.observe(Feedback(ok=answers - forbidden, forbidden=forbidden), now)
    assert throttle.rate > 2 * before


def test_a_cdn_refusing_most_first_tries_refuses_their_retries_too_it_is_no_content() -> None:
    # Live (politeness matrix seed 4): a 403 CDN whose burst had hidden the ramp refused two
    # retries at once while it refused most first tries; taken for content, its refused rate
    # came back, its 403s stopped counting, and it was sent 15x its limit.
    throttle, now, before = _slow_start_cut_by_403s()
    cut = throttle.rate
    for _ in range(4):  # its burst spent, the CDN refuses two first tries in three
        now += 0.3
        throttle.observe(Feedback(ok=2, forbidden=4), now)
    now += 0.3  # the first 403s' retries meet the same CDN: refused again
    throttle.observe(Feedback(ok=1, forbidden=2, forbidden_again=2), now)
    assert throttle.rate <= cut < before
    # Once it serves its first tries again, URLs refused again on retry are content.
    for _ in range(8):
        now += 0.5
        throttle.observe(Feedback(ok=6), now)
    now += 0.5
    throttle.observe(Feedback(ok=5, forbidden_again=3), now)
    assert throttle.rate > cut


def test_a_cdn_that_also_forbids_a_few_images_is_still_answered_in_its_ramp() -> None:
    throttle, now, before = _slow_start_cut_by_403s()
    now += 1.5  # two of those URLs are forbidden content: the cut is undone, the ramp goes on
    throttle.observe(Feedback(ok=8, forbidden_again=2), now)
    assert throttle.rate == pytest.approx(before) and throttle.phase == "slow_start"
    assert throttle.ceiling == math.inf
    now += 0.6  # then the CDN refuses the ramp: more 403s than its few forbidden images
    throttle.observe(Feedback(ok=2, forbidden=3), now)
    assert throttle.rate < before


def test_403s_served_on_retry_were_refusals_and_the_cut_stays() -> None:
    throttle, now, before = _slow_start_cut_by_403s()
    cut = throttle.rate
    now += 1.5  # the two URLs are served after a pause: the CDN was refusing a ramp
    throttle.observe(Feedback(ok=3, served_after_forbidden=2), now)
    now += 1.5  # a later 403 repeated once is not yet a verdict against two served
    throttle.observe(Feedback(ok=2, forbidden_again=1), now)
    assert throttle.rate <= cut < before
    now += 1.5  # forbidden content besides: its share is learned, the refused rate not restored
    throttle.observe(Feedback(ok=2, forbidden_again=2), now)
    assert throttle.rate <= cut < before


# --- 5xx: faults whatever the rate, and load ------------------------------------------------
@pytest.mark.parametrize("limit", [15.0, 30.0])
@pytest.mark.parametrize("share", [0.02, 0.05, 0.10])
@pytest.mark.parametrize("retry_after", [None, 1.0])
def test_faults_whatever_the_rate_keep_the_host_near_its_limit(
    limit: float, share: float, retry_after: float | None
) -> None:
    urls = int(120 * limit)
    for seed in SEEDS:
        host = HostModel(
            limit, burst=0.5, seed=seed, fault_share=share, fault_retry_after=retry_after
        )
        _, stats = _run(host, urls=urls, seconds=600.0)
        assert stats.faults > 0
        own_bound = urls / (1 - share) / limit
        assert stats.time_to_finish is not None
        assert stats.time_to_finish <= 1.25 * own_bound


@pytest.mark.parametrize("knee", [5.0, 20.0, 50.0])
@pytest.mark.parametrize("slope", [0.5, 2.0])
def test_an_overloaded_host_is_kept_near_its_knee(knee: float, slope: float) -> None:
    for seed in SEEDS:
        host = HostModel(None, seed=seed, knee=knee, overload_slope=slope)
        _, stats = _run(host, seconds=180.0)
        assert 0.6 * knee <= stats.mean_rate(60.0, 180.0) <= 1.3 * knee
        # A gentle overload (a few percent of 503s just past the knee) looks like faults
        # whatever the rate until the share clearly grows; the knee is found by them. At a
        # low knee few answers arrive per band, so telling 15% from 9% takes a while.
        assert stats.overloaded < 0.25 * stats.requests
        assert stats.max_in_window(start=30.0) <= 2 * knee


def test_a_load_5xx_with_retry_after_pauses_the_host_but_a_lone_fault_does_not() -> None:
    throttle = HostThrottle(ThrottleSettings(start_rate=10.0), now=0.0, known=True)
    throttle.observe(Feedback(ok=9, server_errors=1, server_retry_after=5.0), 0.6)
    assert throttle.paused_until() == -math.inf
    for step in range(1, 5):
        throttle.observe(Feedback(ok=1, server_errors=9, server_retry_after=5.0), 0.6 + step)
    assert throttle.paused_until() > 0.6
    assert throttle.rate < 10.0


def test_timeouts_far_above_the_usual_share_are_load() -> None:
    throttle = HostThrottle(ThrottleSettings(start_rate=20.0), now=0.0, known=True)
    for step in range(1, 4):
        throttle.observe(Feedback(ok=2, timeouts=8), step * 0.6)
    assert throttle.rate < 20.0


# --- settings, limits, persistence ---------------------------------------------------------
def test_never_exceeds_max_rate_and_never_goes_below_min_rate() -> None:
    _, stats = _run(HostModel(None), max_rate=40.0, seconds=60.0)
    assert max(rate for _, rate in stats.rate_trace) <= 40.0
    assert stats.rate_at(60.0) == pytest.approx(40.0)
    throttle = HostThrottle(ThrottleSettings(start_rate=3.0, min_rate=0.5), now=0.0)
    for step in range(1, 60):
        throttle.observe(Feedback(rate_limited=5), step * 1.0)
    assert throttle.rate == pytest.approx(0.5)


@pytest.mark.parametrize("limit", [5.0, 20.0, 60.0])
def test_rate_multiplier_keeps_that_share_of_the_learned_limit(limit: float) -> None:
    _, stats = _run(HostModel(limit, burst=0.25), rate_multiplier=0.5)
    settled = [rate for time, rate in stats.rate_trace if time >= 60.0]
    # The limit is measured while slow start overshoots it, so it is learned a little high.
    assert max(settled) <= 0.8 * limit
    assert min(settled) >= 0.35 * limit


def test_snapshot_and_restore_start_from_the_learned_state() -> None:
    throttle, _ = _run(HostModel(20.0, burst=0.25, fault_share=0.05))
    snapshot = throttle.snapshot()
    assert set(snapshot) >= {"rate", "max_ok_rate", "ceiling", "failure_share"}
    assert 0.02 < snapshot["failure_share"] < 0.1
    restored = HostThrottle.restore(ThrottleSettings(start_rate=3.0), snapshot, now=100.0)
    assert restored.rate == pytest.approx(snapshot["rate"])
    assert restored.phase == "steady"
    stats = simulate(restored, HostModel(20.0, burst=0.25, seed=3), 30.0)
    assert stats.rate_at(0.0) >= 0.8 * 20.0
    assert stats.refused_share < 0.01


def test_the_learned_rate_is_not_one_that_passed_on_a_burst_allowance() -> None:
    throttle, _ = _run(HostModel(10.0, burst=2.0, seed=1))
    assert math.isfinite(throttle.ceiling)
    assert throttle.learned_rate <= throttle.max_ok_rate
    assert throttle.learned_rate <= 0.9 * throttle.ceiling + 1e-9
    assert 0.7 * 10.0 <= throttle.learned_rate <= 1.05 * 10.0
    never_refused = HostThrottle(ThrottleSettings(max_rate=20.0), now=0.0)
    simulate(never_refused, HostModel(None), 30.0)
    assert never_refused.learned_rate == pytest.approx(20.0)


def test_restore_needs_only_a_rate_and_clamps_it() -> None:
    settings = ThrottleSettings(start_rate=3.0, max_rate=50.0)
    assert HostThrottle.restore(settings, {"rate": 12.0}, now=0.0).rate == 12.0
    assert HostThrottle.restore(settings, {"rate": 500.0}, now=0.0).rate == 50.0
    assert HostThrottle.restore(settings, {}, now=0.0).phase == "slow_start"


def test_an_unknown_host_starts_safely_and_a_known_one_where_it_was() -> None:
    settings = ThrottleSettings(start_rate=10.0)
    assert HostThrottle(settings, now=0.0).rate == settings.safe_start
    assert HostThrottle(settings, now=0.0, known=True).rate == 10.0
    assert HostThrottle(ThrottleSettings(start_rate=0.5), now=0.0).rate == 0.5


def test_feedback_merges_counts_and_keeps_the_longest_retry_afters() -> None:
    merged = Feedback(ok=2, rate_limited=1, latency_sum=0.3, latency_count=3).merged(
        Feedback(ok=1, timeouts=1, forbidden=1, server_errors=1, retry_after=4.0)
    )
    assert merged.total == 7
    assert merged.failures == 2
    assert merged.mean_latency == pytest.approx(0.1)
    assert merged.retry_after == 4.0
    assert Feedback(retry_after=9.0).merged(Feedback(retry_after=4.0)).retry_after == 9.0
    both = Feedback(server_retry_after=2.0).merged(Feedback(server_retry_after=3.0))
    assert both.server_retry_after == 3.0
    assert Feedback().mean_latency is None


@pytest.mark.parametrize(
    "bad",
    [
        {"min_rate": 0.0},
        {"min_rate": 5.0, "max_rate": 1.0},
        {"rate_multiplier": 1.5},
        {"max_cut": 0.9},
        {"fast_growth": 1.0},
        {"small_host_growth": 0.9},
        {"settle_share": 0.0},
    ],
)
def test_settings_reject_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ThrottleSettings(**bad)
