"""Adaptive per-host request rate: slow start, then AIMD with a memory of the limit.

Rank 0 owns one :class:`HostThrottle` per host. Workers report what they saw on the host
(:class:`Feedback`) every 0.25–1 s; :meth:`HostThrottle.observe` merges the reports into a
*window* and, when it can conclude something, moves the host's rate (req/s), which rank 0
splits among the ranks leasing the host. Time is an argument: no clock, no I/O.

Rate-limited image hosts usually sit behind a token bucket (nginx ``limit_req``, CDN rules):
below the limit every request passes, above it the host serves exactly its limit and
answers the rest 429. Its burst allowance hides an overshoot for a while, so a clean window
proves less than it seems, and the rate served while the host complains is the best
measure of its limit. The controller is built on those two facts.

The algorithm
-------------
* **Complaint**: any 429/503 in the window, a Retry-After, a share of timeouts, or a sudden
  burst of 403s (some CDNs forbid instead of throttling). It is acted on at once, however
  small the window: the safe reaction must not wait for statistics.
* **Slow start**: while the host answers cleanly and latency stays steady, the rate grows by
  ``slow_start_factor`` per *judged* window (at least ``min_window_requests`` answers over
  at least ``feedback_interval`` seconds): 3 → 60 req/s in about six seconds.
* **Noise**: a *lone* complaint (one 429/503, nothing else) past slow start, at least
  ``noise_answers`` answers after the previous complaint and ``noise_hold`` seconds after
  the last increase, is treated as noise: arrival jitter at a one-token bucket, or a flaky
  server's 503. It costs ``1 - noise_decrease`` of the rate; the ceiling is only capped so
  that recovery does not climb straight back (``settle_share`` × ceiling ≤ the new rate)
  and ``max_ok_rate`` is kept. Noise that keeps coming once such cuts reach
  ``noise_floor`` of the rate before the first is not about the rate: no further cut. A
  real overshoot of a small bucket complains again within a few answers and is cut below;
  one of a bigger bucket shows within a second or two of the increase that caused it.
* **Cut** (any other complaint). A token bucket serves exactly its limit once exceeded, so
  in a window of at least ``measure_requests`` answers the rate served (rate × share of OK
  answers) measures the limit: the rate drops to ``settle_share`` × that, so a drained
  bucket refills, cutting at least ``1 - decrease_factor`` and at most
  ``1 - max_decrease``; the *ceiling* drops to the measured limit (plus half a standard
  deviation of counting noise). A smaller window measures nothing:

  - leaving slow start, the rate goes back to the previous one (it passed);
  - just above a rate that *passed* (a clean window that kept sending for
    ``pass_seconds``, longer than a burst allowance: at a small bucket, real evidence),
    the rate goes back to ``back_margin`` × that rate;
  - at a rate that passed, a lone complaint costs ``1 - mild_decrease``;
  - otherwise the share of OK answers since the previous complaint says how often the
    host complains: the rate keeps that share, within [``blind_decrease``,
    ``decrease_factor``].

  The ceiling is the lowest rate the host really complained at. A lone complaint that
  ends slow start in a small window may be a flaky server's 503: the ceiling it sets is
  *weak*, recovery approaches it by ``raised_limit`` per clean window, and clean at it the
  ceiling is forgotten and slow start resumes.
* **Hold**: for ``hold_seconds`` after a cut, reports still carry answers to the old rate.
  There is no increase, and complaints are re-judged by OK answers per second (which do
  not depend on when the requests were sent): the rate is cut again only if the host
  serves clearly less than the new rate. Windows too small to judge are dropped.
* **Recover, then probe**: below ``settle_share`` × ceiling the rate closes
  ``recovery_gain`` of the gap per clean window: fast far from the ceiling, careful near
  it, where a burst allowance would hide an overshoot. Above it, every ``probe_requests``
  clean answers (noise does not restart the count) add ``probe_step``: rare, small
  crossings of the limit that cost a few 429s. A probe answered by a complaint doubles the
  wait for the next, up to ``max_probe_backoff`` periods. Clean for a probe period at
  ``raised_limit`` × ceiling, the limit was raised: the ceiling is forgotten, and while no
  limit is known each probe that passes doubles the next one's step and halves its wait
  (CUBIC-like), so a learned rate restored from the profiles table, or a raised limit, is
  found again in a few probes.
* **max_ok_rate** is the highest rate of a clean window. A real complaint at or below it
  proves it stale and lowers it to the cut rate.
* **rate_multiplier** < 1: the search runs as above until the host has complained
  ``settle_after_complaints`` times (the second measure comes from a drained bucket) or
  ``max_rate`` passed cleanly, then the rate *settles* at ``rate_multiplier`` ×
  min(max_ok_rate, ceiling) and never rises again; real complaints still cut it, noise
  does not.
* **Latency**: a window whose mean latency exceeds ``latency_rise`` × the smoothed baseline
  (and the baseline by ``latency_min_rise``) blocks increases (the server is queueing);
  ``latency_slow_windows`` such windows in a row end slow start.
* **Retry-After** pauses the whole host until ``now + retry_after`` (see
  :meth:`HostThrottle.paused_until`) and counts as a complaint.

The rate always stays within ``[min_rate, max_rate]``.

Measured in ``distdl.core.host_sim`` (see ``tests/unit/test_throttle.py``). Token buckets
of 2–60 req/s with 0.25 s of burst, reports every 0.25–0.5 s, start at 3 req/s, even
arrivals: the rate first reaches [0.8, 1.0] × the limit within 8 s and averages 0.98–1.0 ×
the limit after that; 0.5% (reports every 0.25 s) to 0.9% (every 0.5 s) of all requests
are answered 429, most of them while leaving slow start; 60 s worth of URLs finish within
1.01–1.10× the ideal time. A delay before a new rate reaches the senders lengthens every
overshoot: with 0.3 s of it, 1.2–1.6% of requests are answered 429. One-token buckets of
2–4 req/s paced at 97% of the rate, with Retry-After: 1 on every 429, over two minutes:
with ±10 ms of arrival jitter (the size measured on the benchmark fleet) the rate
averages 0.91–0.99 × the limit after 20 s, with at most 1.3% of requests answered 429;
with ±20 ms, 0.83–0.96 and at most 2%; with 2% of requests answered 503 whatever the rate,
0.84 on average. The real benchmark (``benchmarks/download_bench.py --hidden --hosts 24
--images 6000 --ranks 3 --max-limit 60 --flaky --black-holes 1 --refused 1``, whose
critical hosts allow 2–3 req/s) finished in 1.22× its lower bound with 1.1% of requests
answered 429 (1.5× and 1.1% before noise handling); the slow hosts' learned rates were
0.89–1.02× their limits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

Phase = Literal["slow_start", "steady", "settled"]


@dataclass(frozen=True)
class ThrottleSettings:
    """Every constant of the controller, each with the reason for its value."""

    # Where a host without a learned profile starts (config: default_rate_limit).
    start_rate: float = 3.0
    # Floor: even a host that always complains gets its URLs tried, slowly.
    min_rate: float = 0.2
    # Ceiling: min(max_rate_limit, robots.txt cap); no host needs more from one crawler.
    max_rate: float = 100.0
    # Settle at this share of the highest rate accepted without complaint (config).
    rate_multiplier: float = 1.0
    # Judge a clean window only after this long: a rate change needs a report or two
    # (workers report every 0.25–1 s) to show.
    feedback_interval: float = 0.5
    # After a cut, reports carry answers to the old rate for about one report period.
    hold_seconds: float = 0.5
    # Fewer answers than this say nothing about a clean host: keep accumulating.
    min_window_requests: int = 5
    # A complaining window needs this many answers before its share of OK answers measures
    # the host's limit; in smaller ones one 429 more or less moves it by 10% or more.
    measure_requests: int = 12
    # A measured ceiling gets this many standard deviations of counting noise on top, so a
    # dozen unlucky answers do not pin the rate well below the limit.
    noise_allowance: float = 0.5
    # Slow start multiplies by this per clean window. 2 (TCP) would reach a high limit a
    # second sooner but overshoots by up to twice as much: most 429s of a run are paid here.
    slow_start_factor: float = 1.5
    # Below settle_share × ceiling, close this share of the gap per clean window.
    recovery_gain: float = 0.25
    # Above it, each probe adds this share of the rate…
    probe_step: float = 0.03
    # …after this many clean answers (noise does not restart the count): a probe every
    # ~3 s at 60 req/s, every ~70 s at 3 req/s, where a single 429 is already 0.5% of a
    # minute's requests. Probing every N seconds at low rates was tried: each failed probe
    # costs a 429 and a Retry-After pause, and in the benchmark fleet that cost more than
    # the probes won (a low-rate host is kept near its limit by the rules below instead).
    probe_requests: int = 200
    # A probe answered by a complaint makes the next one wait twice as long, up to this
    # many probe periods: a rate just under the limit is not re-tested every period.
    max_probe_backoff: int = 4
    # Clean for a probe period at this multiple of the ceiling, the limit was raised (just
    # above it, a burst allowance can hide an overshoot for a whole probe period)…
    raised_limit: float = 1.1
    # …and where no limit is known, probes double while they pass, up to this step.
    max_probe_step: float = 0.25
    # A cut removes at least 15% (multiplicative decrease when the estimate is no lower)…
    decrease_factor: float = 0.85
    # …and at most three quarters, however bad one measured window looks…
    max_decrease: float = 0.25
    # …or 30% when the window was too small to measure anything.
    blind_decrease: float = 0.7
    # A clean window proves its rate only if it outlasts a burst allowance: one that kept
    # sending this long (Retry-After pauses excluded; with 5+ answers per window, that is
    # below ~3 req/s) makes its rate "passed". A complaint in a small window just above a
    # passed rate goes back to it instead of cutting blindly…
    pass_seconds: float = 1.5
    # …minus a jitter margin: it was clean for one window, and arrival jitter still hits
    # a one-token bucket there now and then.
    back_margin: float = 0.97
    # A lone complaint at a passed rate costs this cut: a real overshoot of a small bucket
    # complains again within a few answers and is cut further.
    mild_decrease: float = 0.95
    # Noise is a lone 429/503 at least this many answers after the previous complaint (a
    # real overshoot of a small bucket complains again within a few answers; and this
    # tolerates a 429 per 25 answers only until a few cuts have left the jitter zone)…
    noise_answers: int = 25
    # …and this long after the last increase (an overshoot of a bigger bucket shows within
    # a second or two, once its burst allowance is spent)…
    noise_hold: float = 2.0
    # …and costs only this cut, which also moves the rate out of the jitter zone, without
    # pulling the ceiling or max_ok_rate down to where it happened…
    noise_decrease: float = 0.97
    # …down to this share of the rate before the first of them: complaints that keep
    # coming 10% lower are not about the rate (a flaky server's 503s).
    noise_floor: float = 0.9
    # After a cut, run at this share of the measured limit: a drained bucket refills (at
    # 10% of the limit, 0.25 s of burst in 2.5 s) before the next probe reaches it again.
    settle_share: float = 0.9
    # Mean latency this many times the baseline means the server is queueing…
    latency_rise: float = 2.0
    # …if it is also this much higher (s): tens of ms come and go with the client's own load
    # (image decoding shares the rank's CPU), and say nothing about the server.
    latency_min_rise: float = 0.25
    # One slow window blocks that window's increase; only this many in a row end slow start,
    # so a single spike does not condemn a fast host to slow probing.
    latency_slow_windows: int = 2
    # Baseline smoothing: slow, so a lasting change becomes the new normal in ~20 windows.
    latency_smoothing: float = 0.05
    # Timeouts are a complaint only when they are this share of the window (and ≥ 2):
    # a stray slow image must not cut a host's rate.
    timeout_share: float = 0.1
    # 403s are a complaint when they suddenly make up this share (and ≥ forbidden_min) of a
    # window; a host that always forbids is refusing, not rate limiting.
    forbidden_share: float = 0.5
    forbidden_min: int = 5
    forbidden_smoothing: float = 0.3
    # rate_multiplier < 1 settles after this many complaints: a first measure is inflated
    # by the host's burst allowance, a second comes from a drained bucket.
    settle_after_complaints: int = 2

    def __post_init__(self) -> None:
        if not 0 < self.min_rate <= self.max_rate:
            raise ValueError("need 0 < min_rate <= max_rate")
        if not 0 < self.rate_multiplier <= 1:
            raise ValueError("rate_multiplier must be in (0, 1]")
        if not 0 < self.max_decrease <= self.blind_decrease <= self.decrease_factor < 1:
            raise ValueError("need 0 < max_decrease <= blind_decrease <= decrease_factor < 1")
        if self.slow_start_factor <= 1:
            raise ValueError("slow_start_factor must be above 1")
        if not self.blind_decrease <= self.mild_decrease <= self.noise_decrease < 1:
            raise ValueError("need blind_decrease <= mild_decrease <= noise_decrease < 1")
        if not 0 < self.noise_floor <= 1 or self.back_margin > 1:
            raise ValueError("need 0 < noise_floor <= 1 and back_margin <= 1")

    def clamp(self, rate: float) -> float:
        return min(self.max_rate, max(self.min_rate, rate))


@dataclass(frozen=True)
class Feedback:
    """What the workers observed on one host since their last report."""

    ok: int = 0
    rate_limited: int = 0  # 429, 420, 503 SlowDown: always about the rate
    server_errors: int = 0  # other 5xx: about the rate only when they come with load
    timeouts: int = 0
    forbidden: int = 0  # 403
    other_errors: int = 0
    latency_sum: float = 0.0
    latency_count: int = 0
    retry_after: float | None = None  # longest Retry-After of a rate-limited answer
    server_retry_after: float | None = None  # longest Retry-After of a 5xx

    @property
    def throttled(self) -> int:
        return self.rate_limited + self.server_errors

    @property
    def total(self) -> int:
        return (
            self.ok
            + self.rate_limited
            + self.server_errors
            + self.timeouts
            + self.forbidden
            + self.other_errors
        )

    @property
    def mean_latency(self) -> float | None:
        return self.latency_sum / self.latency_count if self.latency_count else None

    def merged(self, other: Feedback) -> Feedback:
        return Feedback(
            ok=self.ok + other.ok,
            rate_limited=self.rate_limited + other.rate_limited,
            server_errors=self.server_errors + other.server_errors,
            timeouts=self.timeouts + other.timeouts,
            forbidden=self.forbidden + other.forbidden,
            other_errors=self.other_errors + other.other_errors,
            latency_sum=self.latency_sum + other.latency_sum,
            latency_count=self.latency_count + other.latency_count,
            retry_after=_longest(self.retry_after, other.retry_after),
            server_retry_after=_longest(self.server_retry_after, other.server_retry_after),
        )


def _longest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


@dataclass
class _State:
    rate: float
    phase: Phase = "slow_start"
    max_ok_rate: float = 0.0
    ceiling: float = math.inf  # the host's limit as last measured while it complained
    # The ceiling rests on one lone complaint that ended slow start: recovery aims past it.
    weak_ceiling: bool = False
    complaints: int = 0
    clean_answers: int = 0  # clean answers since the rate last changed
    since_complaint: int = 0  # answers since the last complaint
    increased_at: float = -math.inf  # when the rate last went up
    passed_rate: float = 0.0  # the rate of the last clean window that lasted pass_seconds
    probes: int = 0  # probes passed since the last cut while no limit is known
    probing: bool = False  # a probe is out and no complaint has answered it yet
    noise_base: float = 0.0  # the rate before the first noise cut since the rate rose
    probe_failures: int = 0  # probes in a row that ended in a complaint
    hold_until: float = -math.inf
    paused_until: float = -math.inf
    latency_baseline: float | None = None
    slow_latency_windows: int = 0  # judged windows in a row with a risen latency
    forbidden_baseline: float = 0.0
    window: Feedback = field(default_factory=Feedback)
    window_start: float = 0.0


class HostThrottle:
    """The request-rate budget of one host (see the module docstring for the algorithm)."""

    def __init__(self, settings: ThrottleSettings, now: float) -> None:
        self._settings = settings
        self._state = _State(rate=settings.clamp(settings.start_rate), window_start=now)

    @property
    def rate(self) -> float:
        return self._state.rate

    @property
    def phase(self) -> Phase:
        return self._state.phase

    @property
    def max_ok_rate(self) -> float:
        return self._state.max_ok_rate

    @property
    def ceiling(self) -> float:
        """The host's limit as last measured while it complained; ``inf`` if unknown."""
        return self._state.ceiling

    def paused_until(self) -> float:
        """Start no request on the host before this time (Retry-After); -inf if not paused."""
        return self._state.paused_until

    def observe(self, feedback: Feedback, now: float) -> float:
        """Fold in one report; returns the host's new rate."""
        state = self._state
        state.window = state.window.merged(feedback)
        state.since_complaint += feedback.total
        retry_after = max(feedback.retry_after or 0.0, feedback.server_retry_after or 0.0)
        if retry_after > 0:
            state.paused_until = max(state.paused_until, now + retry_after)
        if retry_after > 0 or self._is_complaint(state.window):
            self._on_complaint(now)
        elif self._judgeable(now):
            self._on_clean(state.window, now)
            self._start_window(now)
        return state.rate

    # --- windows --------------------------------------------------------------------
    def _judgeable(self, now: float) -> bool:
        state, settings = self._state, self._settings
        enough = state.window.total >= settings.min_window_requests
        return enough and now - state.window_start >= settings.feedback_interval

    def _is_complaint(self, window: Feedback) -> bool:
        settings = self._settings
        if window.throttled:
            return True
        total = window.total
        if window.timeouts >= 2 and window.timeouts >= settings.timeout_share * total:
            return True
        return (
            window.forbidden >= settings.forbidden_min
            and window.forbidden >= settings.forbidden_share * total
            and self._state.forbidden_baseline < settings.forbidden_share / 2
        )

    def _is_lone(self, window: Feedback) -> bool:
        """One 429/503 and nothing else to complain about: noise, or a first sign."""
        settings = self._settings
        return (
            window.throttled == 1
            and (window.timeouts < 2 or window.timeouts < settings.timeout_share * window.total)
            and window.forbidden < settings.forbidden_min
        )

    def _start_window(self, now: float) -> None:
        state, settings = self._state, self._settings
        window = state.window
        if window.total:
            share = window.forbidden / window.total
            weight = settings.forbidden_smoothing
            state.forbidden_baseline += weight * (share - state.forbidden_baseline)
        state.window = Feedback()
        state.window_start = now

    # --- decreasing -----------------------------------------------------------------
    def _on_complaint(self, now: float) -> None:
        state, settings = self._state, self._settings
        noise = self._is_noise(state.window, now)
        stretch, state.since_complaint = state.since_complaint, 0
        if state.probing:
            state.probing = False  # the host complained before the next probe: it failed
            state.probe_failures += 1
        if state.window_start >= state.hold_until:
            if noise:
                self._noise_cut(now)
            else:
                self._cut(state.window, stretch, now)
        elif state.window.total >= settings.measure_requests:
            self._recheck_after_cut(state.window, now)
        elif now <= state.hold_until:
            return  # too few answers to tell the old rate's from the new one's: accumulate
        # Past the hold, an unmeasured window is dropped: if the new rate is still too
        # high, the next window says so.
        self._start_window(now)

    def _is_noise(self, window: Feedback, now: float) -> bool:
        """A lone 429/503 long after both the previous complaint and the last increase."""
        state, settings = self._state, self._settings
        # The approach to a weak ceiling raises the rate every window: waiting for a quiet
        # spell would turn a flaky server's next 503 into a real cut.
        held = state.weak_ceiling or now - state.increased_at >= settings.noise_hold
        return (
            state.phase != "slow_start"
            and self._is_lone(window)
            and state.since_complaint >= settings.noise_answers
            and held
        )

    def _noise_cut(self, now: float) -> None:
        state, settings = self._state, self._settings
        state.noise_base = state.noise_base or state.rate
        new_rate = state.rate * settings.noise_decrease
        # Settled well below the limit, or already cut for noise that keeps coming at a
        # lower rate: these complaints are not about the rate.
        if state.phase != "settled" and new_rate >= settings.noise_floor * state.noise_base:
            state.rate = settings.clamp(new_rate)
            if not state.weak_ceiling:
                # Recovery must not climb straight back to where the host complained.
                state.ceiling = min(state.ceiling, state.rate / settings.settle_share)
        state.probes = 0  # but the probe clock runs on: noise must not stop probing
        state.hold_until = now + settings.hold_seconds
        self._start_window(now)

    def _cut(self, window: Feedback, stretch: int, now: float) -> None:
        """A real complaint; ``stretch`` counts the answers since the previous one."""
        state, settings = self._state, self._settings
        rate = state.rate
        leaving_slow_start = state.phase == "slow_start"
        measured = window.total >= settings.measure_requests
        state.ceiling = min(state.ceiling, rate)
        if measured:
            new_rate = self._measured_target(window)
        elif leaving_slow_start:
            new_rate = rate / settings.slow_start_factor  # the previous rate passed
        elif rate * settings.blind_decrease <= state.passed_rate < rate:
            # At a small bucket, a window that passed is real evidence: go back to it.
            new_rate = settings.back_margin * state.passed_rate
        else:
            new_rate = rate * self._blind_share(window, stretch)
        # A lone complaint in a small window may be a flaky server's 503: rather than stay
        # below it, recovery approaches it and looks past it (see _steady_step, _on_clean).
        weak = leaving_slow_start and not measured
        self._cut_to(new_rate, now)
        state.weak_ceiling = weak and self._is_lone(window)

    def _measured_target(self, window: Feedback) -> float:
        """Above the limit a token bucket serves exactly its limit: settle below that."""
        state, settings = self._state, self._settings
        rate = state.rate
        state.ceiling = min(state.ceiling, rate * self._upper(window.ok) / window.total)
        target = settings.settle_share * rate * window.ok / window.total
        high = rate * settings.decrease_factor
        if state.phase == "slow_start":
            # A burst allowance inflates this first measure; the previous rate passed.
            high = min(high, rate / settings.slow_start_factor)
        return min(high, max(rate * settings.max_decrease, target))

    def _blind_share(self, window: Feedback, stretch: int) -> float:
        """The share of the rate to keep after a complaint in a window too small to measure.

        The limit fell, or arrival jitter matters at this rate. A lone complaint at a rate
        that passed a long window costs ``mild_decrease``; otherwise the share of good
        answers since the previous complaint says how often the host complains.
        """
        state, settings = self._state, self._settings
        if state.passed_rate >= state.rate and self._is_lone(window):
            return settings.mild_decrease
        share = 1 - (window.total - window.ok) / max(stretch, window.total, 1)
        return min(settings.decrease_factor, max(settings.blind_decrease, share))

    def _recheck_after_cut(self, window: Feedback, now: float) -> None:
        """Cut again only if the host serves clearly less than the rate just set.

        Answers to the old, higher rate are still arriving, so the share of 429s overstates
        the problem; the number of OK answers per second does not depend on when their
        requests were sent.
        """
        state, settings = self._state, self._settings
        duration = now - state.window_start
        if duration <= 0:
            return
        served = window.ok / duration
        if served >= state.rate * settings.decrease_factor:
            return
        # Above the limit, the bucket is drained and serves exactly its limit.
        state.ceiling = min(state.ceiling, state.rate, self._upper(window.ok) / duration)
        self._cut_to(max(state.rate * settings.max_decrease, settings.settle_share * served), now)

    def _upper(self, count: int) -> float:
        return count + self._settings.noise_allowance * math.sqrt(count)

    def _cut_to(self, new_rate: float, now: float) -> None:
        state, settings = self._state, self._settings
        new_rate = settings.clamp(new_rate)
        if state.phase == "settled":
            state.max_ok_rate = min(state.max_ok_rate, new_rate / settings.rate_multiplier)
        elif state.rate <= state.max_ok_rate:
            state.max_ok_rate = new_rate  # complained at a rate believed fine: it is stale
        if state.phase == "slow_start":
            state.phase = "steady"
        state.rate = new_rate
        state.weak_ceiling = False
        state.noise_base = 0.0
        state.complaints += 1
        state.clean_answers = 0
        state.probes = 0
        state.hold_until = now + settings.hold_seconds

    # --- increasing -----------------------------------------------------------------
    def _on_clean(self, window: Feedback, now: float) -> None:
        state, settings = self._state, self._settings
        latency_steady = self._latency_steady(window.mean_latency)
        if state.phase == "settled":
            return
        state.max_ok_rate = max(state.max_ok_rate, state.rate)
        if now - max(state.window_start, state.paused_until) >= settings.pass_seconds:
            state.passed_rate = state.rate
        if now <= state.hold_until:
            return
        if not latency_steady:
            if state.slow_latency_windows >= settings.latency_slow_windows:
                state.phase = "steady"
            state.clean_answers = 0
            return
        state.clean_answers += window.total
        if state.weak_ceiling and state.rate >= state.ceiling:
            # Clean at the rate whose lone complaint ended slow start: it was noise.
            state.weak_ceiling = False
            state.ceiling = math.inf
            state.phase = "slow_start"
        if state.phase == "slow_start":
            self._slow_start_step(now)
        else:
            self._steady_step(now)

    def _slow_start_step(self, now: float) -> None:
        state, settings = self._state, self._settings
        if state.rate < settings.max_rate:
            self._set_rate(state.rate * settings.slow_start_factor, now)
        elif settings.rate_multiplier < 1:
            self._settle(now)  # the host took everything we may send: the search is over
        else:
            state.phase = "steady"

    def _steady_step(self, now: float) -> None:
        state, settings = self._state, self._settings
        if settings.rate_multiplier < 1 and state.complaints >= settings.settle_after_complaints:
            self._settle(now)
            return
        recovered = settings.settle_share * state.ceiling if math.isfinite(state.ceiling) else 0
        if state.weak_ceiling:
            self._set_rate(state.rate * settings.raised_limit, now)
        elif state.rate < recovered:
            step = max(settings.recovery_gain * (recovered - state.rate), 0.01 * state.rate)
            self._set_rate(min(recovered, state.rate + step), now)
        elif state.clean_answers >= self._probe_period():
            self._probe(now)

    def _probe_period(self) -> int:
        state, settings = self._state, self._settings
        backoff = min(2**state.probe_failures, settings.max_probe_backoff)
        period = settings.probe_requests * backoff // 2**state.probes
        return max(settings.min_window_requests, period)

    def _probe(self, now: float) -> None:
        state, settings = self._state, self._settings
        if state.probing:
            state.probe_failures = 0  # the last probe passed a whole period
        if state.rate >= settings.raised_limit * state.ceiling:
            # A whole probe period clean well above it: the limit was raised.
            state.ceiling = math.inf
        step = min(settings.max_probe_step, settings.probe_step * 2**state.probes)
        if not math.isfinite(state.ceiling):
            # No known limit: each probe that passes makes the next one twice as big and
            # twice as soon (CUBIC-like), so a raised limit is found in a few probes.
            state.probes += 1
        self._set_rate(state.rate * (1 + step), now)
        state.probing = True

    def _settle(self, now: float) -> None:
        state, settings = self._state, self._settings
        state.phase = "settled"
        learned = min(state.max_ok_rate, state.ceiling) or state.rate
        self._set_rate(settings.rate_multiplier * learned, now)

    def _set_rate(self, rate: float, now: float) -> None:
        state = self._state
        rate = self._settings.clamp(rate)
        if rate > state.rate:
            state.increased_at = now
        if rate > state.noise_base:
            state.noise_base = 0.0
        state.rate = rate
        state.clean_answers = 0

    def _latency_steady(self, mean_latency: float | None) -> bool:
        state, settings = self._state, self._settings
        if mean_latency is None:
            return True
        if state.latency_baseline is None:
            state.latency_baseline = mean_latency
            return True
        baseline = state.latency_baseline
        threshold = max(settings.latency_rise * baseline, baseline + settings.latency_min_rise)
        steady = mean_latency <= threshold
        state.slow_latency_windows = 0 if steady else state.slow_latency_windows + 1
        # Quick to learn a lower baseline, slow to accept a higher one as the new normal.
        weight = 1.0 if mean_latency < state.latency_baseline else settings.latency_smoothing
        state.latency_baseline += weight * (mean_latency - state.latency_baseline)
        return steady

    # --- persistence ----------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The learned state worth keeping in the profiles table (plain JSON types)."""
        state = self._state
        return {
            "rate": state.rate,
            "max_ok_rate": state.max_ok_rate,
            "ceiling": state.ceiling if math.isfinite(state.ceiling) else None,
            "phase": state.phase,
            "complaints": state.complaints,
            "latency_baseline": state.latency_baseline,
        }

    @classmethod
    def restore(
        cls, settings: ThrottleSettings, snapshot: dict[str, Any], now: float
    ) -> HostThrottle:
        """Resume from a learned profile instead of slow-starting from ``start_rate``.

        Only ``rate`` is required; the other keys of :meth:`snapshot` refine the restart.
        """
        throttle = cls(settings, now)
        learned = float(snapshot.get("rate") or 0.0)
        if learned <= 0:
            return throttle
        state = throttle._state
        settled = snapshot.get("phase") == "settled" and settings.rate_multiplier < 1
        state.phase = "settled" if settled else "steady"
        state.rate = settings.clamp(learned)
        state.max_ok_rate = settings.clamp(float(snapshot.get("max_ok_rate") or learned))
        ceiling = snapshot.get("ceiling")
        state.ceiling = float(ceiling) if ceiling else math.inf
        state.complaints = int(snapshot.get("complaints") or 0)
        baseline = snapshot.get("latency_baseline")
        state.latency_baseline = float(baseline) if baseline else None
        return throttle
