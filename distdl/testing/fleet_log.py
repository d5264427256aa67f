"""The fleet's request log: one :class:`RequestRecord` per request a host received.

Politeness is asserted from the server's side with these records, e.g.
``max_requests_in_window([r.time for r in fleet.requests_for("a")], 1.0) <= limit + burst``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

# status of a request that got no HTTP answer at all (reset, black hole, shutdown)
NO_RESPONSE = 0


@dataclass(frozen=True)
class RequestRecord:
    """One request as the host saw it.

    ``time`` is ``time.monotonic()`` of the fleet process when the request arrived (before
    any latency); ``path`` includes the query string; ``status`` is the HTTP status sent
    (for a truncated or dripped body, the status of its headers) or :data:`NO_RESPONSE`;
    ``fault`` names the injected behaviour ("" for a plain answer), e.g. ``"rate_limited"``,
    ``"5xx"``, ``"reset"``, ``"truncate"``, ``"drip"``, ``"not_found"``, ``"redirect"``.
    """

    host: str
    time: float
    path: str
    status: int
    remote: str
    fault: str = ""


def max_requests_in_window(times: Iterable[float], window: float = 1.0) -> int:
    """Most requests found in any half-open interval ``[t, t + window)``.

    Windows start at a request (the maximum is always reached at one), so this is exact.
    """
    if window <= 0:
        raise ValueError("window must be > 0")
    ordered = sorted(times)
    best = 0
    start = 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def save_requests(records: Sequence[RequestRecord], path: str | Path) -> None:
    """Write ``records`` as JSON lines (one object per record), replacing ``path``."""
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    with partial.open("w", encoding="utf-8") as stream:
        for record in records:
            stream.write(json.dumps(asdict(record), separators=(",", ":")))
            stream.write("\n")
    partial.replace(target)


def load_requests(path: str | Path) -> list[RequestRecord]:
    """Read back what :func:`save_requests` wrote."""
    with Path(path).open(encoding="utf-8") as stream:
        return [RequestRecord(**json.loads(line)) for line in stream if line.strip()]
