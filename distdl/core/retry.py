"""Per-URL retry decisions: which failures deserve another try, and how long to wait first.

Backoff is "full jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter"): sleep
uniformly in ``[0, min(cap, base * 2**attempt)]``. Spreading the retries over the whole window
stops the URLs that failed together (a host hiccup fails hundreds at once) from coming back
together and knocking the host over again.

A server's ``Retry-After`` is a floor, not a replacement: we wait at least that long, and
still add our own jitter on top of it when our window is larger.

The window grows with the attempt only for failures where no answer came back (timeouts,
refused or reset connections, DNS, broken bodies): the host may be struggling, and nothing
else slows down for it. When the host *answered* (429, 5xx, 408), whether it is overloaded is
the rate controller's call, made for the whole host from many answers (it cuts the rate and
pauses the host on a refusal's Retry-After); the URL itself only waits a short jitter, or the
Retry-After it was given. A host failing a share of requests whatever the rate would
otherwise finish with a long tail of URLs waiting out exponential backoffs for nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from distdl.core import codes

# Three retries (four tries in all) rides out the usual transient trouble (a restart, a
# 503 burst, a dropped connection) without hammering a host that is really down.
DEFAULT_MAX_RETRIES = 3
# One second is long enough for an overloaded server to drain a little, short enough that
# a dropped connection costs almost nothing.
DEFAULT_BASE_SECONDS = 1.0
# A minute bounds how long a single URL can hold up the end of its partition.
DEFAULT_CAP_SECONDS = 60.0
# 2**64 already dwarfs any sensible cap; clamping the exponent avoids float overflow.
_MAX_EXPONENT = 64


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay: float  # seconds to wait before the next try; 0.0 when not retrying
    reason: str


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a URL again.

    ``attempt`` is the zero-based index of the try that just failed, i.e. how many tries had
    already failed before it (the ``retry_count`` written to errors.parquet). A URL is tried
    at most ``max_retries + 1`` times: with ``max_retries=3``, tries 0, 1 and 2 are retried
    and try 3 is final.
    """

    max_retries: int = DEFAULT_MAX_RETRIES
    base: float = DEFAULT_BASE_SECONDS
    cap: float = DEFAULT_CAP_SECONDS

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.base < 0 or self.cap < 0:
            raise ValueError(f"base and cap must be >= 0, got {self.base} and {self.cap}")

    def backoff_window(self, attempt: int, error_code: int = codes.TIMEOUT) -> float:
        """Upper end of the full-jitter window after try number ``attempt`` failed."""
        if error_code in codes.FEW_RETRIES:  # give a throttling CDN time to cool down
            return min(self.cap, self.base * 2.0 ** min(attempt + 1, _MAX_EXPONENT))
        if error_code > 0:  # the host answered: see the module docstring
            return min(self.cap, self.base)
        return min(self.cap, self.base * 2.0 ** min(attempt, _MAX_EXPONENT))

    def decide(
        self,
        error_code: int,
        attempt: int,
        rng: random.Random,
        retry_after: float | None = None,
    ) -> RetryDecision:
        """``retry_after`` is the server's Retry-After in seconds, already parsed and capped."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt}")
        if not codes.is_retryable(error_code):
            return RetryDecision(False, 0.0, f"not retryable: {codes.describe(error_code)}")
        if attempt >= min(self.max_retries, codes.FEW_RETRIES.get(error_code, attempt + 1)):
            return RetryDecision(
                False, 0.0, f"gave up after {attempt + 1} tries: {codes.describe(error_code)}"
            )
        delay = rng.uniform(0.0, self.backoff_window(attempt, error_code))
        reason = f"retry {attempt + 1}/{self.max_retries} after {codes.describe(error_code)}"
        if retry_after is not None and retry_after > delay:
            delay = retry_after
            reason += " (server Retry-After)"
        return RetryDecision(True, delay, reason)
