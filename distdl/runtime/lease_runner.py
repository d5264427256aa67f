"""Download one leased partition to completion: every URL ends as one success or error row.

Retries go back into the lease's queue with a not-before time, behind the host's other
work, instead of sleeping in place; a Retry-After pauses the whole host gate. URLs that
robots.txt disallows are never fetched. The host's circuit breaker holds requests back
while the host does not answer, and once it gives up, every URL left becomes a
HOST_UNREACHABLE row at once.
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pyarrow as pa

from distdl.core import codes
from distdl.core.breaker import CircuitBreaker
from distdl.core.opt_out import is_opted_out
from distdl.core.retry import RetryPolicy
from distdl.core.retry_after import parse_retry_after
from distdl.core.robots import RobotsRules
from distdl.core.scheduler import Lease
from distdl.errors import OutputWriteError
from distdl.image.pipeline import ImageFailure, ProcessedImage
from distdl.io.partition_writer import PartitionOutput
from distdl.net.fetcher import Fetcher, FetchResult
from distdl.runtime.feedback import FeedbackBook
from distdl.runtime.host_gate import HostGate
from distdl.runtime.messages import PartitionStats

log = logging.getLogger("distdl.worker")

ImageProcessor = Callable[[bytes], Awaitable[ProcessedImage | ImageFailure]]


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


@dataclass
class HostGuards:
    """What a lease must respect on its host besides the rate: robots.txt and the breaker."""

    robots: RobotsRules
    breaker: CircuitBreaker
    on_dead: Callable[[], None]


@dataclass(order=True)
class _Pending:
    not_before: float
    order: int
    index: int = 0
    attempt: int = 0


class LeaseRunner:
    def __init__(
        self,
        lease: Lease,
        urls: pa.Table,
        gate: HostGate,
        fetcher: Fetcher,
        process_image: ImageProcessor,
        output: PartitionOutput,
        policy: LeasePolicy,
        feedback: FeedbackBook,
        rng: random.Random,
        guards: HostGuards,
    ) -> None:
        self.lease = lease
        self._rows = urls.to_pydict()
        self._gate = gate
        self._fetcher = fetcher
        self._process_image = process_image
        self._output = output
        self._policy = policy
        self._feedback = feedback
        self._rng = rng
        self._guards = guards
        self._queue: list[_Pending] = [_Pending(0.0, i, i, 0) for i in range(urls.num_rows)]
        self._order = urls.num_rows
        self._active: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._bug: BaseException | None = None
        self._errors_by_code: Counter[int] = Counter()
        self._successes = 0
        self._requests = 0
        self._throttled = 0
        self._bytes = 0

    async def run(self) -> PartitionStats:
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            while self._queue or self._active or self._bug:
                if self._bug is not None:
                    raise self._bug
                if not self._queue or self._queue[0].not_before > loop.time():
                    await self._wait_for_change(loop)
                    continue
                if self._settled_without_fetch(self._queue[0]):
                    heapq.heappop(self._queue)
                    continue
                if not self._guards.breaker.allow_request(loop.time()):
                    # Open, or half-open with its one probe out: look again when the
                    # cool-down ends or a request finishes, at least every BREAKER_RECHECK.
                    now = loop.time()
                    until = min(self._guards.breaker.open_until, now + BREAKER_RECHECK)
                    await self._wait_for_change(loop, max(until, now + 0.05))
                    continue
                item = heapq.heappop(self._queue)
                await self._gate.acquire()
                task = loop.create_task(self._attempt(item))
                self._active.add(task)
                task.add_done_callback(self._finished)
        finally:
            for task in self._active:
                task.cancel()
        return PartitionStats(
            successes=self._successes,
            errors=sum(self._errors_by_code.values()),
            requests=self._requests,
            throttled=self._throttled,
            bytes_downloaded=self._bytes,
            errors_by_code=dict(self._errors_by_code),
            seconds=time.monotonic() - started,
        )

    def _settled_without_fetch(self, item: _Pending) -> bool:
        """Rows robots.txt forbids, or whose host is dead, are written without a request."""
        url = self._rows["identifier"][item.index]
        if not self._guards.robots.allowed(url, self._policy.user_agent_token):
            self._add_error(item, codes.ROBOTS_DISALLOWED, "disallowed by robots.txt")
            return True
        if self._guards.breaker.state(asyncio.get_running_loop().time()) == "dead":
            self._add_error(
                item, codes.HOST_UNREACHABLE, "host unreachable: circuit breaker gave up"
            )
            return True
        return False

    async def _wait_for_change(
        self, loop: asyncio.AbstractEventLoop, until: float | None = None
    ) -> None:
        timeout = None
        if self._queue:
            timeout = max(0.0, self._queue[0].not_before - loop.time())
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

    async def _attempt(self, item: _Pending) -> None:
        url = self._rows["identifier"][item.index]
        try:
            result = await self._fetcher.fetch(url)
        finally:
            self._gate.release()
        self._requests += 1
        self._bytes += len(result.body or b"")
        self._tell_breaker(result)
        try:
            await self._handle(item, result)
        except (asyncio.CancelledError, OutputWriteError):
            raise  # the output failed, not this URL: the whole partition fails
        except Exception as exc:  # a bug on one URL must not take the rank down
            log.error("internal error on %s: %s", url, traceback.format_exc())
            self._add_error(item, codes.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")

    def _tell_breaker(self, result: FetchResult) -> None:
        breaker = self._guards.breaker
        now = asyncio.get_running_loop().time()
        if result.error_code in _HOST_FAILURES:
            was_dead = breaker.state(now) == "dead"
            breaker.record_failure(now)
            if not was_dead and breaker.state(now) == "dead":
                self._guards.on_dead()
        elif result.status > 0:
            breaker.record_success(now)

    async def _handle(self, item: _Pending, result: FetchResult) -> None:
        log.debug(
            "%s %s -> %s %s",
            self.lease.server_name,
            result.url,
            result.error_code,
            result.error_msg,
        )
        if not result.ok:
            self._handle_failure(item, result)
            return
        self._feedback.record_ok(self.lease.server_name, result.elapsed)
        if self._policy.respect_opt_out and is_opted_out(
            list(result.x_robots_tag), self._policy.user_agent_token
        ):
            self._add_error(
                item, codes.OPTED_OUT, "X-Robots-Tag: " + ", ".join(result.x_robots_tag)
            )
            return
        processed = await self._process_image(result.body or b"")
        if isinstance(processed, ImageFailure):
            self._add_error(item, processed.error_code, processed.error_msg)
        else:
            self._add_success(item, processed)

    def _handle_failure(self, item: _Pending, result: FetchResult) -> None:
        code = result.error_code
        retry_after = parse_retry_after(
            result.retry_after, time.time(), self._policy.retry_after_cap
        )
        if code in (429, 503):
            self._throttled += 1
            if retry_after:
                self._gate.pause(retry_after)

        self._feedback.record_failure(
            self.lease.server_name, code, result.elapsed, retry_after, result.error_msg
        )
        decision = self._policy.retry.decide(code, item.attempt, self._rng, retry_after)
        if decision.retry:
            loop_now = asyncio.get_running_loop().time()
            self._order += 1
            heapq.heappush(
                self._queue,
                _Pending(loop_now + decision.delay, self._order, item.index, item.attempt + 1),
            )
        else:
            self._add_error(item, code, result.error_msg)

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
                "is_license_full": all(row[k][i] for k in ("license", "source", "title")),
                "license": row["license"][i],
                "source": row["source"][i],
                "title": row["title"][i],
                "original_size": list(image.original_size),
                "resized_size": list(image.resized_size),
                "hashsum_original": image.hashsum_original,
                "hashsum_resized": image.hashsum_resized,
                "image": image.image,
            }
        )
