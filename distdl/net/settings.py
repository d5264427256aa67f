"""Everything the network adapter needs to know, resolved once from the config."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from distdl.config import DownloaderParameters, proxy_choice
from distdl.core.proxies import DIRECT, ProxyChoice
from distdl.net.headers import resolve_headers

DEFAULT_CONNECTIONS_LIMIT = 256


def _default_headers() -> dict[str, str]:
    return resolve_headers(True, None)


@dataclass(frozen=True)
class FetchSettings:
    """Timeouts (seconds), size and redirect caps, headers and connection-pool tuning.

    ``headers`` is the resolved set sent with every request, User-Agent included.
    ``max_redirects`` is how many redirects are *followed* (0 = none).
    ``proxies`` says which forward proxy each URL goes through (none by default; the
    config and the environment decide in :meth:`from_config`).
    """

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 120.0
    max_bytes: int = 50 * 1024 * 1024
    max_redirects: int = 5
    headers: Mapping[str, str] = field(default_factory=_default_headers, hash=False)
    connections_limit: int = DEFAULT_CONNECTIONS_LIMIT
    dns_cache_ttl: int = 300
    keepalive_timeout: float = 30.0
    ca_bundle: Path | None = None  # CAs trusted besides the system's (SSL_CERT_FILE works too)
    proxies: ProxyChoice = DIRECT

    def __post_init__(self) -> None:
        # A private copy, so a caller mutating its dict cannot change a frozen settings object.
        object.__setattr__(self, "headers", dict(self.headers))
        for name in ("connect_timeout", "read_timeout", "total_timeout", "keepalive_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"FetchSettings.{name} must be > 0, got {getattr(self, name)}")
        if self.max_bytes <= 0 or self.connections_limit <= 0:
            raise ValueError("FetchSettings.max_bytes and connections_limit must be > 0")
        if self.max_redirects < 0 or self.dns_cache_ttl < 0:
            raise ValueError("FetchSettings.max_redirects and dns_cache_ttl must be >= 0")

    @classmethod
    def from_config(
        cls, params: DownloaderParameters, environ: Mapping[str, str] | None = None
    ) -> FetchSettings:
        """The settings of ``params``; the proxy variables are read from ``environ``
        (``os.environ`` by default). ConfigError names a proxy variable that is unusable."""
        proxies = proxy_choice(params, os.environ if environ is None else environ)
        # The pool must never be the hidden bottleneck under the per-host caps that the
        # worker enforces: leases x in-flight requests per host can all be open at once.
        wanted_connections = params.leases_per_worker * params.max_in_flight_per_host
        return cls(
            connect_timeout=params.connect_timeout,
            read_timeout=params.read_timeout,
            total_timeout=params.total_timeout,
            max_bytes=params.max_image_bytes,
            max_redirects=params.max_redirects,
            headers=resolve_headers(params.header, params.contact),
            connections_limit=max(DEFAULT_CONNECTIONS_LIMIT, wanted_connections),
            ca_bundle=params.ca_bundle,
            proxies=proxies,
        )
