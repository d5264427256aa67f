"""robots.txt answers kept between the profiling and download stages (one JSON per host)."""

from __future__ import annotations

import json

from distdl.core.robots import RobotsRules
from distdl.io.atomic import atomic_write_text
from distdl.layout import Layout


def save_robots(layout: Layout, server_name: str, status: int | None, text: str | None) -> None:
    payload = {"server_name": server_name, "status": status, "text": text}
    atomic_write_text(layout.robots_file(server_name), json.dumps(payload) + "\n")


def load_robots(layout: Layout, server_name: str) -> RobotsRules:
    """The host's rules; a host never profiled (no file) has none to follow."""
    try:
        payload = json.loads(layout.robots_file(server_name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return RobotsRules.allow_everything()
    return RobotsRules.from_response(payload.get("status"), payload.get("text"))
