"""The partition-lease scheduler run by rank 0: who downloads which partition, how fast.

Work is planned as partitions of URLs grouped by host (``server_name``). A worker *leases* a
partition together with a request rate; the scheduler owns the politeness invariant:

    for every host, the rates of its open leases add up to at most the host's budget (req/s).

Rules (the constants live just below this docstring):

1. Concurrency per host. A host with budget ``B`` has at most
   ``k_max(B) = max(1, min(n_workers, ceil(B / lease_rate_target)))`` leases open at once:
   a CDN with a large budget is spread over several ranks, a museum server gets one. A worker
   never holds two leases on the same host.
2. Priority: the critical path first. ``acquire`` visits hosts by the largest expected
   remaining time ``remaining_urls(host) / B`` (remaining = not completed and not given up,
   leased partitions included), ties broken by name. The slowest host therefore starts at
   once and is never starved by quicker ones. Within a host, requeued partitions come first,
   then fresh ones, each in partition-id order.
3. Rate of a new lease: ``B / k`` with ``k = min(k_max(B), open leases + unleased
   partitions)``, never more than what is free (``B - rate_in_use``). When less than
   ``MIN_GRANT_FRACTION`` of that fair share is free the lease is not granted now: a lease
   keeps its rate for a long time, and a crumb of budget would make its partition crawl.
4. Top-up. When a lease closes (completed or failed) the host's open leases are raised by
   water-filling towards the fair share ``B / k``, never past ``B`` in total. When the host has
   no unleased partition left this spreads the whole budget evenly over its open leases.
   Raising is safe: the freed share belonged to a lease that is already closed.
5. ``set_budget``: lowering scales every open lease down by ``new / old``; raising (and any
   room left after lowering) is shared out by the same top-up. The invariant holds on the
   state after every call. In the returned ``RateChange`` lists decreases come before increases,
   so a coordinator that sends them in order never has a host above budget on the workers.
6. Failures. A failed partition is requeued at the front of its host's queue (eligible again
   ``retry_delay * 2**(failures - 1)`` seconds after the failure, 0 by default) until it has
   failed ``max_attempts`` times; then it is given up (``given_up``). A dead worker's leases
   (``release_worker``) are requeued without counting as a failure: the partition was not at
   fault.
7. ``pause_host``: no new lease on the host before ``until`` (when its open leases and
   shares start again is :mod:`distdl.core.start_slots`'s business). ``next_wakeup`` says
   when a pause or a retry delay ends for a host that has queued work, so the coordinator
   can set a timer.
8. Stale lease ids (already closed, e.g. released after a worker was declared dead) are
   ignored by ``complete`` and ``fail``: the partition's marker file keeps results exactly-once.
9. Unverified hosts. Until ``mark_verified`` (rank 0 heard the host's robots.txt verdict,
   which may lower its budget), a host listed in ``unverified`` has at most one lease open:
   its first lease reads robots.txt before any other request goes out. That lease gets the
   rate rule 3 gives it anyway, so the other leases find their share free once verified.
10. Shares. A worker whose lease was redirected to another host asks for a *share* of that
   host's budget (``open_share``): a lease without a partition, counted in the invariant
   like any lease. A host never seen before is created with the default budget (the caller
   sets its real one first). The share is a fair slice ``B / (s + n_shares + 1)``, with
   ``s = min(k_max, open leases + unleased partitions)``; when less than that slice, plus a
   slice for each of the ``s`` slots no lease holds yet, is free, every open lease and share
   of the host is scaled down to make that room (decreases returned first).
   Shares do not count towards ``k_max`` and never hold a partition back: the fair share of
   a new lease also counts the shares (rule 3 with ``k + n_shares``). ``close_share`` tops
   the rest up again (rule 4); a dead worker's shares go with its leases.

Everything is deterministic: no randomness and no clock reads; time comes in as ``now``
(monotonic seconds of the caller's clock).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

# Requests per second one lease is meant to carry; a host allowing more is shared between
# ranks so no single rank becomes its bottleneck. Not lower: leases on different ranks pace
# their starts independently and drift into each other, and a bucket without a burst
# allowance (nginx limit_req's default) refuses every such collision, which no controller
# can tell from an overshoot, and the host's rate collapses (benchmarks/README.md has a live
# case). One rank drives far more than this of images.
DEFAULT_LEASE_RATE_TARGET = 50.0
# Three whole-partition failures are almost surely a bug or a broken host, not bad luck.
DEFAULT_MAX_ATTEMPTS = 3
# A new lease needs at least this fraction of its fair share free (see rule 3).
MIN_GRANT_FRACTION = 0.25
# Rate increases smaller than this fraction of the budget are float noise, not worth a message.
_RATE_NOISE = 1e-12
# The partition id of a share (rule 10): it downloads no partition.
SHARE_PARTITION = -1


@dataclass(frozen=True)
class PartitionRef:
    server_name: str
    partition_id: int
    n_urls: int


@dataclass(frozen=True)
class Lease:
    lease_id: int
    worker: int
    server_name: str
    partition_id: int
    n_urls: int
    rate: float  # requests per second this worker may send to the host for this lease

    @property
    def partition(self) -> PartitionRef:
        return PartitionRef(self.server_name, self.partition_id, self.n_urls)


@dataclass(frozen=True)
class RateChange:
    lease_id: int
    worker: int
    server_name: str
    rate: float  # the lease's new rate, replacing the previous one


def k_max(budget: float, n_workers: int, lease_rate_target: float) -> int:
    """How many leases a host with this budget may have open at once (rule 1)."""
    return max(1, min(n_workers, math.ceil(budget / lease_rate_target)))


def water_level(rates: Iterable[float], budget: float, cap: float) -> float:
    """The highest level ``L <= cap`` with ``sum(max(r, L)) <= budget``.

    Raising every rate below ``L`` up to ``L`` shares out the free budget evenly among the
    lowest leases. The result may lie below every rate, which then means "raise nothing".
    """
    ordered = sorted(rates)
    if sum(max(rate, cap) for rate in ordered) <= budget:
        return cap
    untouched = sum(ordered)
    for raised, rate in enumerate(ordered, start=1):
        untouched -= rate
        level = (budget - untouched) / raised
        if raised == len(ordered) or level <= ordered[raised]:
            return level
    return cap  # only reached with no rates at all


@dataclass
class _Host:
    name: str
    budget: float
    fresh: deque[PartitionRef] = field(default_factory=deque)
    # (partition_id, not_before, ref), kept in partition-id order; leased before `fresh`.
    requeued: list[tuple[int, float, PartitionRef]] = field(default_factory=list)
    leases: dict[int, Lease] = field(default_factory=dict)
    shares: dict[int, Lease] = field(default_factory=dict)  # partition_id is SHARE_PARTITION
    remaining_urls: int = 0
    paused_until: float = -math.inf

    @property
    def unleased(self) -> int:
        return len(self.fresh) + len(self.requeued)

    def rate_in_use(self) -> float:
        return sum(lease.rate for lease in self.holders())

    def holders(self) -> list[Lease]:
        """Open leases and shares: everything that spends the budget."""
        return [*self.leases.values(), *self.shares.values()]

    def peek(self, now: float) -> PartitionRef | None:
        for _, not_before, ref in self.requeued:
            if not_before <= now:
                return ref
        return self.fresh[0] if self.fresh else None

    def take(self, ref: PartitionRef) -> None:
        if self.fresh and self.fresh[0] is ref:
            self.fresh.popleft()
            return
        index = next(i for i, entry in enumerate(self.requeued) if entry[2] is ref)
        del self.requeued[index]

    def requeue(self, ref: PartitionRef, not_before: float) -> None:
        bisect.insort(self.requeued, (ref.partition_id, not_before, ref), key=lambda e: e[0])

    def ready_at(self) -> float:
        """When a queued partition can next be leased, ignoring any pause."""
        if self.fresh:
            return -math.inf
        return min((entry[1] for entry in self.requeued), default=math.inf)


def _checked_budget(server_name: str, rate: float) -> float:
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"budget of {server_name!r} must be a positive number, got {rate}")
    return float(rate)


class LeaseScheduler:
    def __init__(
        self,
        partitions: Iterable[PartitionRef],
        budgets: Mapping[str, float],
        *,
        default_budget: float,
        n_workers: int,
        lease_rate_target: float = DEFAULT_LEASE_RATE_TARGET,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        retry_delay: float = 0.0,
        unverified: Iterable[str] = (),
    ) -> None:
        _checked_budget("(default)", default_budget)
        if n_workers < 1 or max_attempts < 1:
            raise ValueError(
                f"n_workers ({n_workers}) and max_attempts ({max_attempts}) must be >= 1"
            )
        if not lease_rate_target > 0 or retry_delay < 0:
            raise ValueError("lease_rate_target must be > 0 and retry_delay >= 0")
        self._default_budget = float(default_budget)
        self._n_workers = n_workers
        self._lease_rate_target = lease_rate_target
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self._hosts: dict[str, _Host] = {}
        for name, rate in budgets.items():
            self._host(name).budget = _checked_budget(name, rate)
        self._n_partitions = self._enqueue(partitions)
        self._unverified = set(unverified)
        self._waiting = {name for name, host in self._hosts.items() if host.unleased}
        self._leases: dict[int, Lease] = {}
        self._held: dict[int, dict[str, int]] = {}  # worker -> host -> lease_id
        self._shares: dict[int, Lease] = {}
        self._share_of: dict[tuple[int, str], int] = {}  # (worker, host) -> share's lease_id
        self._failures: dict[tuple[str, int], int] = {}
        self._given_up: list[PartitionRef] = []
        self._n_closed = 0  # partitions completed or given up
        self._next_lease_id = 1

    # ----------------------------------------------------------------- commands

    def acquire(self, worker: int, now: float, max_leases: int) -> list[Lease]:
        """Up to ``max_leases`` new leases for ``worker``, on distinct hosts it does not hold."""
        granted: list[Lease] = []
        held = self._held.get(worker, {})
        for host in self._by_priority():
            if len(granted) >= max_leases:
                break
            if host.name in held or host.paused_until > now:
                continue
            lease = self._grant(host, worker, now)
            if lease is not None:
                granted.append(lease)
        return granted

    def deal(self, wanted: Mapping[int, int], now: float) -> list[Lease]:
        """Deal leases one per worker per round, in ``wanted``'s order, until no worker that
        still wants some (``wanted[worker]`` leases) gets one.

        The same leases as calling ``acquire(worker, now, 1)`` round after round, but the
        hosts are filtered and sorted once per deal, not once per worker: with hundreds of
        workers and hosts, rank 0 deals after every event that may free a lease.
        """
        want = {worker: count for worker, count in wanted.items() if count > 0}
        # Granting on one host changes no other host's priority or room: one order serves
        # every round, and a host that cannot grant now drops out for the rest of the deal.
        hosts = [host for host in self._by_priority() if self._may_grant(host, now)]
        granted: list[Lease] = []
        while want and hosts:
            dealt = False
            for worker in list(want):
                lease = self._grant_first(hosts, worker, now)
                if lease is None:
                    continue
                dealt = True
                granted.append(lease)
                want[worker] -= 1
                if not want[worker]:
                    del want[worker]
            if not dealt:
                break
        return granted

    def _may_grant(self, host: _Host, now: float) -> bool:
        """Whether ``_grant`` could give anyone a lease on the host now (cheap checks)."""
        limit = 1 if host.name in self._unverified else self._k_max(host)
        return host.paused_until <= now and len(host.leases) < limit

    def _grant_first(self, hosts: list[_Host], worker: int, now: float) -> Lease | None:
        """A lease for ``worker`` on the first host of ``hosts`` it can get one on; hosts
        found unable to grant anyone are removed from ``hosts``."""
        held = self._held.get(worker, {})
        index = 0
        while index < len(hosts):
            host = hosts[index]
            if host.name in held:
                index += 1
                continue
            lease = self._grant(host, worker, now)
            if lease is not None:
                if not self._may_grant(host, now) or not host.unleased:
                    del hosts[index]
                return lease
            del hosts[index]  # no room for anyone: nothing in this deal changes that
        return None

    def complete(self, lease_id: int) -> list[RateChange]:
        lease = self._close(lease_id)
        if lease is None:
            return []
        host = self._hosts[lease.server_name]
        host.remaining_urls -= lease.n_urls
        self._n_closed += 1
        return self._rebalance(host)

    def fail(self, lease_id: int, now: float) -> tuple[bool, list[RateChange]]:
        """Requeue the lease's partition, or give it up after ``max_attempts`` failures."""
        lease = self._close(lease_id)
        if lease is None:
            return False, []
        host = self._hosts[lease.server_name]
        key = (lease.server_name, lease.partition_id)
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        requeued = failures < self._max_attempts
        if requeued:
            self._requeue(host, lease.partition, now + self._retry_delay * 2 ** (failures - 1))
        else:
            host.remaining_urls -= lease.n_urls
            self._given_up.append(lease.partition)
            self._n_closed += 1
        return requeued, self._rebalance(host)

    def release_worker(self, worker: int) -> list[Lease]:
        """Take back every lease of a dead worker; its partitions go back to the queue (its
        shares simply close)."""
        lease_ids = sorted(self._held.get(worker, {}).values())
        released = [lease for lease in map(self._close, lease_ids) if lease is not None]
        for lease in released:
            self._requeue(self._hosts[lease.server_name], lease.partition, -math.inf)
        self._held.pop(worker, None)
        for (holder, _), share_id in list(self._share_of.items()):
            if holder == worker:
                self._close_share(share_id)
        return released

    def open_share(self, worker: int, server_name: str) -> tuple[Lease, list[RateChange]]:
        """A share of the host's budget for ``worker`` (rule 10): the share, and the rate
        decreases of the host's other holders that made room for it (send those first)."""
        host = self._host(server_name)
        existing = self._share_of.get((worker, server_name))
        if existing is not None:
            return self._shares[existing], []
        slots = min(self._k_max(host), len(host.leases) + host.unleased)
        rate = host.budget / (slots + len(host.shares) + 1)
        # Room stays for the partitions that may still open a lease (earlier shares were cut
        # larger, when fewer held the host): a share never holds a partition back.
        kept = rate * max(0, slots - len(host.leases))
        in_use = host.rate_in_use()
        changes: list[RateChange] = []
        if in_use > 0 and host.budget - in_use < rate + kept:
            scale = (host.budget - rate - kept) / in_use
            changes = self._rebalance(host, scale, raise_rates=False)
        share = Lease(self._next_lease_id, worker, server_name, SHARE_PARTITION, 0, rate)
        self._next_lease_id += 1
        self._shares[share.lease_id] = host.shares[share.lease_id] = share
        self._share_of[(worker, server_name)] = share.lease_id
        return share, changes

    def close_share(self, lease_id: int) -> list[RateChange]:
        """Give a share back; the host's other holders are topped up. Stale ids are ignored."""
        share = self._close_share(lease_id)
        return [] if share is None else self._rebalance(self._hosts[share.server_name])

    def mark_verified(self, server_name: str) -> None:
        """Rank 0 heard the host's robots.txt verdict: more than one lease may open (rule 9)."""
        self._unverified.discard(server_name)

    def set_budget(self, server_name: str, rate: float) -> list[RateChange]:
        rate = _checked_budget(server_name, rate)
        host = self._host(server_name)
        scale = min(1.0, rate / host.budget)
        host.budget = rate
        return self._rebalance(host, scale)

    def pause_host(self, server_name: str, until: float) -> None:
        host = self._host(server_name)
        host.paused_until = max(host.paused_until, until)

    # ------------------------------------------------------------------ queries

    def budget(self, server_name: str) -> float:
        host = self._hosts.get(server_name)
        return host.budget if host else self._default_budget

    def open_leases(self, server_name: str) -> list[Lease]:
        host = self._hosts.get(server_name)
        return sorted(host.leases.values(), key=lambda lease: lease.lease_id) if host else []

    def open_shares(self, server_name: str) -> list[Lease]:
        host = self._hosts.get(server_name)
        return sorted(host.shares.values(), key=lambda share: share.lease_id) if host else []

    def holders(self, server_name: str) -> list[Lease]:
        """Open leases and shares of the host, by lease id."""
        return sorted(
            [*self.open_leases(server_name), *self.open_shares(server_name)],
            key=lambda lease: lease.lease_id,
        )

    def rate_in_use(self, server_name: str) -> float:
        host = self._hosts.get(server_name)
        return host.rate_in_use() if host else 0.0

    def remaining_urls(self, server_name: str) -> int:
        host = self._hosts.get(server_name)
        return host.remaining_urls if host else 0

    def leases_of(self, worker: int) -> list[Lease]:
        return sorted(
            (self._leases[i] for i in self._held.get(worker, {}).values()),
            key=lambda lease: lease.lease_id,
        )

    def lease(self, lease_id: int) -> Lease | None:
        """The open lease or share with this id (with its current rate), or None once closed."""
        return self._leases.get(lease_id) or self._shares.get(lease_id)

    @property
    def finished(self) -> bool:
        """Every partition completed or given up."""
        return self._n_closed == self._n_partitions

    @property
    def given_up(self) -> list[PartitionRef]:
        return list(self._given_up)

    def next_wakeup(self, now: float) -> float | None:
        """The earliest time after ``now`` a host with queued work stops being paused (or its
        requeued partition becomes eligible); None when nothing waits on time."""
        times = (
            max(host.paused_until, host.ready_at())
            for host in map(self._hosts.__getitem__, self._waiting)
        )
        return min((t for t in times if now < t < math.inf), default=None)

    # ---------------------------------------------------------------- internals

    def _host(self, server_name: str) -> _Host:
        host = self._hosts.get(server_name)
        if host is None:
            host = self._hosts[server_name] = _Host(server_name, self._default_budget)
        return host

    def _enqueue(self, partitions: Iterable[PartitionRef]) -> int:
        ordered = sorted(partitions, key=lambda ref: (ref.server_name, ref.partition_id))
        if len({(ref.server_name, ref.partition_id) for ref in ordered}) != len(ordered):
            raise ValueError("a (server_name, partition_id) pair is listed twice")
        for ref in ordered:
            if ref.n_urls < 0:
                raise ValueError(f"partition {ref} has a negative URL count")
            host = self._host(ref.server_name)
            host.fresh.append(ref)
            host.remaining_urls += ref.n_urls
        return len(ordered)

    def _k_max(self, host: _Host) -> int:
        return k_max(host.budget, self._n_workers, self._lease_rate_target)

    def _fair_share(self, host: _Host) -> float:
        slots = min(self._k_max(host), len(host.leases) + host.unleased)
        return host.budget / max(1, slots + len(host.shares))

    def _by_priority(self) -> list[_Host]:
        hosts = [self._hosts[name] for name in self._waiting]
        hosts.sort(key=lambda host: (-host.remaining_urls / host.budget, host.name))
        return hosts

    def _grant(self, host: _Host, worker: int, now: float) -> Lease | None:
        limit = 1 if host.name in self._unverified else self._k_max(host)
        if len(host.leases) >= limit:
            return None
        ref = host.peek(now)
        if ref is None:
            return None
        fair = self._fair_share(host)
        free = host.budget - host.rate_in_use()
        if free < MIN_GRANT_FRACTION * fair:
            return None
        host.take(ref)
        if not host.unleased:
            self._waiting.discard(host.name)
        lease = Lease(
            self._next_lease_id,
            worker,
            ref.server_name,
            ref.partition_id,
            ref.n_urls,
            min(fair, free),
        )
        self._next_lease_id += 1
        self._leases[lease.lease_id] = host.leases[lease.lease_id] = lease
        self._held.setdefault(worker, {})[host.name] = lease.lease_id
        return lease

    def _close(self, lease_id: int) -> Lease | None:
        lease = self._leases.pop(lease_id, None)
        if lease is not None:
            del self._hosts[lease.server_name].leases[lease_id]
            del self._held[lease.worker][lease.server_name]
        return lease

    def _close_share(self, lease_id: int) -> Lease | None:
        share = self._shares.pop(lease_id, None)
        if share is not None:
            del self._hosts[share.server_name].shares[lease_id]
            del self._share_of[(share.worker, share.server_name)]
        return share

    def _requeue(self, host: _Host, ref: PartitionRef, not_before: float) -> None:
        host.requeue(ref, not_before)
        self._waiting.add(host.name)

    def _rebalance(
        self, host: _Host, scale: float = 1.0, *, raise_rates: bool = True
    ) -> list[RateChange]:
        """Scale the host's leases and shares by ``scale`` (<= 1), then top them up (rules
        4, 5, 10)."""
        holders = host.holders()
        if not holders:
            return []
        scaled = {lease.lease_id: lease.rate * scale for lease in holders}
        level = -math.inf
        if raise_rates:
            level = water_level(scaled.values(), host.budget, self._fair_share(host))
        noise = _RATE_NOISE * host.budget
        decreases: list[RateChange] = []
        increases: list[RateChange] = []
        for lease in holders:
            rate = max(scaled[lease.lease_id], level)
            if rate < lease.rate:
                decreases.append(self._set_rate(host, lease, rate))
            elif rate > lease.rate + noise:
                increases.append(self._set_rate(host, lease, rate))
        return decreases + increases

    def _set_rate(self, host: _Host, lease: Lease, rate: float) -> RateChange:
        updated = replace(lease, rate=rate)
        if lease.partition_id == SHARE_PARTITION:
            self._shares[lease.lease_id] = host.shares[lease.lease_id] = updated
        else:
            self._leases[lease.lease_id] = host.leases[lease.lease_id] = updated
        return RateChange(lease.lease_id, lease.worker, lease.server_name, rate)
