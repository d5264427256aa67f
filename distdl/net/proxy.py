"""How one request goes through a forward proxy with aiohttp (which proxy is decided in
:mod:`distdl.core.proxies`).

aiohttp sends an https URL through a ``CONNECT`` tunnel and a plain http URL as an
absolute-form request (``GET http://host/path``) to the proxy. It does not take credentials
from a proxy URL it is given, so they are taken out here and sent as ``Proxy-Authorization``
where the proxy reads them: on the ``CONNECT`` for https, on the request itself for http
(never on a tunnelled request, which the target server would see).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from yarl import URL

PROXY_AUTHORIZATION = "Proxy-Authorization"


@dataclass(frozen=True)
class ProxiedRequest:
    """The keyword arguments of one ``session.get`` that differ with the proxy."""

    headers: Mapping[str, str]
    proxy: URL | None = None
    proxy_headers: Mapping[str, str] | None = None


@lru_cache(maxsize=16)  # a run uses one or two proxies; parse each once
def _split_credentials(proxy_url: str) -> tuple[URL, str | None]:
    parsed = URL(proxy_url)
    if parsed.user is None:
        return parsed, None
    # Basic credentials (RFC 7617) in UTF-8, as curl sends them; yarl has percent-decoded them.
    credentials = f"{parsed.user}:{parsed.password or ''}".encode()
    authorization = "Basic " + base64.b64encode(credentials).decode("ascii")
    return parsed.with_user(None), authorization


def proxied_request(url: str, proxy_url: str | None, headers: Mapping[str, str]) -> ProxiedRequest:
    """How to send ``url`` with ``headers`` through ``proxy_url`` (None: directly)."""
    if proxy_url is None:
        return ProxiedRequest(headers)
    proxy, authorization = _split_credentials(proxy_url)
    if authorization is None:
        return ProxiedRequest(headers, proxy)
    if url.lstrip().lower().startswith("https:"):
        return ProxiedRequest(headers, proxy, {PROXY_AUTHORIZATION: authorization})
    return ProxiedRequest({**headers, PROXY_AUTHORIZATION: authorization}, proxy)
