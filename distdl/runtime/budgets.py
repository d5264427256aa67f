"""Rank 0's per-host request budgets: where they start, how they move, where they are kept.

A host's budget starts from the profiles table when it lists the host, else from
``default_rate_limit``. A hand-written profile (``server_name, rate_limit`` only) is a hard
budget: the controller may go below it on complaints, never above. A profile distdl wrote
itself also carries ``max_rate_limit``, so a later run resumes learning from the saved rate;
a row the ``profiled`` stage wrote for a host nothing is known of yet (status ``unseen``)
is a starting guess, like no row at all.
The controller (`distdl.core.throttle.HostThrottle`) decides; this class only keeps one per
host, turns its answers into rate changes and pauses, and persists what was learned.

A host's robots.txt caps its budget (``apply_robots``) as soon as a worker read it: the
controller is rebuilt as if the cap had been known from the start (the first lease reads
robots.txt before anything else, so nothing learned is lost). Hosts first met as redirect
targets get a budget with :meth:`add`. What the run saw of each host (its answers, their
latency, its Crawl-delay, whether it was reachable) fills the profile's ``status``,
``latency_ms`` and ``crawl_delay`` columns when the table is saved.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from distdl.config import DownloaderParameters
from distdl.core.breaker import HostCause
from distdl.core.eta import LEARNING
from distdl.core.host_profile import UNSEEN, judge_observed
from distdl.core.throttle import Feedback, HostThrottle, ThrottleSettings
from distdl.io.profiles import HostProfile, read_profiles, write_profiles
from distdl.layout import Layout

# Rate changes smaller than this share are not worth a message to every lease holder.
MIN_RELATIVE_CHANGE = 0.02


@dataclass(frozen=True)
class BudgetDecision:
    rate: float | None = None  # the host's new budget, when it moved enough to matter
    pause_seconds: float | None = None  # a new pause of the whole host (Retry-After)


class HostBudgets:
    def __init__(
        self,
        path: Path,
        profiles: dict[str, HostProfile],
        base: ThrottleSettings,
        servers: Iterable[str],
        now: float,
    ) -> None:
        self._path = path
        self._profiles = profiles
        self._base = base
        self._throttles: dict[str, HostThrottle] = {}
        self._announced: dict[str, float] = {}
        self._paused_until: dict[str, float] = {}
        self._ceilings: dict[str, float] = {}
        self._robots_caps: dict[str, float] = {}
        self._crawl_delays: dict[str, float | None] = {}
        self._seen: dict[str, Feedback] = {}
        self._unreachable: dict[str, str | None] = {}  # host -> why, when known
        self._expected_urls: dict[str, int] = {}
        for server in servers:
            self.add(server, now)

    @classmethod
    def from_profiles(
        cls, layout: Layout, params: DownloaderParameters, servers: Iterable[str], now: float
    ) -> HostBudgets:
        base = ThrottleSettings(
            start_rate=params.default_rate_limit,
            max_rate=params.max_rate_limit,
            rate_multiplier=params.rate_multiplier,
        )
        return cls(layout.profiles_table, read_profiles(layout.profiles_table), base, servers, now)

    def knows(self, server: str) -> bool:
        return server in self._throttles

    def add(self, server: str, now: float) -> float:
        """Give a host a budget (a no-op for a known one); returns the budget."""
        if server not in self._throttles:
            self._throttles[server] = self._throttle_for(server, now)
            self._announced[server] = self._throttles[server].rate
        return self._throttles[server].rate

    def expect_urls(self, urls_by_host: dict[str, int]) -> None:
        """The URLs each host has left in this run: tiny hosts are not worth a fast ramp."""
        self._expected_urls.update(urls_by_host)
        for server, urls in urls_by_host.items():
            if server in self._throttles:
                self._throttles[server].set_remaining(urls)

    def expect_redirects(self, server: str) -> None:
        """Redirect hops reach the host: it serves URLs its plan never counted."""
        self._expected_urls.pop(server, None)
        if server in self._throttles:
            self._throttles[server].set_remaining(math.inf)

    def _throttle_for(self, server: str, now: float) -> HostThrottle:
        base = self._base
        cap = self._robots_caps.get(server, math.inf)
        profile = self._profiles.get(server)
        if profile is None:
            ceiling = min(base.max_rate, cap)
            self._ceilings[server] = ceiling
            return HostThrottle(self._capped(base, base.start_rate, ceiling), now)
        # A row without max_rate_limit was set by hand: a budget, not a starting guess. A
        # row's max_rate_limit only records the ceiling of the run that wrote it: this
        # run's own max_rate_limit and robots.txt decide (raising it raises learned hosts).
        hand_set = profile.max_rate_limit is None
        ceiling = min(profile.rate_limit if hand_set else math.inf, base.max_rate, cap)
        self._ceilings[server] = ceiling
        settings = self._capped(base, profile.rate_limit, ceiling)
        if profile.status == UNSEEN and profile.learned_at is None and profile.max_rate_limit:
            return HostThrottle(settings, now)  # the profiled stage's placeholder: a guess
        if profile.learned_at is None:
            # A guess or a hand-set budget: search from it, no safe start below it.
            return HostThrottle(settings, now, known=True)
        return HostThrottle.restore(settings, {"rate": settings.start_rate}, now)

    @staticmethod
    def _capped(base: ThrottleSettings, start: float, ceiling: float) -> ThrottleSettings:
        return replace(
            base,
            start_rate=min(start, ceiling),
            max_rate=ceiling,
            min_rate=min(base.min_rate, ceiling),
        )

    def apply_robots(
        self, server: str, rate_cap: float | None, crawl_delay: float | None, now: float
    ) -> float | None:
        """A worker read the host's robots.txt: cap the budget by what it asks.

        Returns the new budget when the cap lowered it, else None.
        """
        self._crawl_delays[server] = crawl_delay
        if rate_cap is None or rate_cap >= self._robots_caps.get(server, math.inf):
            return None
        self._robots_caps[server] = rate_cap
        if server not in self._throttles or rate_cap >= self._ceilings[server]:
            return None
        self._throttles[server] = self._throttle_for(server, now)
        if server in self._expected_urls:
            self._throttles[server].set_remaining(self._expected_urls[server])
        rate = self._throttles[server].rate
        self._announced[server] = rate
        return rate

    def mark_unreachable(self, server: str, cause: HostCause | None = None) -> None:
        """A breaker gave up on the host (or its robots.txt got no answer), for ``cause``."""
        self._unreachable[server] = cause.message if cause is not None else None

    def limit_of(self, server: str) -> tuple[float, str]:
        """The most the host's budget may become, and what holds it (for the ETA: see
        :mod:`distdl.core.eta`)."""
        if server in self._unreachable:
            return 0.0, "unreachable"
        rate, ceiling = self._throttles[server].rate, self._ceilings[server]
        profile = self._profiles.get(server)
        if self._robots_caps.get(server, math.inf) <= ceiling:
            return ceiling, "robots"
        if profile is not None and profile.max_rate_limit is None:
            return ceiling, "profile"
        if self._seen.get(server, Feedback()).rate_limited or (
            profile is not None and profile.learned_at is not None
        ):
            return rate, "server"
        if rate >= ceiling * (1 - MIN_RELATIVE_CHANGE):
            return ceiling, "max_rate_limit"
        return ceiling, LEARNING

    def initial_budgets(self) -> dict[str, float]:
        return {server: throttle.rate for server, throttle in self._throttles.items()}

    def rate(self, server: str) -> float:
        return self._throttles[server].rate

    def observe(self, server: str, feedback: Feedback, now: float) -> BudgetDecision:
        throttle = self._throttles.get(server)
        if throttle is None:
            return BudgetDecision()
        self._seen[server] = self._seen.get(server, Feedback()).merged(feedback)
        rate = throttle.observe(feedback, now)
        pause = None
        paused_until = throttle.paused_until()
        if paused_until > max(now, self._paused_until.get(server, -math.inf)):
            self._paused_until[server] = paused_until
            pause = paused_until - now
        announced = self._announced[server]
        if abs(rate - announced) <= MIN_RELATIVE_CHANGE * announced:
            return BudgetDecision(None, pause)
        self._announced[server] = rate
        return BudgetDecision(rate, pause)

    def save(self) -> None:
        """Write the learned rates back, so the next run starts from them, with what the
        run saw of each host.

        A hand-set budget (no ``max_rate_limit``) stays a budget: only lowered, if at all.
        A host that never answered 2xx has nothing learned: only its observed columns change.
        """
        if not self._throttles:
            return
        profiles = dict(self._profiles)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        for server, throttle in self._throttles.items():
            old = profiles.get(server)
            learned = round(throttle.learned_rate, 3)
            seen = self._observed(server)
            if old is not None and old.max_rate_limit is None:
                profiles[server] = replace(old, rate_limit=min(learned, old.rate_limit), **seen)
            elif self._seen.get(server, Feedback()).ok == 0:
                base = old or HostProfile(
                    server, rate_limit=learned, max_rate_limit=self._ceilings[server], status=UNSEEN
                )
                profiles[server] = replace(base, **seen)
            else:
                base = old or HostProfile(server_name=server, rate_limit=learned)
                profiles[server] = replace(
                    base,
                    rate_limit=learned,
                    max_rate_limit=self._ceilings[server],
                    learned_at=stamp,
                    **seen,
                )
        write_profiles(self._path, profiles.values())

    def _observed(self, server: str) -> dict[str, Any]:
        """The profile columns this run observed (absent: nothing new to say)."""
        seen = self._seen.get(server, Feedback())
        latency = seen.mean_latency
        status = judge_observed(
            ok=seen.ok,
            answered=seen.latency_count,
            asked=seen.total,
            mean_latency=latency,
            unreachable=server in self._unreachable,
        )
        out: dict[str, Any] = {}
        if status is not None:
            out["status"] = status
        if self._unreachable.get(server):
            out["unreachable_cause"] = self._unreachable[server]
        elif status is not None and status != "unreachable":
            out["unreachable_cause"] = None  # it answers again: the old cause is history
        if latency is not None:
            out["latency_ms"] = round(latency * 1000, 1)
        if server in self._crawl_delays:
            out["crawl_delay"] = self._crawl_delays[server]
        return out
