"""The request headers distdl sends: an honest User-Agent and the user's ``header`` setting.

Servers see who is downloading (``distdl/<version>``, a link to the project, and the
operator's contact when configured) and never aiohttp's generic ``Python/… aiohttp/…``.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import metadata

from distdl.errors import ConfigError

PROJECT_URL = "https://github.com/distdl/distdl"
_TOKEN = "distdl"
_KEY_PATH = "downloader_parameters.header"
_FORBIDDEN_IN_VALUES = frozenset("\r\n\x00")


def user_agent_token() -> str:
    """The product token robots.txt groups and ``X-Robots-Tag: <agent>: …`` scopes name."""
    return _TOKEN


@lru_cache(maxsize=1)
def _version() -> str:
    try:
        return metadata.version("distdl")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def _clean_contact(contact: str) -> str:
    # Parentheses would end the User-Agent comment early; control characters would split
    # the header line.
    return "".join(ch for ch in contact if ch.isprintable() and ch not in "()").strip()


def default_user_agent(contact: str | None) -> str:
    """``distdl/<version> (+<project url>; contact: <contact>)``, contact only when set."""
    comment = f"+{PROJECT_URL}"
    cleaned = _clean_contact(contact) if contact else ""
    if cleaned:
        comment += f"; contact: {cleaned}"
    return f"{_TOKEN}/{_version()} ({comment})"


def _has_header(headers: dict[str, str], name: str) -> bool:
    return any(key.lower() == name.lower() for key in headers)


def with_header(headers: dict[str, str], name: str, value: str) -> dict[str, str]:
    """A copy of ``headers`` where ``name`` (any case) is replaced by ``value``."""
    kept = {key: val for key, val in headers.items() if key.lower() != name.lower()}
    kept[name] = value
    return kept


def _parse_header_line(line: str) -> dict[str, str]:
    name, sep, value = line.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not name or any(ch in name for ch in " \t\r\n"):
        raise ConfigError(f"{_KEY_PATH}: a header string must look like 'Name: value'")
    return {name: value}


def _check_values(headers: dict[str, str]) -> None:
    for name, value in headers.items():
        if not isinstance(value, str) or any(ch in _FORBIDDEN_IN_VALUES for ch in value):
            raise ConfigError(f"{_KEY_PATH}.{name}: header values must be one line of text")


def resolve_headers(header: bool | dict[str, str] | str, contact: str | None) -> dict[str, str]:
    """The headers every request carries, from the ``header`` config value.

    ``True``: our User-Agent and ``Accept: image/*``. ``False``: only our User-Agent (a
    request without one would announce itself as python-aiohttp). A dict: used as given,
    plus our User-Agent unless it sets one. ``"Name: value"``: that header, plus our
    User-Agent unless the header *is* the User-Agent.
    """
    user_agent = default_user_agent(contact)
    if header is True:
        return {"User-Agent": user_agent, "Accept": "image/*"}
    if header is False:
        return {"User-Agent": user_agent}
    given = _parse_header_line(header) if isinstance(header, str) else dict(header)
    _check_values(given)
    if not _has_header(given, "User-Agent"):
        given["User-Agent"] = user_agent
    return given
