"""Whether a host's refusals cluster (it is overloaded) or one came alone (an early arrival).

A ``Retry-After`` on a refusal is honoured for the URL it answered, always (the retry waits
for it). It pauses the *whole host* only when the host signals overload: refusals that
cluster, several in one report or one again within ``quiet_answers`` answers of the last.
A lone refusal is a request that reached a drained bucket a little early (arrival jitter, a
ramp's first step over the limit): the rate is cut for it, and pausing every request as
well would cost the host a whole Retry-After of its limit each time (5 s of a 24 req/s
host is 120 images) while its bucket had room again a token later.

Both the controller at rank 0 (per report) and each lease (per answer, a reflex before rank
0's pause reaches it) keep one of these per host.
"""

from __future__ import annotations

from dataclasses import dataclass

# Answers between two refusals for the second still to be part of the first's cluster: the
# controller's quiet_answers (at a one-token bucket, jitter refuses less often than that).
CLUSTER_ANSWERS = 50


@dataclass
class RefusalSpacing:
    quiet_answers: int = CLUSTER_ANSWERS
    # Answers since the last refusal; None until the host refuses once.
    since_refusal: int | None = None

    def observe(self, answers: int, refusals: int) -> bool:
        """Fold in ``answers`` that were not refusals, then ``refusals``; True when the
        refusals cluster (several at once, or again soon after the last)."""
        since = None if self.since_refusal is None else self.since_refusal + answers
        if not refusals:
            self.since_refusal = since
            return False
        self.since_refusal = 0
        return refusals >= 2 or (since is not None and since < self.quiet_answers)
