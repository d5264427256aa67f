"""What a worker saw on each host since its last report to rank 0."""

from __future__ import annotations

from dataclasses import dataclass

from distdl.core import codes
from distdl.core.throttle import Feedback


@dataclass
class _Tally:
    ok: int = 0
    throttled: int = 0
    timeouts: int = 0
    forbidden: int = 0
    other_errors: int = 0
    latency_sum: float = 0.0
    latency_count: int = 0
    retry_after: float | None = None

    def frozen(self) -> Feedback:
        return Feedback(
            ok=self.ok,
            throttled=self.throttled,
            timeouts=self.timeouts,
            forbidden=self.forbidden,
            other_errors=self.other_errors,
            latency_sum=self.latency_sum,
            latency_count=self.latency_count,
            retry_after=self.retry_after,
        )


class FeedbackBook:
    def __init__(self) -> None:
        self._tallies: dict[str, _Tally] = {}

    def _tally(self, server_name: str) -> _Tally:
        return self._tallies.setdefault(server_name, _Tally())

    def record_ok(self, server_name: str, latency: float) -> None:
        tally = self._tally(server_name)
        tally.ok += 1
        tally.latency_sum += latency
        tally.latency_count += 1

    def record_failure(
        self, server_name: str, code: int, latency: float, retry_after: float | None
    ) -> None:
        tally = self._tally(server_name)
        if code in (429, 503):
            tally.throttled += 1
        elif code == codes.TIMEOUT:
            tally.timeouts += 1
        elif code == 403:
            tally.forbidden += 1
        elif code > 0:
            # Any other HTTP answer still tells us how fast the host responds.
            tally.other_errors += 1
            tally.latency_sum += latency
            tally.latency_count += 1
        else:
            tally.other_errors += 1
        if retry_after is not None:
            tally.retry_after = max(tally.retry_after or 0.0, retry_after)

    def drain(self) -> dict[str, Feedback]:
        out = {name: tally.frozen() for name, tally in self._tallies.items()}
        self._tallies.clear()
        return out
