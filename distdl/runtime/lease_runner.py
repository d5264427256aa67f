"""Download one leased partition to completion: every URL ends as one success or error row.

Every request pays its own host's budget:

* The row's own URL, and redirect hops that stay on the lease's server, wait for the lease's
  gate. distdl follows redirects itself, one hop at a time: a hop goes into the queue ahead
  of fresh work (it finishes a row already started) and is paced like any request.
* A hop to another server waits for the gate of this worker's *share* of that server's
  budget (see :mod:`distdl.runtime.host_access`), obeys that server's robots.txt and
  breaker, and its answer is reported under that server. Such hops run as their own tasks,
  at most ``max_in_flight`` at once, so a slow target holds back only the rows sent to it.
* Before a hop leaves, :func:`distdl.core.redirects.hop_refusal` may refuse it: more than
  ``max_redirects`` hops (``TOO_MANY_REDIRECTS``), or from a public address to a non-public
  one (``UNSAFE_REDIRECT``). The row (its uuid and original identifier) gets the error.

What an answer asks for (:func:`distdl.core.signals.answer_signal`):

* A rate-limited answer (429, 420, 503 SlowDown) with ``Retry-After`` delays its URL's
  retry by that long. When the host's refusals cluster
  (:mod:`distdl.core.refusal_spacing`) it also pauses the gate of the host that answered
  at once; rank 0 then pauses the host's other leases.
* Any other 5xx with ``Retry-After`` only delays that URL's retry by at least that long; it
  does not pause the gate: rank 0's controller judges whether the host is overloaded.
* Retries wait in their own queue with a not-before time instead of sleeping in place, and
  go ahead of first tries once due: the answer to a retry is evidence rank 0 needs during
  the run (a 403 repeated after a pause may be forbidden content rather than a CDN's
  refusal; each URL is reported as one repeat, however often it is retried), and retries
  held back to the end of a partition would end it with a tail of backoffs. A retry
  resumes at the hop that failed.

Every request first waits for room in the rank's memory budget, then for its gate, and
holds its reservation until its row is settled (:mod:`distdl.runtime.image_stage`): when the
image pipeline lags, requests wait instead of bodies piling up.

URLs robots.txt disallows are never fetched. The host's circuit breaker holds requests back
while the host does not answer, and once it gives up, every URL left for it becomes a
HOST_UNREACHABLE row at once (SSL_ERROR for a TLS failure), its message saying why.
Every request, hop and robots.txt read counts in the stats.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import random
import time
import traceback
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from distdl.core import codes
from distdl.core.breaker import HostCause, unreachable_row
from distdl.core.opt_out import is_opted_out
from distdl.core.redirects import answer_refusal, came_from_public
from distdl.core.retry import RetryPolicy
from distdl.core.retry_after import parse_retry_after
from distdl.core.scheduler import Lease
from distdl.core.signals import Signal, answer_signal
from distdl.core.urls import classify_url
from distdl.errors import OutputWriteError
from distdl.image.pipeline import ImageFailure, ProcessedImage
from distdl.io.partition_writer import PartitionOutput
from distdl.net.fetcher import Fetcher, FetchResult
from distdl.runtime.feedback import FeedbackBook
from distdl.runtime.host_access import HostAccess, HostGuards, HostRoute
from distdl.runtime.image_stage import ImageStage, Reservation
from distdl.runtime.messages import PartitionStats
from distdl.schema import SUCCESSES, successes_schema

log = logging.getLogger("distdl.worker")


# Network failures that say nothing about the URL and everything about the host.
_HOST_FAILURES = frozenset(
    {codes.CONNECTION_ERROR, codes.TIMEOUT, codes.DNS_ERROR, codes.SSL_ERROR}
)
BREAKER_RECHECK = 1.0  # seconds between looks at an open breaker


@dataclass(frozen=True)
class LeasePolicy:
    retry: RetryPolicy
    retry_after_cap: float
    respect_opt_out: bool
    user_agent_token: str
    max_redirects: int
    max_in_flight: int  # cross-server hops of one lease at once


@dataclass(frozen=True)
class Hop:
    """Where a row's request goes after ``count`` redirects."""

    url: str
    server_name: str
    count: int
    from_public: bool  # the redirect that led here was answered from a public address


@dataclass(order=True)
class _Pending:
    not_before: float
    order: int
    index: int = field(default=0, compare=False)
    attempt: int = field(default=0, compare=False)
    hop: Hop | None = field(default=None, compare=False)  # None: the row's own URL
    last_code: int = field(default=0, compare=False)  # how its last try failed, if it did
    code_repeats: int = field(default=0, compare=False)  # tries before that failed so too


