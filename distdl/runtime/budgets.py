"""Rank 0's per-host request budgets: where they start, how they move, where they are kept.

A host's budget starts from the profiles table when it lists the host, else from
``default_rate_limit``. A hand-written profile (``server_name, rate_limit`` only) is a hard
budget: the controller may go below it on complaints, never above. A profile distdl wrote
itself also carries ``max_rate_limit``, so a later run resumes learning from the saved rate.
The controller (`distdl.core.throttle.HostThrottle`) decides; this class only keeps one per
host, turns its answers into rate changes and pauses, and persists what was learned.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from distdl.config import DownloaderParameters
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
        self._throttles: dict[str, HostThrottle] = {}
        self._announced: dict[str, float] = {}
        self._paused_until: dict[str, float] = {}
        self._ceilings: dict[str, float] = {}
        for server in servers:
            self._throttles[server] = self._throttle_for(server, base, now)
            self._announced[server] = self._throttles[server].rate

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

    def _throttle_for(self, server: str, base: ThrottleSettings, now: float) -> HostThrottle:
        profile = self._profiles.get(server)
        if profile is None:
            self._ceilings[server] = base.max_rate
            return HostThrottle(base, now)
        ceiling = base.max_rate if profile.max_rate_limit is None else profile.max_rate_limit
        if profile.max_rate_limit is None:
            ceiling = profile.rate_limit  # set by hand: a budget, not a starting guess
        ceiling = min(ceiling, base.max_rate)
        self._ceilings[server] = ceiling
        settings = replace(
            base,
            start_rate=min(profile.rate_limit, ceiling),
            max_rate=ceiling,
            min_rate=min(base.min_rate, ceiling),
        )
        if profile.learned_at is None:
            return HostThrottle(settings, now)  # a guess or a hand-set budget: search from it
        return HostThrottle.restore(settings, {"rate": settings.start_rate}, now)

    def initial_budgets(self) -> dict[str, float]:
        return {server: throttle.rate for server, throttle in self._throttles.items()}

    def rate(self, server: str) -> float:
        return self._throttles[server].rate

    def observe(self, server: str, feedback: Feedback, now: float) -> BudgetDecision:
        throttle = self._throttles.get(server)
        if throttle is None:
            return BudgetDecision()
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
        """Write the learned rates back, so the next run starts from them.

        A hand-set budget (no ``max_rate_limit``) stays a budget: only lowered, if at all.
        """
        if not self._throttles:
            return
        profiles = dict(self._profiles)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        for server, throttle in self._throttles.items():
            old = profiles.get(server)
            learned = round(throttle.max_ok_rate or throttle.rate, 3)
            if old is not None and old.max_rate_limit is None:
                profiles[server] = replace(old, rate_limit=min(learned, old.rate_limit))
            else:
                base = old or HostProfile(server_name=server, rate_limit=learned)
                profiles[server] = replace(
                    base,
                    rate_limit=learned,
                    max_rate_limit=self._ceilings[server],
                    learned_at=stamp,
                )
        write_profiles(self._path, profiles.values())
