"""Adaptive per-host request rate: TCP-like slow start, then AIMD with a memory.

Rank 0 owns one :class:`HostThrottle` per host. Workers report what they saw on the host
(:class:`Feedback`) every 0.25–1 s; :meth:`HostThrottle.observe` merges the reports into a
*window* and, when the window can be judged, moves the host's rate (req/s), which rank 0
then splits among the ranks leasing the host. Time is an argument: no clock, no I/O.

The algorithm
-------------
* **Complaint**: any 429/503 in the window, a Retry-After, a share of timeouts, or a sudden
  burst of 403s (some CDNs forbid instead of throttling). A complaint is acted on at once,
  whatever the window size: the safe reaction must not wait for statistics.
* **Slow start**: while the host answers cleanly and latency stays steady, the rate doubles
  every judged window (at least ``min_window_requests`` answers over at least
  ``feedback_interval`` seconds), so 3 → 60 req/s takes about five windows.
* **Cut**: on a complaint, the rate the host actually *served* during the window
  (rate × share of OK answers) estimates its limit; a token bucket serves exactly its limit
  once we exceed it. The rate drops to ``settle_share`` × that estimate, but by at least
  ``1 - decrease_factor`` and at most ``1 - max_decrease`` of the current rate (a burst
  allowance inflates the first estimate; a few answers make a noisy one). The estimate
  becomes ``max_ok_rate``, the highest rate believed to pass without complaint.
* **Hold**: for ``feedback_interval`` after a cut, answers to requests sent at the old rate
  are still arriving. No increase, and a complaint cuts again only if even the old rate's
  served share could not sustain the new rate.
* **Recover and probe**: clean windows raise ``max_ok_rate`` to the rate they ran at. Below
  ``rate_multiplier × max_ok_rate`` the rate climbs back quickly (it was accepted before);
  with ``rate_multiplier`` 1 it then probes above it by ``probe_step`` every
  ``probe_windows`` clean windows (additive increase), so a crossed limit costs a handful
  of 429s, and a raised limit is found again.
* **Settle** (``rate_multiplier`` < 1): the controller searches like above until the host
  has complained twice (the second estimate comes from a drained bucket, so it is sound) or
  ``max_rate`` passed cleanly, then stays at ``rate_multiplier × max_ok_rate`` without
  probing; later complaints still lower it.
* **Latency**: a window whose mean latency exceeds ``latency_rise`` × the smoothed baseline
  blocks increases (queues are growing on the server) and ends slow start.
* **Retry-After** pauses the whole host until ``now + retry_after`` (see
  :meth:`HostThrottle.paused_until`) and counts as a complaint.

The rate always stays within ``[min_rate, max_rate]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
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
    # How long a rate change takes to show in reports (worker reports every 0.25–1 s plus
    # response latency): judge windows no shorter than this, hold this long after a cut.
    feedback_interval: float = 0.5
    # Fewer answers than this say nothing about a clean host: keep accumulating.
    min_window_requests: int = 5
    # Slow start multiplies by this per clean window: 3 → 96 req/s in five windows.
    slow_start_factor: float = 2.0
    # Below the known-good rate, climb back this fast: it was accepted before.
    recovery_factor: float = 1.5
    # Probing above the known-good rate adds this share of it per probe: a crossed limit
    # drains a burst allowance slowly and then costs a few 429s, not dozens.
    probe_step: float = 0.03
    # Clean windows at the plateau before each probe (a burst allowance hides an
    # overshoot for a while; the wait also keeps 429 episodes rare).
    probe_windows: int = 2
    # A cut removes at least 15% (multiplicative decrease when the estimate is no lower)…
    decrease_factor: float = 0.85
    # …and at most half (TCP's factor), however bad one noisy window looks.
    max_decrease: float = 0.5
    # After a cut, run at this share of the rate the host served while complaining, so a
    # drained bucket refills and the next probe has room.
    settle_share: float = 0.9
    # Mean latency this many times the baseline means the server is queueing.
    latency_rise: float = 2.0
    # Baseline smoothing: slow, so a lasting change becomes the new normal in ~20 windows.
    latency_smoothing: float = 0.05
    # Timeouts are a complaint only when they are this share of the window (and ≥ 2):
    # a stray slow image must not halve a host's rate.
    timeout_share: float = 0.1
    # 403s are a complaint when they suddenly make up this share (and ≥ forbidden_min) of a
    # window; a host that always forbids is not rate limiting.
    forbidden_share: float = 0.5
    forbidden_min: int = 5
    forbidden_smoothing: float = 0.3
    # rate_multiplier < 1 settles after this many complaints (the 2nd estimate is sound).
    settle_after_complaints: int = 2

    def __post_init__(self) -> None:
        if not 0 < self.min_rate <= self.max_rate:
            raise ValueError("need 0 < min_rate <= max_rate")
        if not 0 < self.rate_multiplier <= 1:
            raise ValueError("rate_multiplier must be in (0, 1]")
        if not 0 < self.max_decrease <= self.decrease_factor < 1:
            raise ValueError("need 0 < max_decrease <= decrease_factor < 1")

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
    complaints: int = 0
    clean_streak: int = 0  # clean judged windows at or above the plateau
    cut_from: float = 0.0  # the rate before the last cut
    hold_until: float = float("-inf")
    paused_until: float = float("-inf")
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

    def paused_until(self) -> float:
        """Start no request on the host before this time (Retry-After); -inf when not paused."""
        return self._state.paused_until

    def observe(self, feedback: Feedback, now: float) -> float:
        """Fold in one report; returns the host's new rate."""
        state = self._state
        state.window = state.window.merged(feedback)
        if feedback.retry_after is not None and feedback.retry_after > 0:
            state.paused_until = max(state.paused_until, now + feedback.retry_after)
        if self._is_complaint(state.window, feedback):
            self._on_complaint(state.window, now)
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

    def _is_complaint(self, window: Feedback, latest: Feedback) -> bool:
        settings = self._settings
        if window.throttled or (latest.retry_after is not None and latest.retry_after > 0):
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
        ok_share = window.ok / window.total if window.total else 0.0
        sized = window.total >= settings.min_window_requests
        if now < state.hold_until:
            # Mostly answers to the old rate: cut again only if even that rate's served
            # share cannot carry the new one.
            if not sized or state.cut_from * ok_share >= state.rate:
                return
            estimate = settings.settle_share * state.cut_from * ok_share
        elif sized:
            estimate = settings.settle_share * state.rate * ok_share
        else:
            estimate = state.rate * settings.decrease_factor
        low = state.rate * settings.max_decrease
        high = state.rate * settings.decrease_factor
        new_rate = settings.clamp(min(high, max(low, estimate)))
        state.cut_from = state.rate
        state.complaints += 1
        state.clean_streak = 0
        state.hold_until = now + settings.feedback_interval
        if state.phase == "settled":
            state.max_ok_rate = new_rate / settings.rate_multiplier
        else:
            state.max_ok_rate = new_rate
            state.phase = "settled" if self._ready_to_settle() else "steady"
        state.rate = settings.clamp(self._target())

    def _ready_to_settle(self) -> bool:
        settings = self._settings
        return (
            settings.rate_multiplier < 1
            and self._state.complaints >= settings.settle_after_complaints
        )

    def _target(self) -> float:
        """Where the rate settles: the multiplier applies once the search is over."""
        state = self._state
        if state.phase == "settled":
            return self._settings.rate_multiplier * state.max_ok_rate
        return state.max_ok_rate

    # --- increasing -----------------------------------------------------------------
    def _on_clean(self, window: Feedback, now: float) -> None:
        state, settings = self._state, self._settings
        latency_ok = self._latency_steady(window.mean_latency)
        if state.phase != "settled":
            state.max_ok_rate = max(state.max_ok_rate, state.rate)
        if now < state.hold_until:
            return
        if not latency_ok:
            if state.phase == "slow_start":
                state.phase = "steady"
            state.clean_streak = 0
            return
        if state.phase == "slow_start":
            self._slow_start_step()
        elif state.phase == "steady":
            self._steady_step()
        else:
            state.rate = settings.clamp(self._target())

    def _slow_start_step(self) -> None:
        state, settings = self._state, self._settings
        if state.rate >= settings.max_rate:
            # The host took everything we may send: the search is over.
            state.phase = "settled" if settings.rate_multiplier < 1 else "steady"
            state.rate = settings.clamp(self._target())
            return
        state.rate = settings.clamp(state.rate * settings.slow_start_factor)

    def _steady_step(self) -> None:
        state, settings = self._state, self._settings
        target = self._target()
        if state.rate < target * 0.999:
            state.rate = settings.clamp(min(target, state.rate * settings.recovery_factor))
            state.clean_streak = 0
            return
        state.clean_streak += 1
        if state.clean_streak >= settings.probe_windows:
            state.clean_streak = 0
            state.rate = settings.clamp(state.rate + settings.probe_step * state.max_ok_rate)

    def _latency_steady(self, mean_latency: float | None) -> bool:
        state, settings = self._state, self._settings
        if mean_latency is None:
            return True
        if state.latency_baseline is None:
            state.latency_baseline = mean_latency
            return True
        steady = mean_latency <= settings.latency_rise * state.latency_baseline
        # Fast to learn a lower baseline, slow to accept a higher one as the new normal.
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
            "phase": state.phase,
            "complaints": state.complaints,
            "latency_baseline": state.latency_baseline,
        }

    @classmethod
    def restore(
        cls, settings: ThrottleSettings, snapshot: dict[str, Any], now: float
    ) -> HostThrottle:
        """Resume from a learned rate instead of ``start_rate``; no slow start from 3."""
        learned = float(snapshot.get("max_ok_rate") or snapshot.get("rate") or 0.0)
        if learned <= 0:
            return cls(settings, now)
        throttle = cls(replace(settings), now)
        state = throttle._state
        phase = snapshot.get("phase")
        state.phase = phase if phase in _PHASES and phase != "slow_start" else "steady"
        if state.phase == "settled" and settings.rate_multiplier >= 1:
            state.phase = "steady"
        state.max_ok_rate = settings.clamp(learned)
        state.complaints = int(snapshot.get("complaints") or 0)
        baseline = snapshot.get("latency_baseline")
        state.latency_baseline = float(baseline) if baseline else None
        state.rate = settings.clamp(throttle._target())
        return throttle
