"""URL validation and the host key (``server_name``) used to partition work."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from distdl.core import codes

_DEFAULT_PORTS = {"http": 80, "https": 443}
_SAFE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


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

    ``server_name`` is the lower-cased host, plus ``:port`` when it is not the scheme's
    default, so ``http://A.org:80/x`` and ``http://a.org/y`` share one politeness budget.
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
    if scheme not in _DEFAULT_PORTS:
        shown = scheme or "(none)"
        return _reject(codes.UNSUPPORTED_SCHEME, f"unsupported scheme {shown!r}")
    try:
        host = parts.hostname
        port = parts.port
    except ValueError as exc:  # port out of range or not a number
        return _reject(codes.INVALID_URL, f"bad port: {exc}")
    if not host:
        return _reject(codes.INVALID_URL, "URL has no host")
    if port == 0:
        return _reject(codes.INVALID_URL, "bad port: 0")
    host = host.lower().rstrip(".")
    if not host:
        return _reject(codes.INVALID_URL, "URL host is only dots")
    if ":" in host:  # IPv6 literal: keep it bracketed so host:port stays unambiguous
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        return UrlVerdict(f"{host}:{port}")
    return UrlVerdict(host)


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
    return "".join(out) or "%00"
