"""Adaptive per-host request rate: TCP-like slow start, then AIMD with a memory.

Rank 0 owns one :class:`HostThrottle` per host. Workers report what they saw on the host
(:class:`Feedback`) every 0.25–1 s; :meth:`HostThrottle.observe` merges the reports into a
*window* and, when something can be concluded, moves the host's rate (req/s), which rank 0
then splits among the ranks leasing the host. Time is an argument: no clock, no I/O.

The algorithm
-------------
* **Complaint**: any 429/503 in the window, a Retry-After, a share of timeouts, or a sudden
  burst of 403s (some CDNs forbid instead of throttling). A complaint is acted on at once,
  whatever the window's size: the safe reaction must not wait for statistics.
* **Slow start**: while the host answers cleanly and latency stays steady, the rate doubles
  every *judged* window (at least ``min_window_requests`` answers over at least
  ``feedback_interval`` seconds), so 3 → 60 req/s takes five windows, a few seconds.
* **Cut**: a token bucket serves exactly its limit once we exceed it, so the rate the host
  *served* while complaining (rate × share of OK answers) estimates its limit: the
  *ceiling*. The rate drops to ``settle_share`` × ceiling, so a drained bucket refills,
  but by no less than ``1 - decrease_factor`` and no more than ``1 - max_decrease`` of the
  current rate (a burst allowance inflates a first estimate; the bounds keep one odd
  window from doing much harm). A window with too few answers measures nothing: the
  ceiling becomes the rate we complained at (or stays lower) and the cut is
  ``blind_decrease``.
* **Hold**: for ``feedback_interval`` after a cut, answers to requests sent at the old rate
  are still arriving: no increase, and a complaint cuts again only if even the old rate's
  served share could not carry the new rate.
* **Recover and probe**: below ``settle_share`` × ceiling the rate climbs back by
  ``recovery_factor`` per clean window (the host served that much). Above it, every
  ``probe_requests`` clean answers add ``probe_step`` (additive increase): a crossed limit
  first drains the host's burst allowance and then costs a handful of 429s, rarely, and a
  raised limit is found again.
* **max_ok_rate** is the highest rate of a clean window. A complaint at or below it proves
  it stale and lowers it to the cut rate; a complaint above it (a failed probe) does not.
* **rate_multiplier** < 1: the controller searches like above until the host has
  complained ``settle_after_complaints`` times and the rate has held a plateau (or
  ``max_rate`` passed cleanly), then stays at ``rate_multiplier × max_ok_rate`` without
  probing. Later complaints still lower it.
* **Latency**: a window whose mean latency exceeds ``latency_rise`` × the smoothed baseline
  blocks increases (queues are growing on the server) and ends slow start.
* **Retry-After** pauses the whole host until ``now + retry_after`` (see
  :meth:`HostThrottle.paused_until`) and counts as a complaint.

The rate always stays within ``[min_rate, max_rate]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

Phase = Literal["slow_start", "steady", "settled"]
_PHASES: tuple[Phase, ...] = ("slow_start", "steady", "settled")


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
    # After a cut, reports still carry answers to the old rate for up to one report period
    # (1 s) plus the latency: hold increases and discount complaints this long.
    hold_seconds: float = 0.5
    # Fewer answers than this say nothing about a clean host: keep accumulating.
    min_window_requests: int = 5
    # A complaining window needs this many answers before its share of OK answers is
    # trusted as a measure of the host's limit (at 5 answers one 429 more or less moves the
    # estimate by 20%); smaller windows get a fixed cut instead.
    measure_requests: int = 12
    # Slow start multiplies by this per clean window: 3 → 96 req/s in five windows.
    slow_start_factor: float = 1.5
    # Below settle_share × ceiling, add this share per clean window (additive increase
    # per round trip, as TCP's congestion avoidance): a crossing costs a 5% overshoot.
    recovery_step: float = 0.05
    recovery_gain: float = 0.25
    ucb: float = 0.5
    # Probing above it adds this share per probe: a crossed limit drains a burst
    # allowance slowly, then costs a few 429s, not dozens.
    probe_step: float = 0.03
    # Clean answers between probes: 429 episodes stay rare for every host size (a probe
    # every ~2 s at 60 req/s, every ~50 s at 2 req/s) and a burst allowance that hides an
    # overshoot has time to run dry before the next probe.
    probe_requests: int = 200
    # Each probe that passes doubles the next one, up to this: a limit far above the
    # current rate (or one that was raised) is found in a few probes, CUBIC-like.
    max_probe_step: float = 0.03
    # A cut removes at least 15% (multiplicative decrease when the estimate is no lower)…
    decrease_factor: float = 0.85
    # …and at most three quarters, however bad one measured window looks…
    max_decrease: float = 0.25
    # …and exactly half (TCP's factor) when the window was too small to measure anything.
    blind_decrease: float = 0.5
    # After a cut, run at this share of the ceiling, so a drained bucket refills (at 10% of
    # the limit: 0.25 s of burst in 2.5 s) before the next probe reaches the limit again.
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
    # rate_multiplier < 1 settles after this many complaints: a first estimate is inflated
    # by the host's burst allowance, a second comes from a drained bucket.
    settle_after_complaints: int = 2

    def __post_init__(self) -> None:
        if not 0 < self.min_rate <= self.max_rate:
            raise ValueError("need 0 < min_rate <= max_rate")
        if not 0 < self.rate_multiplier <= 1:
            raise ValueError("rate_multiplier must be in (0, 1]")
        if not 0 < self.max_decrease <= self.blind_decrease <= self.decrease_factor < 1:
            raise ValueError("need 0 < max_decrease <= blind_decrease <= decrease_factor < 1")

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


_UCB = [1.0]


def _upper(count: int) -> float:
    """``count`` plus one standard deviation of counting noise: a ceiling measured from a
    dozen answers must not pin the rate 20% below the limit for good."""
    return count + _UCB[0] * math.sqrt(count)


@dataclass
class _State:
    rate: float
    phase: Phase = "slow_start"
    max_ok_rate: float = 0.0
    ceiling: float = math.inf  # the host's limit as last measured while it complained
    complaints: int = 0
    clean_answers: int = 0  # clean answers since the rate last changed
    probe_step: float = 0.0  # grows with each probe that passed, back to the start on a cut
    cut_from: float = 0.0  # the rate before the last cut
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
        _UCB[0] = settings.ucb
        self._state = _State(
            rate=settings.clamp(settings.start_rate),
            window_start=now,
            probe_step=settings.probe_step,
        )

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
        """The limit measured at the last complaint; ``inf`` before the first one."""
        return self._state.ceiling

    def paused_until(self) -> float:
        """Start no request on the host before this time (Retry-After); -inf if not paused."""
        return self._state.paused_until

    def observe(self, feedback: Feedback, now: float) -> float:
        """Fold in one report; returns the host's new rate."""
        state = self._state
        measure = self._settings.measure_requests
        state.window = state.window.merged(feedback)
        retry_after = feedback.retry_after is not None and feedback.retry_after > 0
        if retry_after:
            state.paused_until = max(state.paused_until, now + (feedback.retry_after or 0.0))
        if retry_after or self._is_complaint(state.window):
            if state.window_start >= state.hold_until:
                self._on_complaint(state.window, now)
                self._start_window(now)
            elif state.window.total >= measure:
                self._recheck_after_cut(state.window, now)
                self._start_window(now)
            elif now > state.hold_until:
                # Too few answers to tell the old rate's from the new one's: if the new rate
                # is still too high, the next window says so.
                self._start_window(now)
        elif self._judgeable(now):
            self._on_clean(state.window, now)
            self._start_window(now)
        return state.rate

    # --- judging a window -----------------------------------------------------------
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
    def _on_complaint(self, window: Feedback, now: float) -> None:
        state, settings = self._state, self._settings
        measured = window.total >= settings.measure_requests
        state.ceiling = min(state.ceiling, state.rate)
        if measured:
            served = state.rate * window.ok / window.total
            state.ceiling = min(state.ceiling, state.rate * _upper(window.ok) / window.total)
            target = settings.settle_share * served
        elif state.phase == "slow_start":
            target = state.rate / settings.slow_start_factor  # the last rate that passed
        else:
            target = settings.settle_share * state.ceiling
        floor = settings.max_decrease if measured else settings.blind_decrease
        low, high = state.rate * floor, state.rate * settings.decrease_factor
        if state.phase == "slow_start":
            # The host's burst allowance inflates this first estimate; the previous rate
            # passed without complaint.
            high = min(high, state.rate / settings.slow_start_factor)
        self._cut_to(settings.clamp(min(high, max(low, target))), now)

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
        # We are above the limit, so the bucket is drained and serves exactly its limit.
        state.ceiling = min(state.ceiling, state.rate, _upper(window.ok) / duration)
        low = state.rate * settings.max_decrease
        self._cut_to(settings.clamp(max(low, settings.settle_share * served)), now)

    def _cut_to(self, new_rate: float, now: float) -> None:
        state, settings = self._state, self._settings
        if state.phase == "settled":
            state.max_ok_rate = min(state.max_ok_rate, new_rate / settings.rate_multiplier)
        elif state.rate <= state.max_ok_rate or state.phase == "slow_start":
            state.max_ok_rate = min(state.max_ok_rate, new_rate)
        if state.phase == "slow_start":
            state.phase = "steady"
        state.cut_from = state.rate
        state.rate = new_rate
        state.complaints += 1
        state.clean_answers = 0
        state.probe_step = settings.probe_step
        state.hold_until = now + settings.hold_seconds

    # --- increasing -----------------------------------------------------------------
    def _on_clean(self, window: Feedback, now: float) -> None:
        state = self._state
        latency_steady = self._latency_steady(window.mean_latency)
        if state.phase != "settled":
            state.max_ok_rate = max(state.max_ok_rate, state.rate)
        if now <= state.hold_until:
            return
        state.clean_answers += window.total
        if not latency_steady:
            if state.phase == "slow_start":
                state.phase = "steady"
            state.clean_answers = 0
        elif state.phase == "slow_start":
            self._slow_start_step()
        elif state.phase == "steady":
            self._steady_step()

    def _slow_start_step(self) -> None:
        state, settings = self._state, self._settings
        if state.rate >= settings.max_rate:
            # The host took everything we may send: the search is over.
            self._settle_or(lambda: None, force=True)
            return
        self._set_rate(state.rate * settings.slow_start_factor)

    def _steady_step(self) -> None:
        state, settings = self._state, self._settings
        recovered = settings.settle_share * state.ceiling if math.isfinite(state.ceiling) else 0
        if state.rate < recovered:
            step = max((recovered - state.rate) * settings.recovery_gain, state.rate * 0.01)
            self._set_rate(min(recovered, state.rate + step))
        elif state.clean_answers >= settings.probe_requests:
            if state.rate > state.ceiling:
                state.ceiling = math.inf  # a long clean run above it: the limit has risen
            step = state.probe_step
            state.probe_step = min(settings.max_probe_step, step * 2)
            self._settle_or(lambda: self._set_rate(state.rate * (1 + step)))

    def _settle_or(self, probe: Any, force: bool = False) -> None:
        state, settings = self._state, self._settings
        enough = state.complaints >= settings.settle_after_complaints
        if settings.rate_multiplier < 1 and (force or enough):
            state.phase = "settled"
            self._set_rate(settings.rate_multiplier * state.max_ok_rate)
        else:
            state.phase = "steady"
            probe()

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
        """Resume from a learned profile instead of slow-starting from ``start_rate``."""
        throttle = cls(settings, now)
        learned = float(snapshot.get("rate") or 0.0)
        if learned <= 0:
            return throttle
        state = throttle._state
        state.phase = "steady"
        if snapshot.get("phase") == "settled" and settings.rate_multiplier < 1:
            state.phase = "settled"
        state.rate = settings.clamp(learned)
        state.max_ok_rate = settings.clamp(float(snapshot.get("max_ok_rate") or learned))
        ceiling = snapshot.get("ceiling")
        state.ceiling = float(ceiling) if ceiling else math.inf
        state.complaints = int(snapshot.get("complaints") or 0)
        baseline = snapshot.get("latency_baseline")
        state.latency_baseline = float(baseline) if baseline else None
        return throttle
