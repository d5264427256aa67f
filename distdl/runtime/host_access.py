"""A worker's way to every host it sends requests to: robots.txt, breakers, shares, hops.

Per host, not per lease, a worker keeps:

* the circuit breaker, which outlives leases: a host that died for one partition is not
  rediscovered dead, timeout by timeout, for the next;
* the robots.txt rules, read once: from the store when an earlier lease (or run) saved
  them, else fetched through the gate of the lease or share that needs them first, so the
  fetch is paced like any request of that host. Rank 0 hears every verdict
  (``RobotsRead``): it caps the host's budget by Crawl-delay/Request-rate and lets more
  leases open. Until rank 0's lower rates arrive, the worker clamps the host's gates to
  the cap itself;
* a *share* of the budget of each host its leases were redirected to: asked from rank 0
  (``HostShareRequested``, answered by ``GrantShare``) and given back
  (``HostShareReleased``) once no lease sent a hop there for ``SHARE_IDLE`` seconds, or
  when the last lease that used it ends.

It also judges redirect hops (:func:`distdl.core.redirects.hop_refusal`), resolving a new
server's addresses with the session's own resolver before anything connects to it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from distdl.core import codes
from distdl.core.breaker import CircuitBreaker, HostCause
from distdl.core.redirects import AddressPolicy, HopRefusal, came_from_public, hop_refusal
from distdl.core.refusal_spacing import RefusalSpacing
from distdl.core.robots import RobotsRules
from distdl.core.urls import classify_url
from distdl.io.robots_store import RobotsAnswer, load_robots, load_robots_cause, save_robots
from distdl.layout import Layout
from distdl.net.addresses import AddressLookup
from distdl.net.fetcher import Fetcher, FetchResult
from distdl.net.robots_fetch import ROBOTS_MAX_REDIRECTS, fetch_robots
from distdl.runtime.channel import Channel
from distdl.runtime.feedback import FeedbackBook
from distdl.runtime.host_gate import HostGate, StartLog
from distdl.runtime.messages import (
    GrantShare,
    HostDeclaredDead,
    HostShareReleased,
    HostShareRequested,
    RobotsRead,
)

log = logging.getLogger("distdl.worker")

COORDINATOR = 0
# Seconds a share may sit unused before it goes back to rank 0: long enough that a lease
# whose URLs redirect now and then keeps it, short enough that idle budget is not hoarded.
SHARE_IDLE = 3.0


@dataclass
class HostGuards:
    """What requests to a host must respect besides the rate: robots.txt, the breaker, and
    whether its refusals cluster (then a Retry-After pauses every request to it)."""

    robots: RobotsRules
    breaker: CircuitBreaker
    on_dead: Callable[[], None]
    refusals: RefusalSpacing = field(default_factory=RefusalSpacing)


@dataclass
class HostRoute:
    """How to send a request to one host: its gate (rate) and its guards."""

    server_name: str
    gate: HostGate
    guards: HostGuards
    robots_requests: int = 0  # requests spent reading robots.txt to open this route


@dataclass
class _Share:
    granted: asyncio.Future[None]
    lease_id: int | None = None
    gate: HostGate | None = None
    users: set[int] = field(default_factory=set)  # the leases that routed hops here
    in_flight: int = 0
    idle_since: float = math.inf


@dataclass(frozen=True)
class AccessSettings:
    max_in_flight: int
    user_agent_token: str
    address_policy: AddressPolicy


class HostAccess:
    def __init__(
        self,
        channel: Channel,
        layout: Layout,
        settings: AccessSettings,
        robots_fetcher: Fetcher,
        lookup: AddressLookup,
        feedback: FeedbackBook,
        new_breaker: Callable[[], CircuitBreaker],
    ) -> None:
        self._channel = channel
        self._layout = layout
        self._settings = settings
        self._robots_fetcher = robots_fetcher
        self._lookup = lookup
        self._feedback = feedback
        self._new_breaker = new_breaker
        self._breakers: dict[str, CircuitBreaker] = {}
        self._robots: dict[str, RobotsRules] = {}
        self._robots_locks: dict[str, asyncio.Lock] = {}
        self._shares: dict[str, _Share] = {}
        self.starts = StartLog()  # shared by every gate this rank opens, leases and shares

    @property
    def policy(self) -> AddressPolicy:
        return self._settings.address_policy

    # ------------------------------------------------------------ guards, per host

    def breaker(self, server_name: str) -> CircuitBreaker:
        if server_name not in self._breakers:
            self._breakers[server_name] = self._new_breaker()
        return self._breakers[server_name]

    def rate_cap(self, server_name: str) -> float:
        """The highest rate robots.txt allows on the host (inf until read, or if it asks none)."""
        rules = self._robots.get(server_name)
        cap = rules.rate_cap(self._settings.user_agent_token) if rules else None
        return math.inf if cap is None else cap

    async def guards(self, server_name: str, url: str, gate: HostGate) -> tuple[HostGuards, int]:
        """The host's guards, reading robots.txt through ``gate`` first if nobody has; also
        the number of requests that reading took."""
        lock = self._robots_locks.setdefault(server_name, asyncio.Lock())
        requests = 0
        async with lock:
            if server_name not in self._robots:
                requests = await self._establish_robots(server_name, url, gate)
        guards = HostGuards(
            self._robots[server_name], self.breaker(server_name), self._dead_reporter(server_name)
        )
        return guards, requests

    def _dead_reporter(self, server_name: str) -> Callable[[], None]:
        def report_dead() -> None:
            cause = self.breaker(server_name).cause
            why = cause.message if cause is not None else "no cause known"
            log.warning("%s: circuit breaker gave up on the host: %s", server_name, why)
            self._channel.send(COORDINATOR, HostDeclaredDead(server_name, cause))

        return report_dead

    async def _establish_robots(self, server_name: str, url: str, gate: HostGate) -> int:
        breaker = self.breaker(server_name)
        dead = breaker.state(asyncio.get_running_loop().time()) == "dead"
        answer = load_robots(self._layout, server_name)
        requests = 0
        failure = load_robots_cause(self._layout, server_name) if answer is not None else None
        if answer is None and not dead:
            # Never asked, or nobody answered long ago (this is also how --retry-errors -32
            # gives an unreachable host its second chance): ask now.
            answer, requests, failure = await self._read_robots(server_name, url, gate)
            save_robots(self._layout, server_name, *answer, cause=failure)
        if answer is not None and answer[0] is None and not dead:
            breaker.declare_dead(_robots_cause(failure))
            self._dead_reporter(server_name)()
        status, text = answer or (None, None)
        # RFC 9309 forbids crawling a host whose robots.txt is unreachable; its rows become
        # HOST_UNREACHABLE (retryable) through the breaker, not ROBOTS_DISALLOWED, since the
        # host, not a rule, failed.
        rules = (
            RobotsRules.allow_everything()
            if status is None
            else RobotsRules.from_response(status, text)
        )
        self._robots[server_name] = rules
        token = self._settings.user_agent_token
        self._channel.send(
            COORDINATOR, RobotsRead(server_name, rules.rate_cap(token), rules.crawl_delay(token))
        )
        share = self._shares.get(server_name)
        if share is not None and share.gate is not None:
            share.gate.set_rate(min(share.gate.rate, self.rate_cap(server_name)))
        return requests

    async def _read_robots(
        self, server_name: str, url: str, gate: HostGate
    ) -> tuple[RobotsAnswer, int, HostCause | None]:
        """The answer, the requests it took, and the last failure on the way (the cause
        when the answer is "unreachable")."""
        requests = 0
        failure: HostCause | None = None

        async def paced(hop_url: str) -> FetchResult:
            nonlocal requests
            await gate.acquire()
            try:
                requests += 1
                result = await self._robots_fetcher.fetch(hop_url)
            finally:
                gate.release()
            if result.ok or result.redirect_url is not None:
                self._feedback.record_ok(server_name, result.elapsed)
            else:
                nonlocal failure
                failure = HostCause(result.error_code, result.error_msg)
                self._feedback.record_failure(
                    server_name, result.error_code, result.elapsed, None, result.error_msg
                )
            return result

        async def may_follow(result: FetchResult, hops: int) -> bool:
            return await self.hop_refusal(result, hops, ROBOTS_MAX_REDIRECTS) is None

        answer = await fetch_robots(paced, url, may_follow)
        return answer, requests, failure

    # ---------------------------------------------------------------- redirect hops

    async def hop_refusal(
        self, result: FetchResult, hops_done: int, max_redirects: int
    ) -> HopRefusal | None:
        """Why the redirect in ``result`` must not be followed, or None (see core.redirects).

        A new server's addresses are looked up now, before anything connects to it.
        """
        assert result.redirect_url is not None
        here = classify_url(result.url).server_name
        there = classify_url(result.redirect_url).server_name
        targets = None if here == there else await self._lookup.addresses(result.redirect_url)
        return hop_refusal(
            hops_done,
            max_redirects,
            from_public=came_from_public(result.peer_ip, self.policy),
            target_addresses=targets,
            policy=self.policy,
        )

    # ------------------------------------------------------------------------ shares

    async def route(self, server_name: str, url: str, user: int) -> HostRoute:
        """A route to a host through this worker's share of its budget (asked for when
        missing). Call :meth:`done` when the request is over."""
        share = self._shares.get(server_name)
        if share is None:
            share = _Share(asyncio.get_running_loop().create_future())
            self._shares[server_name] = share
            self._channel.send(COORDINATOR, HostShareRequested(server_name))
        share.users.add(user)
        share.in_flight += 1
        try:
            await asyncio.shield(share.granted)
            assert share.gate is not None
            guards, requests = await self.guards(server_name, url, share.gate)
        except BaseException:
            self._finished_with(share)
            raise
        return HostRoute(server_name, share.gate, guards, requests)

    def done(self, route: HostRoute) -> None:
        share = self._shares.get(route.server_name)
        if share is not None and share.gate is route.gate:
            self._finished_with(share)

    def _finished_with(self, share: _Share) -> None:
        share.in_flight -= 1
        if share.in_flight == 0:
            share.idle_since = asyncio.get_running_loop().time()

    def granted(self, message: GrantShare) -> None:
        share = self._shares.get(message.server_name)
        if share is None or share.lease_id is not None:  # not asked for: give it straight back
            self._channel.send(COORDINATOR, HostShareReleased(message.lease_id))
            return
        if message.host_unreachable:
            self.breaker(message.server_name).declare_dead(message.cause)
        share.lease_id = message.lease_id
        rate = min(message.rate, self.rate_cap(message.server_name))
        share.gate = HostGate(rate, self._settings.max_in_flight, message.server_name, self.starts)
        if message.start_after > 0:
            share.gate.resume_in(message.start_after)  # its start slot (core.start_slots)
        share.idle_since = asyncio.get_running_loop().time()
        share.granted.set_result(None)

    def change_rate(self, lease_id: int, rate: float) -> bool:
        """Apply a ChangeRate meant for one of the shares; False when it is none of them."""
        for server_name, share in self._shares.items():
            if share.lease_id == lease_id and share.gate is not None:
                share.gate.set_rate(min(rate, self.rate_cap(server_name)))
                return True
        return False

    def resume_share(self, lease_id: int, seconds: float) -> None:
        """Apply a PauseHolder meant for one of the shares (a stale one is ignored)."""
        for share in self._shares.values():
            if share.lease_id == lease_id and share.gate is not None:
                share.gate.resume_in(seconds)

    def lease_ended(self, lease_id: int) -> None:
        """The lease is over: shares no other lease used go back at once."""
        for server_name, share in list(self._shares.items()):
            share.users.discard(lease_id)
            if not share.users and share.in_flight == 0 and share.lease_id is not None:
                self._release(server_name)

    def release_idle(self, now: float) -> None:
        for server_name, share in list(self._shares.items()):
            idle = share.in_flight == 0 and now - share.idle_since >= SHARE_IDLE
            if idle and share.lease_id is not None:
                self._release(server_name)

    def _release(self, server_name: str) -> None:
        share = self._shares.pop(server_name)
        assert share.lease_id is not None
        self._channel.send(COORDINATOR, HostShareReleased(share.lease_id))


def _robots_cause(failure: HostCause | None) -> HostCause:
    """Why a host whose robots.txt got no answer is unreachable (RFC 9309: not crawled)."""
    if failure is None:  # no failed answer: its redirects were refused, or too many
        return HostCause(codes.HOST_UNREACHABLE, "robots.txt did not lead to an answer")
    return HostCause(failure.code, f"robots.txt: {failure.message}")
