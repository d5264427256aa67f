"""Whether to follow one redirect hop: pure, so every verdict is tested without a socket.

distdl follows redirects itself, one hop at a time, so that each hop is paced by the budget
of the host it goes to (see :mod:`distdl.runtime.lease_runner`). Before a hop leaves for
another server, :func:`hop_refusal` decides, in this order:

1. **Hop count**: more than ``max_redirects`` redirects is ``TOO_MANY_REDIRECTS`` (a loop
   ends here too).
2. **Address safety**: a redirect answered from a *public* address to a server whose
   addresses are not all public (loopback, private, link-local, ...) is ``UNSAFE_REDIRECT``.
   A public image host must not be able to point distdl at a machine inside the network it
   runs in. Public to public, and local to local (a test fleet on 127.0.0.0/8, an intranet
   mirror) are fine.

What counts as public is an :class:`AddressPolicy`, injected by the composition root: the
default, :class:`GlobalAddresses`, is ``ipaddress``'s ``is_global``; tests declare a block of
loopback "public" with :class:`PublicNetworks` to check the refusal on 127.0.0.0/8 alone.

The target's addresses are decided *before* connecting (an IP literal, or what the resolver
answers). The connection then resolves the name again, so a DNS server that answers a public
address first and a private one next (DNS rebinding) can still steer one request inside;
:func:`answer_refusal` checks the address the answer actually came from, so such an answer
is never stored.

A hop to the same server is not re-checked: it connects to the name it came from.
The target's robots.txt is applied like on any request of that host, by the caller.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from distdl.core import codes


class AddressPolicy(Protocol):
    def is_public(self, ip: str) -> bool: ...


@dataclass(frozen=True)
class GlobalAddresses:
    """The default: an address is public when the IANA registries say it is globally routable."""

    def is_public(self, ip: str) -> bool:
        try:
            return ipaddress.ip_address(ip).is_global
        except ValueError:
            return False


@dataclass(frozen=True)
class PublicNetworks:
    """Exactly the addresses inside ``networks`` are public (for tests on loopback)."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @classmethod
    def of(cls, networks: Iterable[str]) -> PublicNetworks:
        return cls(tuple(ipaddress.ip_network(n) for n in networks))

    def is_public(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


@dataclass(frozen=True)
class HopRefusal:
    code: int
    message: str


def came_from_public(peer_ip: str | None, policy: AddressPolicy) -> bool:
    """Whether an answer came from a public address; an unknown peer counts as public, the
    reading that refuses more."""
    return peer_ip is None or policy.is_public(peer_ip)


def hop_refusal(
    hops_done: int,
    max_redirects: int,
    *,
    from_public: bool,
    target_addresses: Sequence[str] | None,
    policy: AddressPolicy,
) -> HopRefusal | None:
    """Why the next hop must not be taken, or None to take it.

    ``hops_done`` counts the redirects already followed before this one;
    ``target_addresses`` is None for a hop to the same server (not re-checked).
    """
    if hops_done >= max_redirects:
        return HopRefusal(codes.TOO_MANY_REDIRECTS, f"more than {max_redirects} redirects")
    if from_public and target_addresses:
        private = [ip for ip in target_addresses if not policy.is_public(ip)]
        if private:
            return HopRefusal(
                codes.UNSAFE_REDIRECT,
                f"redirect from a public address to non-public {', '.join(private)}",
            )
    return None


def answer_refusal(
    from_public: bool, peer_ip: str | None, policy: AddressPolicy
) -> HopRefusal | None:
    """An answer to a cross-server hop that came from a non-public address after a redirect
    from a public one (the DNS-rebinding case): refused, its body never kept."""
    if from_public and peer_ip is not None and not policy.is_public(peer_ip):
        return HopRefusal(
            codes.UNSAFE_REDIRECT, f"redirect from a public address answered from {peer_ip}"
        )
    return None
