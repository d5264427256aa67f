"""What one simulated host is like: :class:`HostSpec`, validated on construction.

Faults come in two families, each a set of disjoint probability bands drawn from one roll:

* *transient* faults (``error_rate_5xx``, ``reset_rate``, ``truncate_rate``, ``drip_rate``)
  are rolled per (fleet seed, host, path, attempt), so a retry may succeed;
* *permanent* fates (``not_found_rate``, ``not_image_rate``, ``corrupt_rate``,
  ``oversize_rate``, ``opt_out_rate``) are rolled per (fleet seed, host, image id), so every
  request for that image gets the same answer. ``redirect_rate`` is rolled separately.

Each family's rates must add up to at most 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

HostMode = Literal["normal", "black_hole", "refused"]

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
    burst: int | None = None  # None = default_burst(rate_limit)
    # Sent with every 429 and injected 503: seconds (float) rendered per retry_after_form,
    # or a str sent verbatim (to test malformed values).
    retry_after: float | str | None = None
    retry_after_form: Literal["seconds", "date"] = "seconds"
    # -- latency before answering: uniform in [latency - jitter, latency + jitter], >= 0
    latency: float = 0.0
    latency_jitter: float = 0.0
    # -- transient faults, per (seed, host, path, attempt)
    error_rate_5xx: float = 0.0  # 500/502/503
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

    @property
    def bucket_capacity(self) -> int | None:
        """The burst actually used (None for an unlimited host)."""
        if self.rate_limit is None:
            return None
        return self.burst if self.burst is not None else default_burst(self.rate_limit)
