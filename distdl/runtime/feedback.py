"""What a worker saw on each host since its last report to rank 0."""

from __future__ import annotations

from distdl.core import codes
from distdl.core.throttle import Feedback


class FeedbackBook:
    def __init__(self) -> None:
        self._by_host: dict[str, Feedback] = {}

    def _add(self, server_name: str, seen: Feedback) -> None:
        self._by_host[server_name] = self._by_host.get(server_name, Feedback()).merged(seen)

    def record_ok(self, server_name: str, latency: float) -> None:
        self._add(server_name, Feedback(ok=1, latency_sum=latency, latency_count=1))

    def record_failure(
        self, server_name: str, code: int, latency: float, retry_after: float | None
    ) -> None:
        if code in (429, 503):
            seen = Feedback(throttled=1)
        elif code == codes.TIMEOUT:
            seen = Feedback(timeouts=1)
        elif code == 403:
            seen = Feedback(forbidden=1)
        elif code > 0:
            # Any other HTTP answer still tells how fast the host responds.
            seen = Feedback(other_errors=1, latency_sum=latency, latency_count=1)
        else:
            seen = Feedback(other_errors=1)
        self._add(server_name, Feedback(retry_after=retry_after).merged(seen))

    def drain(self) -> dict[str, Feedback]:
        out, self._by_host = self._by_host, {}
        return out
