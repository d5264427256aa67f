"""robots.txt answers kept between the profiling and download stages (one JSON per host)."""

from __future__ import annotations

import json
import time

from distdl.core.breaker import HostCause
from distdl.io.atomic import atomic_write_text
from distdl.layout import Layout

# RFC 9309 lets a crawler cache robots.txt for up to 24 h; an *unreachable* answer is asked
# again after an hour, so a host that was down while profiling gets another chance.
UNREACHABLE_MAX_AGE = 3600.0  # seconds


def save_robots(
    layout: Layout,
    server_name: str,
    status: int | None,
    text: str | None,
    *,
    cause: HostCause | None = None,
) -> None:
    """``cause``: the failure behind an unreachable answer (``status`` None)."""
    payload: dict[str, object] = {
        "server_name": server_name,
        "status": status,
        "text": text,
        "fetched_at": time.time(),
    }
    if status is None and cause is not None:
        payload["cause"] = {"code": cause.code, "message": cause.message}
    atomic_write_text(layout.robots_file(server_name), json.dumps(payload) + "\n")


RobotsAnswer = tuple[int | None, str | None]  # (HTTP status or None when unreachable, text)


def load_robots(layout: Layout, server_name: str) -> RobotsAnswer | None:
    """The stored answer; None when the host was never asked or should be asked again."""
    try:
        payload = json.loads(layout.robots_file(server_name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    age = time.time() - float(payload.get("fetched_at") or 0.0)
    if payload.get("status") is None and age > UNREACHABLE_MAX_AGE:
        return None
    return payload.get("status"), payload.get("text")


def load_robots_cause(layout: Layout, server_name: str) -> HostCause | None:
    """Why the stored answer is "unreachable", when it says."""
    try:
        payload = json.loads(layout.robots_file(server_name).read_text(encoding="utf-8"))
        cause = payload["cause"]
        return HostCause(int(cause["code"]), str(cause["message"]))
    except (FileNotFoundError, KeyError, TypeError, ValueError):
        return None