class LeaseRunner:
    def __init__(
        self,
        lease: Lease,
        urls: pa.Table,
        home: HostRoute,
        access: HostAccess,
        fetcher: Fetcher,
        images: ImageStage,
        output: PartitionOutput,
        policy: LeasePolicy,
        feedback: FeedbackBook,
        rng: random.Random,
    ) -> None:
        self.lease = lease
        self._rows = urls.to_pydict()
        # Columns the plan carries into successes (distdl.schema.successes_schema).
        self._carried = [n for n in successes_schema(urls.schema).names if n not in SUCCESSES.names]
        self._home = home
        self._access = access
        self._fetcher = fetcher
        self._images = images
        self._output = output
        self._policy = policy
        self._feedback = feedback
        self._rng = rng
        # First tries and redirect hops (hops first), and retries by the time they are due.
        self._fresh: list[_Pending] = [_Pending(0.0, i, i, 0) for i in range(urls.num_rows)]
        self._retries: list[_Pending] = []
        self._order = urls.num_rows
        self._hop_order = 0
        self._away = asyncio.Semaphore(policy.max_in_flight)
        self._active: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._bug: BaseException | None = None
        self._stopping = False
        self._errors_by_code: Counter[int] = Counter()
        self._successes = 0
        self._requests = home.robots_requests
        self._throttled = 0
        self._bytes = 0

    async def run(self) -> PartitionStats:
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        guards = self._home.guards
        try:
            while (self._queued() and not self._stopping) or self._active or self._bug:
                if self._bug is not None:
                    raise self._bug
                if self._stopping:  # only the requests in flight are left to settle
                    self._changed.clear()
                    await self._changed.wait()
                    continue
                queue = self._next_queue(loop.time())
                if queue is None:
                    await self._wait_for_change(loop)
                    continue
                if self._goes_away(queue[0]):
                    item = heapq.heappop(queue)
                    await self._away.acquire()
                    self._start(loop, self._attempt_away(item))
                    continue
                if self._settled_without_fetch(queue[0], guards):
                    heapq.heappop(queue)
                    continue
                if not guards.breaker.allow_request(loop.time()):
                    # Open, or half-open with its one probe out: look again when the
                    # cool-down ends or a request finishes, at least every BREAKER_RECHECK.
                    now = loop.time()
                    until = min(guards.breaker.open_until, now + BREAKER_RECHECK)
                    await self._wait_for_change(loop, max(until, now + 0.05))
                    continue
                item = heapq.heappop(queue)
                reservation = await self._admitted(self._home)
                if self._stopping:  # stopped while it waited for room: it is not sent
                    self._home.gate.release()
                    reservation.release()
                    heapq.heappush(queue, item)
                    continue
                self._start(loop, self._attempt(item, self._home, reservation))
        finally:
            for task in self._active:
                task.cancel()
        return self.progress(time.monotonic() - started)

    def progress(self, seconds: float = 0.0) -> PartitionStats:
        """What this lease settled so far (the live progress reads it while it runs)."""
        return PartitionStats(
            successes=self._successes,
            errors=sum(self._errors_by_code.values()),
            requests=self._requests,
            throttled=self._throttled,
            bytes_downloaded=self._bytes,
            errors_by_code=dict(self._errors_by_code),
            seconds=seconds,
        )

    def stop(self) -> None:
        """Start no more requests: :meth:`run` returns once those in flight have settled,
        leaving the rows not yet started unwritten (a graceful stop)."""
        self._stopping = True
        self._changed.set()

    def _start(self, loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, None]) -> None:
        task = loop.create_task(work)
        self._active.add(task)
        task.add_done_callback(self._finished)

    def _queued(self) -> bool:
        return bool(self._fresh or self._retries)

    def _next_queue(self, now: float) -> list[_Pending] | None:
        """The queue whose head goes next: a retry that is due, else a first try or hop."""
        if self._retries and self._retries[0].not_before <= now:
            return self._retries
        return self._fresh or None

    def _goes_away(self, item: _Pending) -> bool:
        return item.hop is not None and item.hop.server_name != self.lease.server_name

    def _url(self, item: _Pending) -> str:
        return item.hop.url if item.hop is not None else self._rows["identifier"][item.index]

    def _settled_without_fetch(self, item: _Pending, guards: HostGuards) -> bool:
        """Rows robots.txt forbids, or whose host is dead, are written without a request."""
        if not guards.robots.allowed(self._url(item), self._policy.user_agent_token):
            self._add_error(item, codes.ROBOTS_DISALLOWED, "disallowed by robots.txt")
            return True
        if guards.breaker.state(asyncio.get_running_loop().time()) == "dead":
            self._add_error(item, *unreachable_row(guards.breaker.cause))
            return True
        return False

    async def _wait_for_change(
        self, loop: asyncio.AbstractEventLoop, until: float | None = None
    ) -> None:
        timeout = None
        if self._retries:
            timeout = max(0.0, self._retries[0].not_before - loop.time())
        if until is not None:
            timeout = max(0.0, until - loop.time())
        self._changed.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._active.discard(task)
        self._changed.set()
        if not task.cancelled() and task.exception() is not None:
            # _attempt turns every per-URL problem into a row; reaching here is a bug (say, a
            # full disk) that must fail the partition loudly, not vanish.
            self._bug = task.exception()

    async def _attempt_away(self, item: _Pending) -> None:
        """A hop to another server: through this worker's share of that server's budget."""
        assert item.hop is not None
        try:
            route = await self._access.route(
                item.hop.server_name, item.hop.url, self.lease.lease_id
            )
            try:
                self._requests += route.robots_requests
                await self._attempt_on(item, route)
            finally:
                self._access.done(route)
        finally:
            self._away.release()

    async def _attempt_on(self, item: _Pending, route: HostRoute) -> None:
        if self._settled_without_fetch(item, route.guards):
            return
        breaker = route.guards.breaker
        now = asyncio.get_running_loop().time()
        if not breaker.allow_request(now):
            not_before = max(min(breaker.open_until, now + BREAKER_RECHECK), now + 0.05)
            self._requeue(item, not_before, item.attempt)
            return
        await self._attempt(item, route, await self._admitted(route))

    async def _admitted(self, route: HostRoute) -> Reservation:
        """Room in the rank's memory budget, then the host's gate: memory first, so waiting
        for the image pipeline never spends a slot of the host's pacing."""
        reservation = await self._images.admit()
        try:
            await route.gate.acquire()
        except BaseException:
            reservation.release()
            raise
        return reservation

    async def _attempt(self, item: _Pending, route: HostRoute, reservation: Reservation) -> None:
        """One request through ``route``, whose gate the caller has acquired, holding
        ``reservation`` of the memory budget until the row is settled."""
        url = self._url(item)
        try:
            try:
                result = await self._fetcher.fetch(url)
            finally:
                route.gate.release()
            reservation.arrived(len(result.body or b""))
            self._requests += 1
            self._bytes += len(result.body or b"")
            self._tell_guards(route.guards, result)
            try:
                await self._handle(item, route, result, reservation)
            except (asyncio.CancelledError, OutputWriteError):
                raise  # the output failed, not this URL: the whole partition fails
            except Exception as exc:  # a bug on one URL must not take the rank down
                log.error("internal error on %s: %s", url, traceback.format_exc())
                self._add_error(item, codes.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
        finally:
            reservation.release()

    def _tell_guards(self, guards: HostGuards, result: FetchResult) -> None:
        """The breaker hears every answer; the refusal spacing every answer but a refusal,
        which :meth:`_handle_failure` counts as it decides whether to pause."""
        breaker = guards.breaker
        now = asyncio.get_running_loop().time()
        if result.error_code in _HOST_FAILURES:
            was_dead = breaker.state(now) == "dead"
            breaker.record_failure(now, HostCause(result.error_code, result.error_msg))
            if not was_dead and breaker.state(now) == "dead":
                guards.on_dead()
        elif result.status > 0:
            breaker.record_success(now)
        if result.status > 0 and not self._refused(result):
            guards.refusals.observe(1, 0)

    @staticmethod
    def _refused(result: FetchResult) -> bool:
        return (
            result.error_code != 0
            and answer_signal(result.error_code, result.error_msg) is Signal.RATE_LIMITED
        )

    async def _handle(
        self, item: _Pending, route: HostRoute, result: FetchResult, reservation: Reservation
    ) -> None:
        server = route.server_name
        log.debug("%s %s -> %s %s", server, result.url, result.error_code, result.error_msg)
        if self._goes_away(item) and item.hop is not None:
            refused = answer_refusal(item.hop.from_public, result.peer_ip, self._access.policy)
            if refused is not None:
                self._add_error(item, refused.code, refused.message)
                return
        if result.redirect_url is not None:
            self._feedback.record_ok(server, result.elapsed)
            await self._follow(item, result)
            return
        if not result.ok:
            self._handle_failure(item, route, result)
            return
        # Served after a 403: that 403 was a refusal, not forbidden content.
        self._feedback.record_ok(server, result.elapsed, after_forbidden=item.last_code == 403)
        if self._policy.respect_opt_out and is_opted_out(
            list(result.x_robots_tag), self._policy.user_agent_token
        ):
            self._add_error(
                item, codes.OPTED_OUT, "X-Robots-Tag: " + ", ".join(result.x_robots_tag)
            )
            return
        processed = await self._images.process(result.body or b"", reservation, result.url)
        if isinstance(processed, ImageFailure):
            self._add_error(item, processed.error_code, processed.error_msg)
        else:
            self._add_success(item, processed)

    async def _follow(self, item: _Pending, result: FetchResult) -> None:
        """Queue the next hop ahead of fresh work, unless it must be refused."""
        assert result.redirect_url is not None
        done = item.hop.count if item.hop is not None else 0
        refused = await self._access.hop_refusal(result, done, self._policy.max_redirects)
        if refused is not None:
            self._add_error(item, refused.code, refused.message)
            return
        server_name = classify_url(result.redirect_url).server_name
        assert server_name is not None  # the fetcher only returns valid redirect URLs
        from_public = came_from_public(result.peer_ip, self._access.policy)
        hop = Hop(result.redirect_url, server_name, done + 1, from_public)
        self._hop_order -= 1
        heapq.heappush(self._fresh, _Pending(0.0, self._hop_order, item.index, item.attempt, hop))

    def _handle_failure(self, item: _Pending, route: HostRoute, result: FetchResult) -> None:
        code = result.error_code
        signal = answer_signal(code, result.error_msg)
        retry_after = parse_retry_after(
            result.retry_after, time.time(), self._policy.retry_after_cap
        )
        if signal is Signal.RATE_LIMITED or code == 503:
            self._throttled += 1
        clustered = signal is Signal.RATE_LIMITED and route.guards.refusals.observe(0, 1)
        if clustered and retry_after:
            # Refusals that cluster are the host saying it is overloaded: stop this lease's
            # requests to it now, before rank 0's pause arrives. A lone refusal's or a 5xx's
            # Retry-After delays only its own URL (below): one early request, or one fault,
            # is no overload (distdl.core.refusal_spacing).
            route.gate.pause(retry_after)
        repeats = item.code_repeats + 1 if code == item.last_code else 0
        self._feedback.record_failure(
            route.server_name, code, result.elapsed, retry_after, result.error_msg, repeats=repeats
        )
        decision = self._policy.retry.decide(code, item.attempt, self._rng, retry_after)
        if decision.retry:
            loop_now = asyncio.get_running_loop().time()
            self._requeue(item, loop_now + decision.delay, item.attempt + 1, code, repeats)
        else:
            self._add_error(item, code, result.error_msg)

    def _requeue(
        self,
        item: _Pending,
        not_before: float,
        attempt: int,
        failed_with: int | None = None,
        repeats: int = 0,
    ) -> None:
        """``failed_with``: the code of the try that failed, ``repeats`` the tries before it
        that failed so too (default: both as they were)."""
        self._order += 1
        if failed_with is None:
            failed_with, repeats = item.last_code, item.code_repeats
        pending = _Pending(
            not_before, self._order, item.index, attempt, item.hop, failed_with, repeats
        )
        heapq.heappush(self._retries, pending)
        self._changed.set()

    def _add_error(self, item: _Pending, code: int, message: str) -> None:
        self._errors_by_code[code] += 1
        self._output.add_error(
            {
                "uuid": self._rows["uuid"][item.index],
                "identifier": self._rows["identifier"][item.index],
                "retry_count": item.attempt,
                "error_code": code,
                "error_msg": message,
            }
        )

    def _add_success(self, item: _Pending, image: ProcessedImage) -> None:
        self._successes += 1
        row = self._rows
        i = item.index
        self._output.add_success(
            {
                "uuid": row["uuid"][i],
                "source_id": row["source_id"][i],
                "identifier": row["identifier"][i],
                "is_license_full": self._license_full(i),
                "license": row["license"][i],
                "source": row["source"][i],
                "title": row["title"][i],
                "original_size": list(image.original_size),
                "resized_size": list(image.resized_size),
                "hashsum_original": image.hashsum_original,
                "hashsum_resized": image.hashsum_resized,
                "image": image.image,
                **{name: row[name][i] for name in self._carried},
            }
        )

    def _license_full(self, i: int) -> bool:
        """The input layer's verdict (distdl.inputs.licences); plans made before it: the
        original tool's rule, licence, source and title all non-empty."""
        row = self._rows
        if "is_license_full" in row:
            return bool(row["is_license_full"][i])
        return all(row[k][i] for k in ("license", "source", "title"))
