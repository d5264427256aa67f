"""The server key of a host the HTTP client has already encoded: one server, one name.

The input is a host as yarl (aiohttp's URL library) hands it to the connector: ASCII,
lower-cased, IDNA-encoded with UTS 46 when it was not ASCII, IPv6 compressed without
brackets. What is left to fold is what the client leaves to the resolver:

* trailing dots: ``a.org.`` is the fully qualified spelling of ``a.org``;
* IPv4 in any notation the WHATWG URL standard (and so every browser) accepts:
  ``2130706433``, ``0x7f.1``, ``0177.0.0.1`` and ``127.1`` are all ``127.0.0.1``, as glibc's
  ``inet_aton`` reads them too. (aiohttp itself refuses the all-decimal legacy forms without
  a request, and hands the hex forms to glibc, which connects to the address: either way
  no spelling reaches the server under a budget of its own.) A host whose last label is a
  number but which is not a valid address (``256.0.0.1``, ``1.2.3.4.5``, ``example.123``)
  is refused, as browsers refuse it: it names no server;
* an IPv6 literal is bracketed, so ``host:port`` stays unambiguous.

A host that holds a space or a control character once encoded (IDNA 2003, yarl's fallback,
maps a no-break space to a space) names no server either.

:data:`HOST_KEY_VERSION` names this rule. A plan records it; a plan made under another
rule is refused, because its partitions are named by other keys.
"""

from __future__ import annotations

import ipaddress

# 1: the lower-cased host as written. 2: the host the client connects to (this module).
HOST_KEY_VERSION = 2

_HEX_DIGITS = frozenset("0123456789abcdef")
_OCT_DIGITS = frozenset("01234567")
_DEC_DIGITS = frozenset("0123456789")


class HostKeyError(ValueError):
    """The host cannot name a server; the message says why."""


def host_key(client_host: str) -> str:
    """The server key of ``client_host`` (a host as yarl encodes it, without the port)."""
    host = client_host.rstrip(".")
    if not host:
        raise HostKeyError("URL host is only dots")
    if any(ord(ch) <= 0x20 or ch == "\x7f" for ch in host):
        raise HostKeyError(f"host {client_host!r} holds a space or control character")
    if ":" in host:
        return f"[{host}]"
    if ends_in_a_number(host):
        address = parse_ipv4(host)
        if address is None:
            raise HostKeyError(f"host {client_host!r} ends in a number but is not an IPv4 address")
        return address
    return host


def ends_in_a_number(host: str) -> bool:
    """WHATWG's test for a host that must be read as IPv4: its last label is a number."""
    last = host.rsplit(".", 1)[-1]
    if last.startswith(("0x", "0X")):
        return set(last[2:].lower()) <= _HEX_DIGITS
    return bool(last) and set(last) <= _DEC_DIGITS


def parse_ipv4(host: str) -> str | None:
    """The dotted quad of ``host`` read as WHATWG's IPv4 parser reads it, or None.

    One to four dot-separated numbers, each decimal, octal (leading ``0``) or hex (``0x``);
    the last fills every byte the others leave, so ``127.1`` is ``127.0.0.1``.
    """
    parts = host.split(".")
    if len(parts) > 4:
        return None
    numbers = [_ipv4_number(part) for part in parts]
    if any(number is None for number in numbers):
        return None
    *leading, last = [n for n in numbers if n is not None]
    if any(n > 255 for n in leading) or last >= 256 ** (4 - len(leading)):
        return None
    value = last
    for index, number in enumerate(leading):
        value += number << (8 * (3 - index))
    return str(ipaddress.IPv4Address(value))


def _ipv4_number(part: str) -> int | None:
    digits, radix, allowed = part.lower(), 10, _DEC_DIGITS
    if digits.startswith("0x"):
        digits, radix, allowed = digits[2:], 16, _HEX_DIGITS
    elif len(digits) > 1 and digits.startswith("0"):
        digits, radix, allowed = digits[1:], 8, _OCT_DIGITS
    if not part:
        return None
    if not digits:  # "0x" alone is zero, as in WHATWG
        return 0
    if not set(digits) <= allowed:
        return None
    try:
        return int(digits, radix)
    except ValueError:  # thousands of decimal digits: far beyond any address anyway
        return None
