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
* **Cut**: a token bucket serves exactly its limit once exceeded, so the rate served while
  complaining (rate × share of OK answers) measures the limit. The rate drops to
  ``settle_share`` × that, so a drained bucket refills, cutting at least
  ``1 - decrease_factor`` and at most ``1 - max_decrease`` of it. A window with fewer
  than ``measure_requests`` answers is noisy: it cuts at most ``1 - blind_decrease``, and
  when leaving slow start it goes back to the previous rate (which passed). The *ceiling*
  is the lowest rate the host complained at, lowered to the measured limit (plus half a
  standard deviation of counting noise) when the window was big enough.
* **Hold**: for ``hold_seconds`` after a cut, reports still carry answers to the old rate.
  There is no increase, and complaints are re-judged by OK answers per second (which do
  not depend on when the requests were sent): the rate is cut again only if the host
  serves clearly less than the new rate. Windows too small to judge are dropped.
* **Recover, then probe**: below ``settle_share`` × ceiling the rate closes
  ``recovery_gain`` of the gap per clean window: fast far from the ceiling, careful near
  it, where a burst allowance would hide an overshoot. Above it, every ``probe_requests``
  clean answers add ``probe_step``: rare, small crossings of the limit that cost a few
  429s. Clean for a probe period at ``raised_limit`` × ceiling, the limit was raised: the
  ceiling is forgotten, and while no limit is known each probe that passes doubles the
  next one's step and halves its wait (CUBIC-like), so a learned rate restored from the
  profiles table, or a raised limit, is found again in a few probes.
* **max_ok_rate** is the highest rate of a clean window. A complaint at or below it proves
  it stale and lowers it to the cut rate.
* **rate_multiplier** < 1: the search runs as above until the host has complained
  ``settle_after_complaints`` times (the second measure comes from a drained bucket) or
  ``max_rate`` passed cleanly, then the rate *settles* at ``rate_multiplier`` ×
  min(max_ok_rate, ceiling) and never rises again; complaints still cut it.
* **Latency**: a window whose mean latency exceeds ``latency_rise`` × the smoothed baseline
  blocks increases (the server is queueing) and ends slow start.
* **Retry-After** pauses the whole host until ``now + retry_after`` (see
  :meth:`HostThrottle.paused_until`) and counts as a complaint.

The rate always stays within ``[min_rate, max_rate]``.

Measured in ``distdl.core.host_sim`` (token buckets of 2–60 req/s with 0.25 s of burst,
reports every 0.25–0.5 s, start at 3 req/s, see ``tests/unit/test_throttle.py``): the rate
first reaches [0.8, 1.0] × the limit within 9 s and averages 0.95–0.99 × the limit after
that; 0.6% (reports every 0.25 s) to 0.8% (every 0.5 s) of all requests are answered 429,
most of them while leaving slow start; 60 s worth of URLs finish within 1.14× the ideal
time. A delay before a new rate reaches the senders lengthens every overshoot: with 0.3 s
of it, about 1.3% of requests are answered 429.
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
    # …after this many clean answers: a probe every ~3 s at 60 req/s, every ~70 s at
    # 3 req/s, where a single 429 is already 0.5% of a minute's requests.
    probe_requests: int = 200
    # Clean for a probe period at this multiple of the ceiling, the limit was raised (just
    # above it, a burst allowance can hide an overshoot for a whole probe period)…
    raised_limit: float = 1.1
    # …and where no limit is known, probes double while they pass, up to this step.
    max_probe_step: float = 0.25
    # A cut removes at least 15% (multiplicative decrease when the estimate is no lower)…
    decrease_factor: float = 0.85
    # …and at most three quarters, however bad one measured window looks…
    max_decrease: float = 0.25
    # …or half (TCP's factor) when the window was too small to measure anything.
    blind_decrease: float = 0.7
    # After a cut, run at this share of the measured limit: a drained bucket refills (at
    # 10% of the limit, 0.25 s of burst in 2.5 s) before the next probe reaches it again.
    settle_share: float = 0.9
    # Mean latency this many times the baseline means the server is queueing.
    latency_rise: float = 2.0
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

    def clamp(self, rate: float) -> float:
        return min(self.max_rate, max(self.min_rate, rate))


@dataclass(frozen=True)
class Feedback:
    """What the workers observed on one host since their last report."""

    ok: int = 0
    throttled: int = 0  # 429 and 503
    timeouts: int = 0
    forbidden: int = 0  # 403
    other_errors: int = 0
    latency_sum: float = 0.0
    latency_count: int = 0
    retry_after: float | None = None  # longest Retry-After seen (already parsed, capped)

    @property
    def total(self) -> int:
        return self.ok + self.throttled + self.timeouts + self.forbidden + self.other_errors

    @property
    def mean_latency(self) -> float | None:
        return self.latency_sum / self.latency_count if self.latency_count else None

    def merged(self, other: Feedback) -> Feedback:
        retry_after = self.retry_after
        if other.retry_after is not None:
            retry_after = max(retry_after or 0.0, other.retry_after)
        return Feedback(
            ok=self.ok + other.ok,
            throttled=self.throttled + other.throttled,
            timeouts=self.timeouts + other.timeouts,
            forbidden=self.forbidden + other.forbidden,
            other_errors=self.other_errors + other.other_errors,
            latency_sum=self.latency_sum + other.latency_sum,
            latency_count=self.latency_count + other.latency_count,
            retry_after=retry_after,
        )


