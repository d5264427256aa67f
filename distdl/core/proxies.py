"""Which forward proxy, if any, a request goes through: pure, so every choice is tested
without a socket or a real environment (the environment is passed in as a mapping).

Sources, in order:

1. ``downloader_parameters.proxy`` in the config: ``false`` sends every request directly,
   even when the environment names a proxy; a URL sends http and https requests through it.
2. Otherwise the environment, as curl, wget, requests and aiohttp read it: ``https_proxy``
   for https URLs, ``http_proxy`` for http URLs, the lower-case name winning over the
   upper-case one, an empty value counting as unset. ``ALL_PROXY`` is not read: it often
   names a SOCKS proxy, which distdl cannot use.

``no_proxy``/``NO_PROXY`` applies in both cases (a site lists its intranet mirrors there, and
a user who only overrides the proxy's address still wants them reached directly). Its
comma-separated entries are matched against the URL's server key
(:mod:`distdl.core.urls`), so a spelling of a host is exempt exactly when its budget is:

* ``*`` alone exempts everything;
* a name exempts itself and every name below it; a leading ``.`` or ``*.`` is ignored
  (``.a.org`` and ``a.org`` both exempt ``a.org`` and ``img.a.org``); names are folded like
  server keys (case, IDNA, a trailing dot);
* an IP address or a CIDR block (``10.0.0.0/8``, ``[::1]``) exempts URLs whose host is an IP
  literal inside it (never a name: it cannot be resolved here without leaking the choice
  to the local DNS);
* ``:port`` restricts an entry to that port (the URL's explicit port or its scheme's).

Entries that are none of these are ignored, as other clients ignore them.

A proxy value without a scheme (``proxy.site:3128``) is read as ``http://``; only ``http://``
and ``https://`` proxies are accepted. Credentials in it (``http://user:pw@proxy:3128``)
are kept for the network adapter, never shown: messages print :func:`redacted` values.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from distdl.core.urls import classify_url, server_key

_PROXY_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class NoProxyRule:
    """One ``NO_PROXY`` entry: everything, an IP block, or a name and the names below it."""

    everything: bool = False
    network: IpNetwork | None = None
    name: str | None = None
    port: int | None = None

    def matches(self, host: str, port: int) -> bool:
        """``host`` is a server key's host part (IPv6 without brackets)."""
        if self.everything:
            return True
        if self.port is not None and self.port != port:
            return False
        address = _ip_or_none(host)
        if address is not None:
            return self.network is not None and address in self.network
        if self.name is None:
            return False
        return host == self.name or host.endswith("." + self.name)


@dataclass(frozen=True)
class ProxyChoice:
    """The proxy of http URLs, that of https URLs, and the hosts exempt from both."""

    http: str | None = None
    https: str | None = None
    bypass: tuple[NoProxyRule, ...] = ()

    def __repr__(self) -> str:  # never a password in a log line or a traceback
        http = None if self.http is None else redacted(self.http)
        https = None if self.https is None else redacted(self.https)
        return f"ProxyChoice(http={http!r}, https={https!r}, bypass={self.bypass!r})"

    def proxy_for(self, url: str) -> str | None:
        """The proxy URL to send ``url`` through, or None to connect directly.

        A URL that is not a valid http(s) URL goes direct: the client then reports its own
        error for it, as it would without a proxy.
        """
        scheme = url.lstrip().partition(":")[0].lower()
        proxy = self.https if scheme == "https" else self.http if scheme == "http" else None
        if proxy is None or not self.bypass:
            return proxy
        server = classify_url(url).server_name
        if server is None:
            return None
        host, port = _host_and_port(server, url, scheme)
        if any(rule.matches(host, port) for rule in self.bypass):
            return None
        return proxy


DIRECT = ProxyChoice()


