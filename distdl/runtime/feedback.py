"""What a worker saw on each host since its last report to rank 0.

Answers that ask rank 0 to act (refusals, 5xx, timeouts, 403s) are reported at once; clean
ones can wait for a less frequent report: rank 0 handles every report of every host of
every worker, and at hundreds of ranks the clean ones were most of its load
(``benchmarks/scale_sim.py``). Except on a host whose rate just changed: rank 0 is judging
the new rate (a slow start grows on each clean window), and a once-a-second report would
halve the pace of every ramp.
"""

from __future__ import annotations

import math

from distdl.core.signals import Signal, answer_signal
from distdl.core.throttle import Feedback

# Seconds after a rate change during which a host's clean answers go out with every report:
# the controller judges a window of 0.5 s once answers to the new rate come back (a
# latency later). Longer would add rank 0's messages in every ramp for little: at 400
# ranks, the first minutes are ramps (benchmarks/scale_sim.py).
JUDGING_SECONDS = 1.0


def needs_action(seen: Feedback) -> bool:
    """Whether rank 0 should hear of these answers now rather than with the clean ones."""
    return bool(
        seen.rate_limited
        or seen.server_errors
        or seen.timeouts
        or seen.forbidden
        or seen.forbidden_again
        or seen.served_after_forbidden
    )


class FeedbackBook:
    def __init__(self) -> None:
        self._by_host: dict[str, Feedback] = {}
        self._judged_until: dict[str, float] = {}

    def rate_changed(self, server_name: str, now: float) -> None:
        """Rank 0 set a new rate for the host: its clean answers are wanted at once."""
        self._judged_until[server_name] = now + JUDGING_SECONDS

    def _add(self, server_name: str, seen: Feedback) -> None:
        self._by_host[server_name] = self._by_host.get(server_name, Feedback()).merged(seen)

    def record_ok(self, server_name: str, latency: float, *, after_forbidden: bool = False) -> None:
        """``after_forbidden``: the URL's previous try was answered 403."""
        self._add(
            server_name,
            Feedback(
                ok=1,
                served_after_forbidden=int(after_forbidden),
                latency_sum=latency,
                latency_count=1,
            ),
        )

    def record_failure(
        self,
        server_name: str,
        code: int,
        latency: float,
        retry_after: float | None,
        message: str = "",
        *,
        repeats: int = 0,
    ) -> None:
        """One failed answer; ``message`` tells a 503 SlowDown from an ordinary 503;
        ``repeats``: how many tries of the URL in a row before this one failed with the
        same code."""
        signal = answer_signal(code, message)
        if signal is Signal.RATE_LIMITED:
            seen = Feedback(rate_limited=1, retry_after=retry_after)
        elif signal is Signal.SERVER_ERROR:
            seen = Feedback(server_errors=1, server_retry_after=retry_after)
        elif signal is Signal.TIMEOUT:
            seen = Feedback(timeouts=1)
        elif signal is Signal.FORBIDDEN and repeats == 0:
            seen = Feedback(forbidden=1)
        elif signal is Signal.FORBIDDEN and repeats == 1:
            # The same URL forbidden again after a pause: content, not a refusal.
            seen = Feedback(forbidden_again=1)
        else:
            # Also a URL's later 403s: its first repeat said what it is, and one URL is one
            # piece of evidence however often it is retried.
            seen = Feedback(other_errors=1)
        if code > 0 and signal is not Signal.TIMEOUT:
            # Any HTTP answer still tells how fast the host responds.
            seen = seen.merged(Feedback(latency_sum=latency, latency_count=1))
        self._add(server_name, seen)

    def drain(self, *, clean_too: bool = True, now: float = math.inf) -> dict[str, Feedback]:
        """What to report, by host; without ``clean_too`` only the hosts whose answers
        need action or whose rate changed within ``JUDGING_SECONDS`` before ``now`` (the
        others keep adding up until a full drain)."""
        if clean_too:
            out, self._by_host = self._by_host, {}
            return out
        out = {
            host: seen
            for host, seen in self._by_host.items()
            if needs_action(seen) or self._judged_until.get(host, -math.inf) > now
        }
        for host in out:
            del self._by_host[host]
        return out
