"""What one simulated host is like: :class:`HostSpec`, validated on construction.

Faults come in two families, each a set of disjoint probability bands drawn from one roll:

* *transient* faults (``error_rate_5xx``, ``reset_rate``, ``truncate_rate``, ``drip_rate``)
  are rolled per (fleet seed, host, path, attempt), so a retry may succeed;
* *permanent* fates (``not_found_rate``, ``not_image_rate``, ``corrupt_rate``,
  ``oversize_rate``, ``opt_out_rate``) are rolled per (fleet seed, host, image id), so every
  request for that image gets the same answer. ``redirect_rate`` is rolled separately.

Each family's rates must add up to at most 1.

Load-dependent behaviours (see :mod:`distdl.testing.fleet_limits` for the models):

* ``limit_drop_*``: the bucket's rate is ``rate_limit * limit_drop_factor`` from
  ``limit_drop_start`` to ``limit_drop_end`` seconds after the host's first request (a server
  busy with someone else's traffic for a while);
* ``overload_knee``: latency grows with the rate the host sees, and past the knee a growing
  share of requests is shed with 503 (faults that *do* depend on the rate);
* ``limited_status``: what an empty bucket answers: 429, 420, or 403 like some CDNs;
* ``redirect_to``: the host is a *resolver*: every image it knows is a 302 to the same path on
  another fleet host (an image cache or iNaturalist's photo URLs pointing at a CDN).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

HostMode = Literal["normal", "black_hole", "refused"]
# error_retry_after's default: the host's 503s carry whatever its 429s carry (retry_after)
AS_429: Literal["as_429"] = "as_429"
LIMITED_STATUSES = (429, 420, 403)

TRANSIENT_RATES = ("error_rate_5xx", "reset_rate", "truncate_rate", "drip_rate")
PERMANENT_RATES = (
    "not_found_rate",
    "not_image_rate",
    "corrupt_rate",
    "oversize_rate",
    "opt_out_rate",
)


def default_burst(rate_limit: float) -> int:
    """Bucket capacity when none is given: a quarter of a second's worth, at least 1."""
    return max(1, math.ceil(0.25 * rate_limit))


