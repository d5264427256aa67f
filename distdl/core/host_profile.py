"""Judging a host from what a download run saw of it: pure, so it is tested without sockets.

There are no separate probe requests: the first requests of a host's first lease are its
probes, and their images are the rows' results. When rank 0 saves the profiles table, each
host's ``status`` says what its answers looked like:

* *unreachable*: a breaker gave up on it, its robots.txt got no answer, or none of its
  requests got any HTTP answer;
* *erroring*: it answered, but never with a 2xx;
* *slow*: its mean latency exceeds ``SLOW_LATENCY``;
* *healthy*: otherwise.

A host planned but not contacted yet is *unseen* (the ``profiled`` stage writes it so).
"""

from __future__ import annotations

from typing import Literal

HostStatus = Literal["healthy", "slow", "erroring", "unreachable"]
UNSEEN = "unseen"
SLOW_LATENCY = 2.0  # seconds: an image server this slow is overloaded or far away


def judge_observed(
    *, ok: int, answered: int, asked: int, mean_latency: float | None, unreachable: bool
) -> HostStatus | None:
    """The status of a host that got ``asked`` requests, ``answered`` with an HTTP status
    (``ok`` of them 2xx or a redirect); None when it got no request at all."""
    if unreachable:
        return "unreachable"
    if asked == 0:
        return None
    if answered == 0:
        return "unreachable"
    if ok == 0:
        return "erroring"
    if mean_latency is not None and mean_latency > SLOW_LATENCY:
        return "slow"
    return "healthy"
