"""The addresses a URL's host stands for, decided before connecting to it.

The redirect safety check (:mod:`distdl.core.redirects`) needs them before a hop leaves for
another server. They come from the same resolver the session connects with, so a test that
maps names to loopback addresses sees the same answers here as the connector does.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Protocol

from aiohttp.abc import AbstractResolver
from yarl import URL


class AddressLookup(Protocol):
    async def addresses(self, url: str) -> tuple[str, ...]: ...


class ResolverLookup:
    """An IP literal stands for itself; a name is resolved. An empty tuple when it cannot
    be: the connection would then fail the same way, and is judged by its answer."""

    def __init__(self, resolver: AbstractResolver) -> None:
        self._resolver = resolver

    async def addresses(self, url: str) -> tuple[str, ...]:
        try:
            parsed = URL(url)
        except ValueError:
            return ()
        host = parsed.raw_host or ""
        try:
            return (str(ipaddress.ip_address(host.strip("[]"))),)
        except ValueError:
            pass
        try:
            answers = await self._resolver.resolve(host, parsed.port or 0, socket.AF_UNSPEC)
        except OSError:
            return ()
        return tuple(dict.fromkeys(str(answer["host"]) for answer in answers))