@dataclass(frozen=True)
class HostSpec:
    """One simulated host. Only ``name`` is required; the defaults are a perfect server."""

    name: str  # logical name, e.g. "museum-03"
    # -- politeness: token bucket of `rate_limit` tokens/s holding at most `burst` tokens
    rate_limit: float | None = None  # hidden req/s; None = unlimited
    burst: int | None = None  # tokens; None = burst_seconds, else default_burst(rate_limit)
    burst_seconds: float | None = None  # capacity as seconds of traffic at the current limit
    limited_status: int = 429  # what an empty bucket answers (one of LIMITED_STATUSES)
    # Sent with every refusal by the bucket: seconds (float) rendered per retry_after_form,
    # or a str sent verbatim (to test malformed values).
    retry_after: float | str | None = None
    retry_after_form: Literal["seconds", "date"] = "seconds"
    # -- the limit drops to rate_limit * factor during [start, end) s after the first request
    limit_drop_start: float | None = None
    limit_drop_end: float | None = None
    limit_drop_factor: float = 0.5
    # -- overload: past overload_knee req/s (measured over overload_window s), 503s for load
    overload_knee: float | None = None
    overload_slope: float = 1.0  # shed share = min(0.9, (rate / knee - 1) * slope)
    overload_window: float = 2.0
    # -- latency before answering: uniform in [latency - jitter, latency + jitter], >= 0
    latency: float = 0.0
    latency_jitter: float = 0.0
    # -- transient faults, per (seed, host, path, attempt)
    error_rate_5xx: float = 0.0  # one of error_statuses, drawn uniformly
    error_statuses: tuple[int, ...] = (500, 502, 503)
    # Retry-After on the host's 503s (injected and overload): seconds, None, or AS_429
    error_retry_after: float | Literal["as_429"] | None = AS_429
    reset_rate: float = 0.0  # TCP RST without a response
    truncate_rate: float = 0.0  # Content-Length N, fewer bytes, close
    drip_rate: float = 0.0  # body sent drip_chunk bytes every drip_interval seconds
    drip_interval: float = 0.5
    drip_chunk: int = 256
    # -- permanent fates, per (seed, host, image id)
    not_found_rate: float = 0.0  # 404 (60 %), 410 (20 %) or 403 (20 %)
    not_image_rate: float = 0.0  # HTML body, status 200, image content type
    corrupt_rate: float = 0.0  # the format's magic bytes followed by garbage
    oversize_rate: float = 0.0  # a real image padded to oversize_bytes
    oversize_bytes: int = 2 * 1024 * 1024
    oversize_chunked: bool = False  # True: no Content-Length, chunked transfer encoding
    opt_out_rate: float = 0.0  # X-Robots-Tag, one of opt_out_tags
    opt_out_tags: tuple[str, ...] = ("noai", "noimageai")
    redirect_rate: float = 0.0  # image answered by a chain of redirect_hops 302s
    redirect_hops: int = 1
    redirect_to: str | None = None  # a resolver: images are 302s to this fleet host
    # -- the host as a whole
    mode: HostMode = "normal"
    robots_txt: str | None = None  # None = allow everything
    robots_status: int = 200  # anything else: /robots.txt answers that status
    port: int = 0  # 0 = ephemeral

    def __post_init__(self) -> None:
        for spec_field in fields(self):
            value = getattr(self, spec_field.name)
            if spec_field.name.endswith("_rate") and not 0.0 <= value <= 1.0:
                raise ValueError(f"{self.name}: {spec_field.name} must be in [0, 1], got {value}")
        for family in (TRANSIENT_RATES, PERMANENT_RATES):
            total = sum(getattr(self, name) for name in family)
            if total > 1.0 + 1e-9:
                raise ValueError(f"{self.name}: {' + '.join(family)} = {total} exceeds 1")
        self._check_positive()
        if self.mode not in ("normal", "black_hole", "refused"):
            raise ValueError(f"{self.name}: unknown mode {self.mode!r}")
        if self.opt_out_rate > 0 and not self.opt_out_tags:
            raise ValueError(f"{self.name}: opt_out_rate needs at least one opt_out_tags value")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"{self.name}: port must be in 0..65535, got {self.port}")
        self._check_limit_shape()
        self._check_faults()
        self._check_resolver()

    def _check_positive(self) -> None:
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError(f"{self.name}: rate_limit must be > 0 or None")
        if self.burst is not None and self.burst < 1:
            raise ValueError(f"{self.name}: burst must be >= 1")
        if self.latency < 0 or self.latency_jitter < 0:
            raise ValueError(f"{self.name}: latency and latency_jitter must be >= 0")
        if self.drip_interval <= 0 or self.drip_chunk < 1:
            raise ValueError(f"{self.name}: drip_interval must be > 0 and drip_chunk >= 1")
        if self.redirect_hops < 1 or self.oversize_bytes < 1:
            raise ValueError(f"{self.name}: redirect_hops and oversize_bytes must be >= 1")

    def _check_limit_shape(self) -> None:
        if self.burst is not None and self.burst_seconds is not None:
            raise ValueError(f"{self.name}: set burst (tokens) or burst_seconds, not both")
        if self.burst_seconds is not None and self.burst_seconds < 0:
            raise ValueError(f"{self.name}: burst_seconds must be >= 0")
        if self.limited_status not in LIMITED_STATUSES:
            raise ValueError(f"{self.name}: limited_status must be one of {LIMITED_STATUSES}")
        drop = (self.limit_drop_start, self.limit_drop_end)
        if drop != (None, None):
            start, end = drop
            if start is None or end is None or not 0 <= start < end:
                raise ValueError(f"{self.name}: need 0 <= limit_drop_start < limit_drop_end")
            if self.rate_limit is None:
                raise ValueError(f"{self.name}: a limit drop needs a rate_limit")
        if not 0 < self.limit_drop_factor <= 1:
            raise ValueError(f"{self.name}: limit_drop_factor must be in (0, 1]")
        if self.overload_knee is not None and self.overload_knee <= 0:
            raise ValueError(f"{self.name}: overload_knee must be > 0 or None")
        if self.overload_slope <= 0 or self.overload_window <= 0:
            raise ValueError(f"{self.name}: overload_slope and overload_window must be > 0")

    def _check_faults(self) -> None:
        if not self.error_statuses or any(not 500 <= s <= 599 for s in self.error_statuses):
            raise ValueError(f"{self.name}: error_statuses must be one or more 5xx statuses")
        after = self.error_retry_after
        if after != AS_429 and after is not None and (isinstance(after, str) or after < 0):
            raise ValueError(f"{self.name}: error_retry_after must be >= 0, None or AS_429")

    def _check_resolver(self) -> None:
        if self.redirect_to is None:
            return
        if self.redirect_to == self.name:
            raise ValueError(f"{self.name}: redirect_to must name another host")
        served = [name for name in PERMANENT_RATES if name != "not_found_rate"]
        if any(getattr(self, name) > 0 for name in served):
            # a resolver never serves bytes itself: only "not found" is its own to decide
            raise ValueError(f"{self.name}: a resolver may set not_found_rate, not {served}")

    def capacity_at(self, rate: float) -> float:
        """Bucket capacity (tokens) while the limit is ``rate``."""
        if self.burst is not None:
            return float(self.burst)
        if self.burst_seconds is not None:
            return max(1.0, self.burst_seconds * rate)
        return float(default_burst(rate))

    def limit_at(self, elapsed: float) -> float | None:
        """The bucket's rate ``elapsed`` seconds after the host's first request."""
        if self.rate_limit is None:
            return None
        start, end = self.limit_drop_start, self.limit_drop_end
        if start is not None and end is not None and start <= elapsed < end:
            return self.rate_limit * self.limit_drop_factor
        return self.rate_limit

    @property
    def bucket_capacity(self) -> float | None:
        """The burst actually used at ``rate_limit`` (None for an unlimited host)."""
        return None if self.rate_limit is None else self.capacity_at(self.rate_limit)

    @property
    def error_retry_after_setting(self) -> float | str | None:
        """What the host's 503s carry, with AS_429 resolved."""
        return self.retry_after if self.error_retry_after == AS_429 else self.error_retry_after
