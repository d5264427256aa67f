"""When the holders of one host may start again: one budget interval apart, never together.

Rank 0 splits a host's budget ``B`` among its *holders* (open leases and shares, see
:mod:`distdl.core.scheduler`), and each holder paces itself. The split bounds the sum of
their rates, not their phases: holders that start at the same instant send the host a burst
of one request each. That happens when they all resume at the end of one pause (rank 0
pauses every holder for the same Retry-After), and equal rates then keep them in lock-step
for good. A host whose bucket holds a single request refuses all but one of each burst,
often with another Retry-After that lines them up again, and the controller, seeing a
refusal in every window, cuts the budget to its floor: the host crawls at one image per
round and the losing holder's rows only collect refusals.

So rank 0 also hands out *start slots*, one ``1 / B`` apart, and a holder given a slot
starts nothing before it and paces itself from it. A *spread* gives every holder of the
host a slot, from a first slot on:

1. **A pause** (Retry-After) spreads the holders from ``max(pause end, now + 1 / B)``: the
   host never gets more than one request per ``1 / B`` when it comes back, and none sooner
   than ``1 / B`` after rank 0 heard of the refusal. A new pause always spreads again.
2. **A refusal** without a pause spreads them from ``now + 1 / B`` when there are several
   (they may be in lock-step), unless an earlier spread still has slots ahead.
3. **A new holder** (a lease or a share just opened) takes the next free slot while a
   spread still has slots ahead (a share asked for during a pause waits for its end); else,
   when the host has other holders, they are all spread, the newcomer with them (a new gate
   would otherwise fall in step with this rank's last start on the host); alone, it may
   start at once (its own pacing still applies).
4. **Turns rotate**: each spread of a host starts one holder further along the list (by
   lease id), so no holder always comes last.

A holder's wait is bounded: its slot is at most one ``1 / B`` per holder counted in the
spread after the pause end, the refusal or the opening, and only a new pause (the host's
own word) spreads again before every slot of the previous spread has passed: repeated
refusals or openings cannot push a holder's start further and further away.

Pure: no clock reads, time comes in as ``now`` (monotonic seconds of rank 0's clock).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from distdl.core.scheduler import Lease


@dataclass(frozen=True)
class HolderStart:
    """Holder ``lease_id`` (a lease or a share of ``worker``) starts nothing before ``at``."""

    lease_id: int
    worker: int
    at: float


class StartSlots:
    def __init__(self) -> None:
        self._next: dict[str, float] = {}  # host -> its next free slot
        self._turns: dict[str, int] = {}  # host -> how many spreads it has had

    def spread(
        self,
        server_name: str,
        holders: Sequence[Lease],
        budget: float,
        now: float,
        pause_end: float | None = None,
    ) -> list[HolderStart]:
        """Slots for the host's holders after a pause ending at ``pause_end`` (rule 1), or
        after a refusal when ``pause_end`` is None (rule 2: possibly none)."""
        if pause_end is None and (len(holders) < 2 or self._spreading(server_name, now)):
            return []
        return self._spread(
            server_name, holders, budget, now, now if pause_end is None else pause_end
        )

    def join(
        self, server_name: str, newcomer: Lease, holders: Sequence[Lease], budget: float, now: float
    ) -> list[HolderStart]:
        """Slots for ``newcomer``, just opened among ``holders`` (which include it; rule 3):
        its own (none: it may start at once), and any new ones of the others."""
        slot = self._next.get(server_name, -math.inf)
        if slot > now:
            self._next[server_name] = slot + 1.0 / budget
            return [HolderStart(newcomer.lease_id, newcomer.worker, slot)]
        if len(holders) < 2:
            return []
        return self._spread(server_name, holders, budget, now, now)

    def _spreading(self, server_name: str, now: float) -> bool:
        return self._next.get(server_name, -math.inf) > now

    def _spread(
        self,
        server_name: str,
        holders: Sequence[Lease],
        budget: float,
        now: float,
        not_before: float,
    ) -> list[HolderStart]:
        spacing = 1.0 / budget
        first = max(not_before, now + spacing)
        ordered = sorted(holders, key=lambda holder: holder.lease_id)
        turns = self._turns.get(server_name, 0)
        self._turns[server_name] = turns + 1
        turn = turns % max(1, len(ordered))
        ordered = ordered[turn:] + ordered[:turn]
        # Set even with no holder: a share asked for during the pause waits for its end.
        self._next[server_name] = first + len(ordered) * spacing
        return [
            HolderStart(holder.lease_id, holder.worker, first + i * spacing)
            for i, holder in enumerate(ordered)
        ]
