"""The addresses a URL's host stands for, decided before connecting to it.

The redirect safety check (:mod:`distdl.core.redirects`) needs them before a hop leaves for
another server. They come from the same resolver the session connects with, so a test that
maps names to loopback addresses sees the same answers here as the connector does.

Through a forward proxy the client never resolves the target: the proxy does, with its own
DNS, and a local answer (if the compute node can resolve at all) need not be the address the
proxy connects to. So for a URL the proxy choice sends through a proxy only the URL's host
counts: an IP literal is checked as itself (a public page redirecting to
``http://10.0.0.5/`` is still refused), a name stands for no address and passes. What the
proxy may reach inside the site is then the proxy's own access rules' job.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Protocol

from aiohttp.abc import AbstractResolver
from yarl import URL

from distdl.core.host_key import host_key
from distdl.core.proxies import DIRECT, ProxyChoice


class AddressLookup(Protocol):
    async def addresses(self, url: str) -> tuple[str, ...]: ...


def literal_ip(url: str) -> str | None:
    """The URL's host when it is an IP literal, else None. Read like the server key, so
    ``0x7f.1`` is ``127.0.0.1`` (the resolver of a proxy reads it so too)."""
    try:
        host = host_key(URL(url).raw_host or "")
    except ValueError:  # HostKeyError included: no host, or one that names no server
        return None
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


class ResolverLookup:
    """An IP literal stands for itself; a name is resolved, unless ``proxies`` sends the URL
    through a proxy (then it stands for nothing: see the module docstring). An empty tuple
    when it cannot be resolved: the connection would then fail the same way, and is judged
    by its answer."""

    def __init__(self, resolver: AbstractResolver, proxies: ProxyChoice = DIRECT) -> None:
        self._resolver = resolver
        self._proxies = proxies

    async def addresses(self, url: str) -> tuple[str, ...]:
        literal = literal_ip(url)
        if literal is not None:
            return (literal,)
        if self._proxies.proxy_for(url) is not None:
            return ()
        try:
            parsed = URL(url)
        except ValueError:
            return ()
        host = parsed.raw_host or ""
        try:
            answers = await self._resolver.resolve(host, parsed.port or 0, socket.AF_UNSPEC)
        except OSError:
            return ()
        return tuple(dict.fromkeys(str(answer["host"]) for answer in answers))
