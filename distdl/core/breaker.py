"""A per-host circuit breaker: stop hammering a host that does not answer, and give up on
one that never will.

A black-hole host (packets dropped, every connection times out) would otherwise cost one
timeout per URL: days for a partition of 10 000 URLs. The breaker turns that into minutes:

* **closed**: requests flow. ``threshold`` connection failures or timeouts *in a row* (any
  answer from the server in between resets the count) open it.
* **open**: no request starts until the cool-down ends. Cool-downs grow
  ``base_cooldown`` × 2^k (k = failed probes so far), capped at ``max_cooldown``, each
  stretched or shrunk by up to ``jitter`` so hosts and ranks do not probe in lockstep.
* **half_open**: the cool-down is over; exactly one probe request may start. Its success
  closes the breaker, its failure opens it again for a longer cool-down. A probe whose
  outcome is never reported is given up after ``probe_timeout`` and another may start.
* **dead**: ``max_probes`` probes failed. Final for the run: the host's remaining URLs
  become ``HOST_UNREACHABLE`` error rows without touching the network. With the defaults a
  black hole is declared dead about 75 s (5 + 10 + 20 + 40) plus four probe timeouts after
  it opened.

Only connection failures and timeouts count (the caller decides): a 404 or a 500 is an
answer, and proves the host is alive. Failures reported while open (requests that were
already in flight) are ignored. Time is an argument; the breaker holds no clock.

A breaker keeps the cause of the last failure (:class:`HostCause`: DNS, refused, timeout,
TLS and the certificate error, an unreachable robots.txt, …), so a host given up on says
why: in its rows (:func:`unreachable_row`), the profiles table, ``status`` and the summary.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

from distdl.core import codes

BreakerState = Literal["closed", "open", "half_open", "dead"]


@dataclass(frozen=True)
class HostCause:
    """Why a host does not answer: the error code of the failure, and its message."""

    code: int
    message: str


def unreachable_row(cause: HostCause | None) -> tuple[int, str]:
    """The error code and message of a row whose host was given up on.

    ``HOST_UNREACHABLE`` with the cause in the message, except a TLS failure, which keeps
    ``SSL_ERROR``: that host answers, but its certificate does not verify (a site CA for
    ``ca_bundle``, an expired certificate), and a user must see that in the codes.
    """
    if cause is None:
        return codes.HOST_UNREACHABLE, "host unreachable: circuit breaker gave up"
    code = codes.SSL_ERROR if cause.code == codes.SSL_ERROR else codes.HOST_UNREACHABLE
    return code, f"host unreachable: {cause.message}"


class CircuitBreaker:
    """The state of one host; see the module docstring for the state machine."""

    def __init__(
        self,
        threshold: int = 5,
        base_cooldown: float = 5.0,
        max_cooldown: float = 300.0,
        max_probes: int = 4,
        rng: random.Random | None = None,
        *,
        jitter: float = 0.2,
        probe_timeout: float = 120.0,
    ) -> None:
        if threshold < 1 or max_probes < 1:
            raise ValueError("threshold and max_probes must be at least 1")
        if not 0 < base_cooldown <= max_cooldown:
            raise ValueError("need 0 < base_cooldown <= max_cooldown")
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        self.threshold = threshold
        self.base_cooldown = base_cooldown
        self.max_cooldown = max_cooldown
        self.max_probes = max_probes
        self.jitter = jitter
        self.probe_timeout = probe_timeout
        self._rng = rng or random.Random()
        self._dead = False
        self._failures = 0  # consecutive, while closed
        self._failed_probes = 0
        self._open_until: float | None = None  # None while closed
        self._probe_started: float | None = None
        self._cause: HostCause | None = None

    @property
    def cause(self) -> HostCause | None:
        """The last failure's cause (the one that killed the host, once dead)."""
        return self._cause

    @property
    def failed_probes(self) -> int:
        return self._failed_probes

    @property
    def open_until(self) -> float:
        """When the current cool-down ends: -inf while closed, +inf once dead."""
        if self._dead:
            return math.inf
        return -math.inf if self._open_until is None else self._open_until

    def state(self, now: float) -> BreakerState:
        if self._dead:
            return "dead"
        if self._open_until is None:
            return "closed"
        return "open" if now < self._open_until else "half_open"

    def allow_request(self, now: float) -> bool:
        """Whether a request to the host may start now (in half_open, claims the probe)."""
        state = self.state(now)
        if state == "closed":
            return True
        if state != "half_open":
            return False
        probe_lost = (
            self._probe_started is not None and now - self._probe_started >= self.probe_timeout
        )
        if self._probe_started is None or probe_lost:
            self._probe_started = now
            return True
        return False

    def declare_dead(self, cause: HostCause | None = None) -> None:
        """Another rank's breaker already gave up on this host (or its robots.txt got no
        answer): do not try it again."""
        if not self._dead or self._cause is None:
            self._cause = cause or self._cause
        self._dead = True

    def record_success(self, now: float) -> None:
        """The host answered (any HTTP status): it is reachable."""
        if self._dead:
            return
        self._failures = 0
        self._failed_probes = 0
        self._open_until = None
        self._probe_started = None

    def record_failure(self, now: float, cause: HostCause | None = None) -> None:
        """A connection failure or timeout on this host."""
        state = self.state(now)
        if state != "dead" and cause is not None:
            self._cause = cause
        if state == "closed":
            self._failures += 1
            if self._failures >= self.threshold:
                self._open(now)
        elif state == "half_open" and self._probe_started is not None:
            self._failed_probes += 1
            self._probe_started = None
            if self._failed_probes >= self.max_probes:
                self._dead = True
            else:
                self._open(now)
        # open: a request from before the breaker opened; dead: nothing left to decide.

    def _open(self, now: float) -> None:
        self._failures = 0
        self._open_until = now + self._cooldown()

    def _cooldown(self) -> float:
        nominal = min(self.max_cooldown, self.base_cooldown * 2**self._failed_probes)
        stretch = self._rng.uniform(1 - self.jitter, 1 + self.jitter)
        return min(self.max_cooldown, nominal * stretch)
