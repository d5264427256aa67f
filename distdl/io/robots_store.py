"""robots.txt answers kept between the profiling and download stages (one JSON per host)."""

from __future__ import annotations

import json

from distdl.io.atomic import atomic_write_text
from distdl.layout import Layout


def save_robots(layout: Layout, server_name: str, status: int | None, text: str | None) -> None:
    payload = {"server_name": server_name, "status": status, "text": text}
    atomic_write_text(layout.robots_file(server_name), json.dumps(payload) + "\n")


RobotsAnswer = tuple[int | None, str | None]  # (HTTP status or None when unreachable, text)


def load_robots(layout: Layout, server_name: str) -> RobotsAnswer | None:
    """The answer stored while profiling; None when the host was never asked."""
    try:
        payload = json.loads(layout.robots_file(server_name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return payload.get("status"), payload.get("text")
