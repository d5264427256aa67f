"""URL validation and the server key (``server_name``) used to partition work.

The key is the server the HTTP client will connect to, so that two spellings of one server
never get two politeness budgets: the host exactly as yarl (the URL library aiohttp parses
every request URL with) encodes it, IDNA with UTS 46 included (``faß.de`` is
``xn--fa-hia.de``, fullwidth ``ａ.org`` is ``a.org``), then folded by
:func:`distdl.core.host_key.host_key` (trailing dots, IPv4 in any notation, IPv6
brackets), plus ``:port`` unless the port is 80 or 443. http and https on their default
ports already share one budget, so the standard ports are one server whichever scheme
reaches them; this also makes a key read back from a table (:func:`server_key`) mean what
it meant when written.

yarl is the one import here from outside the standard library: it does no I/O, and using
the client's own encoder is what makes the key match the client by construction (the
standard library's ``idna`` codec is IDNA 2003, which reads ``faß.de`` as ``fass.de``).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from yarl import URL

from distdl.core import codes
from distdl.core.host_key import HostKeyError, host_key

_SCHEMES = frozenset({"http", "https"})
_STANDARD_PORTS = frozenset({80, 443})
_SAFE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
_NOT_IN_A_NAME = frozenset("/?#@\\")


@dataclass(frozen=True)
class UrlVerdict:
    """Either a ``server_name`` (valid URL) or an error code and message."""

    server_name: str | None
    error_code: int = 0
    error_msg: str = ""

    @property
    def ok(self) -> bool:
        return self.server_name is not None


def _reject(code: int, msg: str) -> UrlVerdict:
    return UrlVerdict(None, code, msg)


def classify_url(identifier: object) -> UrlVerdict:
    """Decide whether ``identifier`` is fetchable and, if so, which server it belongs to.

    ``server_name`` is the server key (see the module docstring), plus ``:port`` unless it
    is 80 or 443, so ``http://A.org:80/x``, ``https://a.org./y`` and ``http://ａ.org/z``
    share one politeness budget.
    """
    if not isinstance(identifier, str) or not identifier.strip():
        return _reject(codes.INVALID_URL, "empty identifier")
    text = identifier.strip()
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in text) or " " in text:
        return _reject(codes.INVALID_URL, "identifier contains whitespace or control characters")
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        return _reject(codes.INVALID_URL, f"unparsable URL: {exc}")
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        shown = scheme or "(none)"
        return _reject(codes.UNSUPPORTED_SCHEME, f"unsupported scheme {shown!r}")
    try:
        port = parts.port
    except ValueError as exc:  # port out of range or not a number
        return _reject(codes.INVALID_URL, f"bad port: {exc}")
    if not parts.hostname:
        return _reject(codes.INVALID_URL, "URL has no host")
    if port == 0:
        return _reject(codes.INVALID_URL, "bad port: 0")
    try:
        host = _server_host(text)
    except HostKeyError as exc:
        return _reject(codes.INVALID_URL, str(exc))
    if port is not None and port not in _STANDARD_PORTS:
        return UrlVerdict(f"{host}:{port}")
    return UrlVerdict(host)


def _server_host(text: str) -> str:
    """The key of the host the client connects to for ``text``; HostKeyError if none."""
    try:
        client_host = URL(text).raw_host  # what aiohttp does with a str URL
    except UnicodeError as exc:
        raise HostKeyError(f"host cannot be IDNA-encoded: {exc}") from None
    except ValueError as exc:
        raise HostKeyError(f"the HTTP client rejects this URL: {exc}") from None
    if not client_host:
        raise HostKeyError("URL has no host")
    return host_key(client_host)


def server_key(name: str) -> str:
    """The server key of a name written in a table (``host`` or ``host:port``).

    The name is read as the authority of a URL, so ``Bücher.de``, ``xn--bcher-kva.de.`` and
    ``xn--bcher-kva.de:443`` all give ``xn--bcher-kva.de``, the key of every URL on that
    server, and a key gives itself. Raises ValueError, saying why, for anything else.
    """
    text = name.strip()
    if not text or _NOT_IN_A_NAME & set(text) or any(ch.isspace() for ch in text):
        raise ValueError(f"{name!r} is not a host name or host:port")
    verdict = classify_url(f"http://{text}/")
    if verdict.server_name is None:
        raise ValueError(f"{name!r} is not a host name or host:port: {verdict.error_msg}")
    return verdict.server_name


def safe_dir_name(server_name: str) -> str:
    """A folder name for ``server_name`` that can never escape its parent folder.

    Letters, digits, ``-`` and ``_`` pass through; a ``.`` passes unless it begins the
    name (so neither ``.`` nor ``..`` can appear); everything else, ``/``, ``%``, NUL and
    ``:`` included, is percent-encoded byte by byte. The mapping is injective, so two
    servers never share a folder.
    """
    out: list[str] = []
    for index, byte in enumerate(server_name.encode("utf-8")):
        char = chr(byte)
        if char in _SAFE_CHARS or (char == "." and index > 0):
            out.append(char)
        else:
            out.append(f"%{byte:02X}")
    # The empty name gets a lone "%": every other "%" is followed by two hex digits, so
    # no other name maps there (NUL, for one, is "%00").
    return "".join(out) or "%"