@dataclass
class _State:
    rate: float
    phase: Phase = "slow_start"
    max_ok_rate: float = 0.0
    ceiling: float = math.inf  # the host's limit as last measured while it complained
    complaints: int = 0
    clean_answers: int = 0  # clean answers since the rate last changed
    probes: int = 0  # probes passed since the last cut while no limit is known
    hold_until: float = -math.inf
    paused_until: float = -math.inf
    latency_baseline: float | None = None
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
        retry_after = feedback.retry_after or 0.0
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
        if state.window_start >= state.hold_until:
            self._cut(state.window, now)
        elif state.window.total >= settings.measure_requests:
            self._recheck_after_cut(state.window, now)
        elif now <= state.hold_until:
            return  # too few answers to tell the old rate's from the new one's: accumulate
        # Past the hold, an unmeasured window is dropped: if the new rate is still too
        # high, the next window says so.
        self._start_window(now)

    def _cut(self, window: Feedback, now: float) -> None:
        state, settings = self._state, self._settings
        rate = state.rate
        leaving_slow_start = state.phase == "slow_start"
        state.ceiling = min(state.ceiling, rate)
        measured = window.total >= settings.measure_requests
        ok_share = window.ok / window.total if window.total else 1.0
        target = settings.settle_share * rate * ok_share
        if measured:
            state.ceiling = min(state.ceiling, rate * self._upper(window.ok) / window.total)
        elif leaving_slow_start:
            target = rate / settings.slow_start_factor  # too few answers; the last rate passed
        floor = settings.max_decrease if measured else settings.blind_decrease
        high = rate * settings.decrease_factor
        if leaving_slow_start:
            # A burst allowance inflates this first measure; the previous rate passed.
            high = min(high, rate / settings.slow_start_factor)
        self._cut_to(min(high, max(rate * floor, target)), now)

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
        state.complaints += 1
        state.clean_answers = 0
        state.probes = 0
        state.hold_until = now + settings.hold_seconds

    # --- increasing -----------------------------------------------------------------
    def _on_clean(self, window: Feedback, now: float) -> None:
        state = self._state
        latency_steady = self._latency_steady(window.mean_latency)
        if state.phase == "settled":
            return
        state.max_ok_rate = max(state.max_ok_rate, state.rate)
        if now <= state.hold_until:
            return
        if not latency_steady:
            state.phase = "steady"
            state.clean_answers = 0
            return
        state.clean_answers += window.total
        if state.phase == "slow_start":
            self._slow_start_step()
        else:
            self._steady_step()

    def _slow_start_step(self) -> None:
        state, settings = self._state, self._settings
        if state.rate < settings.max_rate:
            self._set_rate(state.rate * settings.slow_start_factor)
        elif settings.rate_multiplier < 1:
            self._settle()  # the host took everything we may send: the search is over
        else:
            state.phase = "steady"

    def _steady_step(self) -> None:
        state, settings = self._state, self._settings
        if settings.rate_multiplier < 1 and state.complaints >= settings.settle_after_complaints:
            self._settle()
            return
        recovered = settings.settle_share * state.ceiling if math.isfinite(state.ceiling) else 0
        if state.rate < recovered:
            step = max(settings.recovery_gain * (recovered - state.rate), 0.01 * state.rate)
            self._set_rate(min(recovered, state.rate + step))
        elif state.clean_answers >= self._probe_period():
            self._probe()

    def _probe_period(self) -> int:
        settings = self._settings
        return max(settings.min_window_requests, settings.probe_requests // 2**self._state.probes)

    def _probe(self) -> None:
        state, settings = self._state, self._settings
        if state.rate >= settings.raised_limit * state.ceiling:
            # A whole probe period clean well above it: the limit was raised.
            state.ceiling = math.inf
        step = min(settings.max_probe_step, settings.probe_step * 2**state.probes)
        if not math.isfinite(state.ceiling):
            # No known limit: each probe that passes makes the next one twice as big and
            # twice as soon (CUBIC-like), so a raised limit is found in a few probes.
            state.probes += 1
        self._set_rate(state.rate * (1 + step))

    def _settle(self) -> None:
        state, settings = self._state, self._settings
        state.phase = "settled"
        learned = min(state.max_ok_rate, state.ceiling) or state.rate
        self._set_rate(settings.rate_multiplier * learned)

    def _set_rate(self, rate: float) -> None:
        self._state.rate = self._settings.clamp(rate)
        self._state.clean_answers = 0

    def _latency_steady(self, mean_latency: float | None) -> bool:
        state, settings = self._state, self._settings
        if mean_latency is None:
            return True
        if state.latency_baseline is None:
            state.latency_baseline = mean_latency
            return True
        steady = mean_latency <= settings.latency_rise * state.latency_baseline
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
