"""Adaptive per-host request rate, built from what servers do.

Rank 0 owns one :class:`HostThrottle` per host. Workers report what they saw on the host
(:class:`Feedback`) every 0.25 s (clean answers once a second, except for 1 s after the
host's rate changed); :meth:`HostThrottle.observe` folds the reports into a *window* and,
once the window says something, moves the host's rate (req/s), which rank 0 splits among
the ranks leasing the host. Time is an argument: no clock, no I/O.

What servers do
---------------
* A rate limit is a token bucket (nginx ``limit_req``, CDN rules): below the limit every
  request passes; above it the host serves exactly its limit and refuses the rest with 429
  (or 420, 503 ``SlowDown``, or a burst of 403). A burst allowance hides an overshoot for
  a while. So a refusal is always about the rate, and the rate *served* while refusing
  measures the limit.
* Many back ends fail a fixed share of requests whatever the rate (a flaky disk behind a
  good proxy): those 5xx and timeouts say nothing about the rate, and slowing down only
  makes the run longer. An overloaded back end fails *more* as it is pushed: its share of
  5xx jumps when the rate crosses its knee. The two are told apart by statistics: the
  controller keeps the share of failures the host showed at each rate band, and a share
  improbably higher than at lower rates (a binomial tail below ``load_evidence``) is load.

The rules
---------
Each rule: *signal in a window* → reaction. *Why.*

1. Refused (429, 420, 503 SlowDown; a burst of 403 — a measured window with improbably
   many for the host, at least ``forbidden_min``), in a window of ``measure_answers`` or
   with several refusals → cut to ``settle_share`` × the rate served (by ``decrease`` at
   least, ``max_cut`` at most); ceiling := what it served. *A drained bucket serves its
   limit; just under it, the bucket refills.*
2. Refused, one answer after ``quiet_answers`` clean ones, the host not paused → cut by
   ``mild_decrease``, no hold. *Arrival jitter at a one-token bucket; a real overshoot
   complains again at once. A refusal that paused the host cost it the pause: never
   jitter.*
3. Refused, one answer otherwise → again soon after a cut: ``settle_share`` × what the
   host served since the run of refusals began (Retry-After pauses excluded); else back to
   the highest rate that passed (or by ``decrease``), one step further when leaving slow
   start, never below the safe start if that passed; ceiling := the refused rate.
   *Between a rate that passed and one that did not, the limit; a rate that passed only
   for a slow-start window may have passed on a burst allowance.*
4. Refused with Retry-After → the URL waits for it, always; the whole host pauses for it,
   besides 1–3, when the refusals cluster (:mod:`distdl.core.refusal_spacing`: several
   at once, or again within ``quiet_answers``), and for as long again after such a pause
   no window is judged clean. *Clustered refusals are the host saying it is overloaded;
   a lone one is a request that came early, and pausing the host for it costs a whole
   Retry-After of its limit. During a pause the bucket refills, and a refill hides an
   overshoot until it is spent: a rate that passes on it would be raised, refused, and
   paused again.*
5. 5xx/timeouts improbably many (binomial tail < ``load_evidence``) for the share the
   host showed at lower rates (:mod:`distdl.core.failure_bands`) → cut by ``decrease``;
   ceiling := that rate; a 5xx Retry-After pauses the whole host. *Load: failures that
   grow with the rate.*
6. 5xx/timeouts at the share seen at lower rates → nothing (retries do the rest). *Faults
   whatever the rate: slowing down would only lengthen the run.*
7. 403s → a refusal at once in slow start on a host that forbade nothing yet, and on a
   host that stopped after such a cut; measured bursts of them otherwise (rule 1). *A CDN
   refusing a ramp with 403 must be answered before half its requests are refused.* When
   halving the rate halves the images served (measured from the series' second window:
   the first was partly served by a burst allowance), the 403s become the host's usual
   share and stop counting. *It forbids that content whatever the rate; a CDN serves its
   limit at any rate above it.* The retries tell it sooner:
   a URL answered 403 again after a pause is forbidden content, one served after a pause
   was refused for speed; when repeats outnumber the URLs served later, and are improbably
   many (``content_evidence``) for a CDN refusing retries as often as it was refusing first
   tries then, the 403s so far are the host's usual share, and a cut they caused is
   undone. *A museum that forbids 15 % of its images must not be crawled at a fifth of
   its rate; a CDN far above its limit refuses most retries too.*
8. Clean window in slow start (only one in which the senders used at least ``used_share``
   of the rate proves it; one served answer makes a window, ``ramp_window_answers``,
   unless the host has fewer than ``few_urls`` left) → × ``fast_growth`` below
   ``start_rate``, × ``careful_growth`` above, × ``small_host_growth`` while fewer than
   ``small_host_urls`` are left; no growth once a host's last ``few_urls`` fit in
   ``growth_horizon`` at the next rate. *Most hosts take the expected rate; past it a
   burst allowance may hide an overshoot for longer; the first answer served at a new
   rate already tests its spacing; tiny hosts are not worth a fast ramp, and may be
   refused only a couple of times.*
9. Clean for ``recovery_answers`` below ``settle_share`` × ceiling → halve the distance
   to it (in ratio; the last ``probe_step`` at once). *A refusal on the way lowers the
   ceiling there: a bisection.*
10. Clean for ``probe_answers`` (or ``probe_wait_seconds`` of answers on a slow host) and
    ``probe_seconds`` at the top → probe + ``probe_step``,
    doubling while probes pass; clean ``raised_limit`` × above the ceiling for a period
    → the ceiling is forgotten; a probe refused at once doubles the wait for the next.
    *The limit may have risen; probes are rare and small, so they cost few 429s.*

After any cut the controller *holds* for ``hold_seconds`` plus the host's latency: answers
to the old rate are still arriving and are not held against the new one. A clean window is
judged only once answers to the current rate are coming back. The rate always stays within
``[min_rate, max_rate]``; ``rate_multiplier`` < 1 keeps the rate at that share of the
learned limit (the ceiling) once the host has shown one.

An unknown host starts at ``min(safe_start, start_rate)``: a tiny museum server that
allows 1–2 req/s sees at most a request or two too many, whatever ``default_rate_limit``
(``start_rate``) says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from distdl.core.failure_bands import FailureBands, binomial_tail
from distdl.core.refusal_spacing import CLUSTER_ANSWERS, RefusalSpacing

Phase = Literal["slow_start", "steady"]

# A window with more 403s than this likely for the host is not judged clean before it
# has enough answers to tell a CDN's refusals from content the host forbids.
FORBIDDEN_DOUBT = 0.05
# The share of first tries answered 403 is followed over about this long: a retry meets
# the host as it is now, and clean answers reach rank 0 up to a second after the 403s.
RECENT_403_SECONDS = 3.0


@dataclass(frozen=True)
class ThrottleSettings:
    """Every constant of the controller, each with the reason for its value."""

    # Where a host without a learned profile heads quickly (config: default_rate_limit).
    start_rate: float = 3.0
    # Floor: even a host that always complains gets its URLs tried, slowly.
    min_rate: float = 0.2
    # Ceiling: min(max_rate_limit, robots.txt cap); no host needs more from one crawler.
    max_rate: float = 100.0
    # Keep this share of the learned limit (config).
    rate_multiplier: float = 1.0
    # An unknown host starts here: the smallest limits seen on image servers are 1–2 req/s,
    # and one request a second is one token of such a bucket.
    safe_start: float = 1.0
    # A window is judged after this long and this many answers: a rate change takes a
    # report or two (every 0.25 s) to show, and fewer answers say nothing.
    window_seconds: float = 0.5
    window_answers: int = 2
    # …but one served answer in slow start, on a host with few_urls or more left: the first
    # request at a new rate leaves one new interval after the last, so its being served
    # already tests the new spacing (a burst allowance hides an overshoot whatever the
    # window; a failure proves nothing, so it waits for a second answer). A host with
    # fewer URLs keeps two: a faster ramp has sent more requests past the limit by the time
    # the first refusal comes back, and such a host can afford one or two.
    ramp_window_answers: int = 1
    # A clean window proves its rate only if the senders used at least this share of it.
    used_share: float = 0.6
    # Slow start below start_rate (expected to pass) and above it (a burst allowance may
    # hide an overshoot for a second or two: grow less per window).
    fast_growth: float = 1.5
    careful_growth: float = 1.3
    # A refused window of this many answers measures the limit (the rate served); in a
    # smaller one one 429 more or less moves the estimate by 10% or more.
    measure_answers: int = 10
    # Run at this share of the measured limit: a drained bucket refills before the next
    # probe reaches it (10% of the limit refills 0.25 s of burst in 2.5 s).
    settle_share: float = 0.9
    # A blind cut (nothing measured) removes this share…
    decrease: float = 0.8
    # …a lone refusal after this many clean answers (jitter at a one-token bucket) only this.
    mild_decrease: float = 0.95
    quiet_answers: int = CLUSTER_ANSWERS
    # Below the ceiling, each step up waits for this many clean answers: a step refused
    # costs a 429, and a host with a few dozen URLs is not worth more than one or two.
    recovery_answers: int = 20
    # A measured cut never removes more than this share in one step, however bad one
    # window looks (answers to the old rate are still in it).
    max_cut: float = 0.5
    # Answers to the old rate arrive for about one report period (plus a latency) after a cut.
    hold_seconds: float = 0.5
    # At the top, probe +probe_step after this many clean answers and seconds: rare enough
    # that a failed probe's 429 or two is well under 1% of the answers.
    probe_answers: int = 100
    probe_seconds: float = 5.0
    # …but never more than this many seconds of answers: at 1 req/s, 100 answers are
    # 100 s a probe, and a slow host whose limit came back after a drop would creep back
    # over many minutes. A failed probe there costs one 429 in 20 answers, within the
    # 10% a host may be refused.
    probe_wait_seconds: float = 20.0
    # A host with fewer than few_urls left stops its slow start once they would take less
    # than growth_horizon seconds at the next rate. A ramp's crossing of the limit costs a
    # few refusals (a burst allowance lets it run to 3× a tiny host's limit first): a
    # large share of what a host of under a hundred URLs may be refused (2 answers below
    # 50 requests, 10% above), and one that is done within seconds anyway gains little
    # from going faster. A bigger host has refusals to spend and its ramp matters, so it
    # grows as before (benchmarks/README.md has the figures of both choices).
    few_urls: float = 100.0
    growth_horizon: float = 10.0
    # A host with fewer than small_host_urls left grows by small_host_growth a window: it
    # may be refused twice in all (issue 7's allowance below 50 requests), and the ramp's
    # crossing overshoots the limit by up to one step, then steps back one further (rule
    # 3). Small steps make both small: fewer refusals before the cut, less time below the
    # limit after it. Such a host is done within a minute at 1 req/s: it loses little to
    # the slower ramp (benchmarks/README.md has the figures of both).
    small_host_urls: float = 50.0
    small_host_growth: float = 1.2
    probe_step: float = 0.05
    max_probe_step: float = 0.4
    # Clean for a probe period at this multiple of the ceiling, the limit was raised: the
    # ceiling is forgotten and probes grow (just above it, a burst allowance can hide an
    # overshoot for a whole period).
    raised_limit: float = 1.1
    # A probe refused at once makes the next wait twice as long, up to this many periods.
    max_probe_backoff: int = 4
    # Load, not chance: a window's failures are load when a host failing at its usual share
    # would produce that many less often than this (about once in 2000 windows, 17 minutes
    # of 0.5 s windows: a fault-only host is cut rarely, and a cut recovers in seconds).
    load_evidence: float = 5e-4
    # What a host's failure share is believed to be before it has shown one at a lower
    # rate (2% over 50 answers): a first 503 or two is not yet load.
    prior_failure_share: float = 0.02
    prior_answers: float = 50.0
    # A measured window with at least this many 403s, improbably many for the host, is a
    # burst of refusals (some CDNs forbid instead of throttling).
    forbidden_min: int = 3
    # This many URLs answered 403 again on retry (and more than were served on retry) show
    # that the host forbids content: one repeat could be a CDN still refusing…
    forbidden_repeats: int = 2
    # …and only when that many repeats are improbable (below this) for a CDN refusing each
    # retry as often as it was refusing first tries at the time: a CDN still far above its
    # limit refuses most retries too, and taking it for content would restore the refused
    # rate and stop counting its 403s (a 5.6 req/s CDN was sent 15x its limit so, live).
    content_evidence: float = 0.01

    def __post_init__(self) -> None:
        if not 0 < self.min_rate <= self.max_rate:
            raise ValueError("need 0 < min_rate <= max_rate")
        if not 0 < self.rate_multiplier <= 1:
            raise ValueError("rate_multiplier must be in (0, 1]")
        if not 0 < self.max_cut <= self.decrease <= self.mild_decrease < 1:
            raise ValueError("need 0 < max_cut <= decrease <= mild_decrease < 1")
        if min(self.fast_growth, self.careful_growth, self.small_host_growth) <= 1:
            raise ValueError("growth factors must be above 1")
        if not 0 < self.settle_share <= 1:
            raise ValueError("settle_share must be in (0, 1]")

    def clamp(self, rate: float) -> float:
        return min(self.max_rate, max(self.min_rate, rate))


@dataclass(frozen=True)
class Feedback:
    """What the workers observed on one host since their last report."""

    ok: int = 0
    rate_limited: int = 0  # 429, 420, 503 SlowDown: always about the rate
    server_errors: int = 0  # other 5xx: about the rate only when they come with load
    timeouts: int = 0
    forbidden: int = 0  # 403 on a URL's first try (or after other failures)
    forbidden_again: int = 0  # 403 on a URL already answered 403: forbidden content
    served_after_forbidden: int = 0  # 2xx on a URL answered 403 before: it was a refusal
    other_errors: int = 0
    latency_sum: float = 0.0
    latency_count: int = 0
    retry_after: float | None = None  # longest Retry-After of a rate-limited answer
    server_retry_after: float | None = None  # longest Retry-After of a 5xx

    @property
    def throttled(self) -> int:
        return self.rate_limited + self.server_errors

    @property
    def failures(self) -> int:
        """Answers that may be load: 5xx and timeouts."""
        return self.server_errors + self.timeouts

    @property
    def total(self) -> int:
        return (
            self.ok
            + self.rate_limited
            + self.server_errors
            + self.timeouts
            + self.forbidden
            + self.forbidden_again
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
            forbidden_again=self.forbidden_again + other.forbidden_again,
            served_after_forbidden=self.served_after_forbidden + other.served_after_forbidden,
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
    ceiling: float = math.inf  # the lowest rate the host refused (or failed under load) at
    max_ok_rate: float = 0.0  # the highest rate of a clean window
    since_refusal: int = 0  # answers since the last refusal judged in a window
    refusals: RefusalSpacing = field(default_factory=RefusalSpacing)  # for Retry-After
    # A run of refusals close together: when it began, and the OK answers since.
    episode_start: float = 0.0
    episode_ok: int = 0
    episode_paused: float = 0.0  # seconds of Retry-After pauses during it
    clean_answers: int = 0  # clean answers since the rate last changed
    clean_since: float = 0.0  # when the current clean stretch at this rate began
    probes_passed: int = 0  # probes in a row that passed while above the ceiling
    remaining: float = math.inf  # URLs the host still has to serve, when rank 0 knows
    probe_failures: int = 0  # probes in a row refused at once
    probing: bool = False
    hold_until: float = -math.inf  # after a cut: answers to the old rate are dropped
    tested_from: float = -math.inf  # clean windows starting earlier saw an older rate
    usual_forbidden: float = 0.0  # share of 403s that went on whatever the rate
    refuses_with_403: bool = False  # a cut ended a burst of 403s: each 403 is a refusal
    # A series of 403 cuts (no clean window between): the rate and the images served a
    # second of its first measured window; until that window comes, the rate where the
    # series began and served inf.
    forbidden_series_rate: float = 0.0
    forbidden_series_served: float = 0.0
    # Before the first cut of a 403 series: (rate, ceiling, max_ok_rate, phase), restored
    # when the retries show that the 403s were forbidden content.
    before_403_cut: tuple[float, float, float, Phase] | None = None
    # 403s on first tries and all answers so far; 403s repeated on retry (content) and URLs
    # served on retry after a 403 (refusals).
    forbidden_seen: int = 0
    answers_seen: int = 0
    forbidden_repeated: int = 0
    forbidden_cleared: int = 0
    retry_refusal_odds: float = 0.0  # sum, over those retries, of the recent 403 share
    # 403s and answers to first tries, decayed over RECENT_403_SECONDS: what a CDN refuses now.
    recent_forbidden: float = 0.0
    recent_answers: float = 0.0
    recent_at: float = 0.0
    paused_until: float = -math.inf
    refilled_until: float = -math.inf  # after a pause: a clean window proves nothing yet
    # The host's share of 5xx/timeouts by rate band: load is a share that grows with rate.
    failures: FailureBands = field(default_factory=lambda: FailureBands(0.02, 50.0))
    latency: float | None = None  # smoothed mean latency, for the profiles table
    window: Feedback = field(default_factory=Feedback)
    window_start: float = 0.0


class HostThrottle:
    """The request-rate budget of one host (see the module docstring for the rules)."""

    def __init__(self, settings: ThrottleSettings, now: float, *, known: bool = False) -> None:
        """``known``: the start rate was learned or set by hand, so no safe start."""
        self._settings = settings
        start = settings.start_rate if known else min(settings.start_rate, settings.safe_start)
        self._state = _State(
            rate=settings.clamp(start),
            window_start=now,
            clean_since=now,
            failures=FailureBands(settings.prior_failure_share, settings.prior_answers),
            refusals=RefusalSpacing(settings.quiet_answers),
        )

    # --- what rank 0 reads ----------------------------------------------------------
    @property
    def rate(self) -> float:
        """The rate to send at (req/s)."""
        return self._state.rate

    @property
    def phase(self) -> Phase:
        return self._state.phase

    @property
    def max_ok_rate(self) -> float:
        return self._state.max_ok_rate

    @property
    def learned_rate(self) -> float:
        """The rate worth starting the next run from: the highest rate of a clean window,
        but not above where recovery aims once the host has refused (a clean window just
        past the limit may have passed on a burst allowance)."""
        state = self._state
        learned = state.max_ok_rate or state.rate
        return min(learned, self._top()) if math.isfinite(state.ceiling) else learned

    @property
    def ceiling(self) -> float:
        """The lowest rate the host refused at; ``inf`` if unknown."""
        return self._state.ceiling

    @property
    def failure_share(self) -> float:
        """The host's usual share of 5xx and timeouts, as learned so far."""
        return self._state.failures.share()

    @property
    def latency(self) -> float | None:
        return self._state.latency

    def paused_until(self) -> float:
        """Start no request on the host before this time; -inf if not paused."""
        return self._state.paused_until

    # --- folding in reports ---------------------------------------------------------
    def observe(self, feedback: Feedback, now: float) -> float:
        """Fold in one report; returns the host's new rate."""
        state = self._state
        state.window = state.window.merged(feedback)
        state.since_refusal += feedback.total
        # More served than expected: the count was wrong, and says nothing any more.
        left = state.remaining - feedback.ok
        state.remaining = left if left >= 0 else math.inf
        state.episode_ok += feedback.ok
        self._learn_latency(feedback)
        self._learn_from_403_retries(feedback, now)
        clustered = state.refusals.observe(
            feedback.total - feedback.rate_limited, feedback.rate_limited
        )
        if feedback.retry_after and clustered:
            # Refusals that cluster, with Retry-After: the host said when to come back.
            self._pause_until(now + feedback.retry_after, now)
        window = state.window
        if now < state.hold_until:
            # Answers to the rate before the last cut are not held against the new one.
            self._start_window(now)
            return self.rate
        if window.rate_limited or self._forbidden_means_too_fast(window):
            self._on_refusal(window, now)
        elif state.window_start < state.tested_from:
            if now >= state.tested_from:
                # Answers from here on are to the current rate: judge them, not the older.
                self._start_window(now)
        elif self._window_ready(window, now):
            self._judge(window, now)
        return self.rate

    def _judge(self, window: Feedback, now: float) -> None:
        """A ready window without a 429: 403s, load or clean."""
        settings = self._settings
        doubtful = self._forbidden_tail(window) < FORBIDDEN_DOUBT
        if doubtful and window.total < settings.measure_answers:
            return  # 403s are no emergency: wait for a window that can tell
        if self._forbidden_burst(window):
            self._on_refusal(window, now)  # unless the 403s outlasted the cuts already
            return
        if self._is_load(window):
            self._on_load(window, now)
        else:
            self._on_clean(window, now)
        self._start_window(now)

    def _window_ready(self, window: Feedback, now: float) -> bool:
        settings, state = self._settings, self._state
        ramp = state.phase == "slow_start" and not self._few_urls_left()
        enough = (
            window.ok >= settings.ramp_window_answers
            if ramp
            else window.total >= settings.window_answers
        )
        return enough and now - state.window_start >= settings.window_seconds

    def _forbidden_means_too_fast(self, window: Feedback) -> bool:
        """403s are a refusal at once on a host known to throttle with 403, and in slow
        start when several come together, more than the host's usual share of forbidden
        content makes likely: a CDN refusing a ramp with 403 must be answered before half
        the ramp's requests are refused, while a lone forbidden image (one in a hundred is
        common) must not end a fast host's ramp, and a CDN may serve a museum that forbids
        a few images, which must not hide its refusals.
        """
        state = self._state
        if not window.forbidden:
            return False
        if state.refuses_with_403:
            return True
        together = window.forbidden >= 2 and window.forbidden >= 0.25 * window.total
        usual = self._forbidden_tail(window) >= FORBIDDEN_DOUBT
        return state.phase == "slow_start" and together and not usual

    def _forbidden_tail(self, window: Feedback) -> float:
        """How likely this many 403s are at the host's usual share of them."""
        usual = max(self._state.usual_forbidden, self._settings.prior_failure_share)
        return binomial_tail(window.forbidden, window.total, usual)

    def _forbidden_burst(self, window: Feedback) -> bool:
        """Improbably many 403s for this host: a CDN refusing a client that is too fast."""
        return (
            window.forbidden >= self._settings.forbidden_min
            and self._forbidden_tail(window) < self._settings.load_evidence
        )

    def _is_load(self, window: Feedback) -> bool:
        """More 5xx/timeouts at this rate than the host showed at lower rates, by far."""
        state = self._state
        state.failures.record(state.rate, window.failures, window.ok + window.failures)
        return state.failures.tail_at(state.rate) < self._settings.load_evidence

    def _start_window(self, now: float) -> None:
        state = self._state
        state.window = Feedback()
        state.window_start = now

    def _learn_latency(self, feedback: Feedback) -> None:
        mean = feedback.mean_latency
        if mean is not None:
            state = self._state
            state.latency = mean if state.latency is None else 0.9 * state.latency + 0.1 * mean

    # --- decreasing -----------------------------------------------------------------
    def _on_refusal(self, window: Feedback, now: float) -> None:
        state, settings = self._state, self._settings
        if not window.rate_limited and not self._forbidden_refusal_counts(window):
            self._start_window(now)
            return
        if window.rate_limited:
            state.before_403_cut = None  # the host throttles: what it was is no guide
        rate = state.rate
        quiet = state.since_refusal - window.total >= settings.quiet_answers
        lone = window.rate_limited + window.forbidden <= 1
        state.since_refusal = 0
        if quiet or state.phase == "slow_start":
            # A new run of refusals (its own pause, if any, is counted from here).
            state.episode_start, state.episode_ok = now, 0
            state.episode_paused = max(0.0, state.paused_until - now)
        served = rate * window.ok / window.total
        if window.total >= settings.measure_answers:
            # A drained bucket serves its limit: what it served, plus a standard deviation
            # of counting noise, is the ceiling.
            state.ceiling = min(state.ceiling, served * (1 + 1 / math.sqrt(max(window.ok, 1))))
        if window.total >= settings.measure_answers or not lone:
            # Run just under what it served (several refusals in a small window are still
            # a rough measure: a limit that dropped must be followed at once).
            new_rate = min(rate * settings.decrease, settings.settle_share * served)
            state.ceiling = min(state.ceiling, rate)
            self._cut_to(max(rate * settings.max_cut, new_rate), now)
            return
        if quiet and lone and state.phase == "steady" and state.paused_until <= now:
            # Jitter at a one-token bucket; no hold: if the limit really dropped, the
            # refusals that follow must be acted on at once.
            self._cut_to(rate * settings.mild_decrease, now)
            state.hold_until = now
            return
        state.ceiling = min(state.ceiling, rate)
        episode = now - state.episode_start - state.episode_paused
        if not quiet and state.phase == "steady" and episode > 0 and state.episode_ok:
            # Refused again soon after a cut: the bucket is drained, and what it served
            # since the first refusal measures its limit (what "passed" passed on a burst).
            served = state.episode_ok / episode
            new_rate = min(rate * settings.decrease, settings.settle_share * served)
            self._cut_to(max(rate * settings.max_cut, new_rate), now)
            return
        # Nothing measured: back to the highest rate that passed. Leaving slow start, that
        # rate passed only briefly (a burst allowance can hide an overshoot for seconds):
        # one step further back.
        passed = state.max_ok_rate if state.max_ok_rate < rate else 0.0
        new_rate = min(rate * settings.decrease, passed) or rate * settings.decrease
        if state.phase == "slow_start":
            # Not below the safe start, though, if that passed: it is where every host began.
            floor = min(new_rate, settings.safe_start)
            new_rate = max(floor, new_rate / self._growth(new_rate / settings.fast_growth))
        self._cut_to(new_rate, now)

    def _pause_until(self, until: float, now: float) -> None:
        state = self._state
        if until > state.paused_until:
            # Time paused is time the host served nothing: not part of any measure.
            state.episode_paused += until - max(now, state.paused_until)
            state.paused_until = until
            # The bucket refilled while we waited: clean answers on the refill prove nothing.
            state.refilled_until = max(state.refilled_until, until + (until - now))

    def _forbidden_refusal_counts(self, window: Feedback) -> bool:
        """Whether a refusal made of 403s is one: not when they outlast halving the rate.

        A CDN refusing a client that is too fast serves its limit whatever we send: halving
        the rate leaves the images served per second as they were. A host forbidding some of
        its images forbids the same share at any rate: halving the rate halves them.
        """
        state = self._state
        share = window.forbidden / max(window.total, 1)
        served = state.rate * (1 - share)
        state.refuses_with_403 = True  # until the 403s outlast the cuts
        measured = window.total >= self._settings.measure_answers
        if state.forbidden_series_rate == 0:
            # The window where the 403s began was served on a burst allowance until it
            # drained: what it served is not what the host serves. The next measured
            # window of the series is its measure.
            state.forbidden_series_rate, state.forbidden_series_served = state.rate, math.inf
            if state.before_403_cut is None:
                state.before_403_cut = (state.rate, state.ceiling, state.max_ok_rate, state.phase)
            return True
        if math.isinf(state.forbidden_series_served):
            if measured:
                state.forbidden_series_rate, state.forbidden_series_served = state.rate, served
            return True
        halved = state.rate <= 0.5 * state.forbidden_series_rate
        if not (halved and measured) or served > 0.7 * state.forbidden_series_served:
            return True
        # Half the rate, half the images served: the host forbids that content.
        state.usual_forbidden = share
        state.refuses_with_403 = False
        state.forbidden_series_rate = 0.0
        return False

    def _learn_from_403_retries(self, feedback: Feedback, now: float) -> None:
        """Retries of URLs answered 403 say what the 403s were (rule 7)."""
        state, settings = self._state, self._settings
        state.forbidden_seen += feedback.forbidden
        state.answers_seen += feedback.total - feedback.forbidden_again
        retries = feedback.forbidden_again + feedback.served_after_forbidden
        fade = math.exp(-max(0.0, now - state.recent_at) / RECENT_403_SECONDS)
        state.recent_forbidden = state.recent_forbidden * fade + feedback.forbidden
        state.recent_answers = state.recent_answers * fade + feedback.total - retries
        state.recent_at = now
        if state.recent_answers:
            state.retry_refusal_odds += retries * state.recent_forbidden / state.recent_answers
        state.forbidden_repeated += feedback.forbidden_again
        state.forbidden_cleared += feedback.served_after_forbidden
        if feedback.served_after_forbidden:
            state.before_403_cut = None  # a 403 that was a refusal: the cut stands
        repeated, cleared = state.forbidden_repeated, state.forbidden_cleared
        if repeated < settings.forbidden_repeats or repeated <= cleared:
            return
        # A CDN refuses a retry as often as a first try: were these repeats likely so?
        tried = repeated + cleared
        as_refusals = binomial_tail(repeated, tried, state.retry_refusal_odds / tried)
        if as_refusals >= settings.content_evidence:
            return
        # Forbidden content: its share so far is the host's usual one, and any cut its 403s
        # caused is undone (the rate, the ceiling and the phase as they were).
        share = state.forbidden_seen / max(state.answers_seen, 1)
        state.usual_forbidden = max(state.usual_forbidden, share)
        state.refuses_with_403 = False
        state.forbidden_series_rate = 0.0
        state.forbidden_repeated = state.forbidden_cleared = 0
        state.retry_refusal_odds = 0.0
        if state.before_403_cut is not None:
            rate, ceiling, max_ok_rate, phase = state.before_403_cut
            state.before_403_cut = None
            if rate > state.rate:
                state.ceiling, state.max_ok_rate, state.phase = ceiling, max_ok_rate, phase
                state.hold_until = now
                self._set_rate(rate, now)
                self._start_window(now)

    def _on_load(self, window: Feedback, now: float) -> None:
        state, settings = self._state, self._settings
        if window.server_retry_after:
            self._pause_until(now + window.server_retry_after, now)
        state.ceiling = min(state.ceiling, state.rate)
        state.failures.forget_at(state.rate)
        self._cut_to(state.rate * settings.decrease, now)

    def _cut_to(self, new_rate: float, now: float) -> None:
        state, settings = self._state, self._settings
        if settings.rate_multiplier < 1:
            new_rate = min(new_rate, self._top())  # a share of the limit, now it is known
        new_rate = settings.clamp(new_rate)
        if state.rate <= state.max_ok_rate:
            state.max_ok_rate = new_rate  # refused at a rate believed fine: it is stale
        if state.probing:
            state.probe_failures += 1
            state.probing = False
        state.phase = "steady"
        state.rate = new_rate
        state.probes_passed = 0
        state.clean_answers = 0
        state.clean_since = now
        state.hold_until = now + settings.hold_seconds + self._answer_delay()
        state.tested_from = state.hold_until
        self._start_window(now)

    # --- increasing -----------------------------------------------------------------
    def _on_clean(self, window: Feedback, now: float) -> None:
        state, settings = self._state, self._settings
        if state.window_start < state.refilled_until:
            return  # passed on what the host's bucket refilled during a pause (rule 4)
        used = window.total / max(now - state.window_start, 1e-9)
        if used < settings.used_share * state.rate:
            # The rate was not used (the senders were busy, or the host's URLs ran low):
            # a clean window proves nothing about it, and raising it untested would let
            # a burst through once the senders catch up.
            return
        state.max_ok_rate = max(state.max_ok_rate, state.rate)
        state.clean_answers += window.total
        state.forbidden_series_rate = 0.0
        if state.phase == "slow_start":
            growth = self._growth(state.rate)
            horizon = state.remaining / (state.rate * growth)
            if not self._few_urls_left() or horizon >= settings.growth_horizon:
                self._set_rate(state.rate * growth, now)
            return
        top = self._top()
        if math.isfinite(top) and state.rate < top:
            if state.clean_answers < settings.recovery_answers:
                return
            # Halve the distance to the top, in ratio: a refusal on the way lowers the
            # ceiling to where it happened, so the search narrows like a bisection.
            step = math.sqrt(top / state.rate)
            if step < 1 + settings.probe_step:
                step = top / state.rate  # the last bit in one step, not a 1% crawl
            self._set_rate(min(top, state.rate * step), now)
        elif self._probe_due(now):
            self._probe(now)

    def set_remaining(self, urls: float) -> None:
        """How many URLs the host has left to serve (each OK answer counts one off)."""
        self._state.remaining = urls

    def _few_urls_left(self) -> bool:
        return self._state.remaining < self._settings.few_urls

    def _top(self) -> float:
        """Where recovery heads: just under the ceiling, or rate_multiplier of that."""
        settings = self._settings
        return settings.rate_multiplier * settings.settle_share * self._state.ceiling

    def _growth(self, rate: float) -> float:
        settings = self._settings
        if self._state.remaining < settings.small_host_urls:
            return settings.small_host_growth
        return settings.fast_growth if rate < settings.start_rate else settings.careful_growth

    def _probe_due(self, now: float) -> bool:
        state, settings = self._state, self._settings
        if settings.rate_multiplier < 1 and math.isfinite(state.ceiling):
            return False  # a share of a known limit: nothing to look for above it
        backoff = min(2**state.probe_failures, settings.max_probe_backoff)
        return (
            state.clean_answers
            >= min(settings.probe_answers, state.rate * settings.probe_wait_seconds) * backoff
            and now - state.clean_since >= settings.probe_seconds * backoff
        )

    def _probe(self, now: float) -> None:
        state, settings = self._state, self._settings
        if state.probing:
            # The last probe passed a whole period: the limit is above it.
            state.probe_failures = 0
            state.probes_passed += 1
            if state.rate > settings.raised_limit * state.ceiling:
                state.ceiling = math.inf  # clean well above it for a whole period: raised
        step = settings.probe_step * 2.0 ** min(state.probes_passed, 16)
        self._set_rate(state.rate * (1 + min(settings.max_probe_step, step)), now)
        state.probing = True

    def _set_rate(self, rate: float, now: float) -> None:
        state = self._state
        rate = self._settings.clamp(rate)
        if rate != state.rate:
            state.clean_answers = 0
            state.clean_since = now
            state.tested_from = now + self._answer_delay()
        state.rate = rate

    def _answer_delay(self) -> float:
        """How long after a rate change its first answers come back."""
        return self._state.latency or 0.0

    # --- persistence ----------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The learned state worth keeping in the profiles table (plain JSON types)."""
        state = self._state
        return {
            "rate": state.rate,
            "max_ok_rate": state.max_ok_rate,
            "ceiling": state.ceiling if math.isfinite(state.ceiling) else None,
            "failure_share": self.failure_share,
        }

    @classmethod
    def restore(
        cls, settings: ThrottleSettings, snapshot: dict[str, Any], now: float
    ) -> HostThrottle:
        """Resume from a learned profile instead of slow-starting.

        Only ``rate`` is required; the other keys of :meth:`snapshot` refine the restart.
        """
        learned = float(snapshot.get("rate") or 0.0)
        if learned <= 0:
            return cls(settings, now)
        throttle = cls(settings, now, known=True)
        state = throttle._state
        state.phase = "steady"
        state.rate = settings.clamp(learned)
        state.max_ok_rate = settings.clamp(float(snapshot.get("max_ok_rate") or learned))
        ceiling = snapshot.get("ceiling")
        # Without a recorded ceiling, the learned rate is where recovery aims: probes look
        # above it as the host stays clean.
        state.ceiling = float(ceiling) if ceiling else math.inf
        share = snapshot.get("failure_share")
        if share is not None:
            # A host known to fail this share whatever the rate starts from that belief.
            state.failures = FailureBands(float(share), settings.prior_answers)
        return throttle