def choose_proxies(configured: str | bool | None, environ: Mapping[str, str]) -> ProxyChoice:
    """The choice for a run: see the module docstring. Raises ValueError naming the source
    (the config key or the environment variable) of a proxy that cannot be used."""
    if configured is False:
        return DIRECT
    if configured is True:
        raise ValueError("proxy: true is not a proxy; give its URL, or false for none")
    if configured is not None:
        http = https = normalize_proxy_url(configured, "downloader_parameters.proxy")
    else:
        http = _from_environment(environ, "http_proxy")
        https = _from_environment(environ, "https_proxy")
    if http is None and https is None:
        return DIRECT
    no_proxy = _variable(environ, "no_proxy")
    return ProxyChoice(http, https, parse_no_proxy(no_proxy[1] if no_proxy else ""))


def normalize_proxy_url(text: str, source: str = "") -> str:
    """``text`` as a proxy URL with a scheme; ValueError (naming ``source``) if unusable."""
    where = f"{source}: " if source else ""
    value = text.strip()
    if "://" not in value:
        value = "http://" + value
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{where}{redacted(value)} is not a proxy URL ({exc})") from None
    if parts.scheme.lower() not in _PROXY_SCHEMES:
        raise ValueError(
            f"{where}{parts.scheme}:// proxies are not supported (http:// or https:// only)"
        )
    if not parts.hostname or port == 0:
        raise ValueError(f"{where}{redacted(value)} names no proxy host")
    return value


def redacted(proxy_url: str) -> str:
    """``proxy_url`` with its password (if any) replaced by ``***``."""
    parts = urlsplit(proxy_url)
    if parts.password is None:
        return proxy_url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def without_credentials(proxy_url: str) -> str:
    """``proxy_url`` without its user and password (for job scripts and ``distdl env``)."""
    parts = urlsplit(proxy_url)
    if "@" not in parts.netloc:
        return proxy_url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def parse_no_proxy(text: str) -> tuple[NoProxyRule, ...]:
    """The rules of a ``NO_PROXY`` value (see the module docstring); bad entries dropped."""
    rules = []
    for entry in text.replace(" ", ",").split(","):
        rule = _rule(entry.strip())
        if rule is not None:
            rules.append(rule)
    return tuple(rules)


def _rule(entry: str) -> NoProxyRule | None:
    if not entry:
        return None
    if entry == "*":
        return NoProxyRule(everything=True)
    split = _split_port(entry)
    if split is None:
        return None
    host, port = split
    try:
        return NoProxyRule(network=ipaddress.ip_network(host, strict=False), port=port)
    except ValueError:
        pass
    name = host.removeprefix("*.").removeprefix(".")
    try:
        key = server_key(name)  # the same folding as the URL's host (case, IDNA, dots)
    except ValueError:
        return None
    address = _ip_or_none(key.strip("[]"))
    if address is not None:  # an IPv4 address in another notation, such as 127.1
        return NoProxyRule(network=ipaddress.ip_network(address), port=port)
    return NoProxyRule(name=key, port=port)


def _split_port(entry: str) -> tuple[str, int | None] | None:
    """``(host, port)`` of ``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6
    address; None when the port is not a number."""
    if entry.startswith("["):
        host, bracket, rest = entry[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest.removeprefix(":") if rest else ""
    elif entry.count(":") == 1:
        host, _, port_text = entry.partition(":")
    else:
        host, port_text = entry, ""
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    return host, int(port_text)


def _host_and_port(server: str, url: str, scheme: str) -> tuple[str, int]:
    """The host part of a server key (IPv6 unbracketed) and the port the URL connects to."""
    if server.startswith("["):
        host = server[1 : server.index("]")]
    else:
        host = server.rpartition(":")[0] if ":" in server else server
    port = urlsplit(url.strip()).port  # valid: classify_url accepted the URL
    return host, port if port is not None else _DEFAULT_PORTS[scheme]


def _ip_or_none(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _from_environment(environ: Mapping[str, str], lower_name: str) -> str | None:
    found = _variable(environ, lower_name)
    return None if found is None else normalize_proxy_url(found[1], f"environment {found[0]}")


def _variable(environ: Mapping[str, str], lower_name: str) -> tuple[str, str] | None:
    """(name, value) of the lower-case variable, else the upper-case one; empty is unset."""
    for name in (lower_name, lower_name.upper()):
        value = environ.get(name, "").strip()
        if value:
            return name, value
    return None
