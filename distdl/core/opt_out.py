"""X-Robots-Tag opt-outs: images whose server says ``noai`` / ``noimageai`` are not kept.

A header value is a comma-separated list of directives, optionally scoped to one agent as
``agent: d1, d2`` (Google's syntax, which img2dataset follows). Unscoped directives and
those scoped to our token or ``*`` apply to us; another agent's do not.
"""

from __future__ import annotations

from collections.abc import Iterable

OPT_OUT = frozenset({"noai", "noimageai"})
# img2dataset also drops images that must not be indexed; `strict` mirrors that.
STRICT_OPT_OUT = OPT_OUT | {"noindex", "noimageindex", "none"}


def _directives_for_us(value: str, user_agent_token: str) -> set[str]:
    ours: set[str] = set()
    scope_applies = True
    for raw in value.split(","):
        item = raw.strip().lower()
        if not item:
            continue
        if ":" in item:
            agent, _, directive = item.partition(":")
            agent = agent.strip()
            # "unavailable_after: <date>" is a directive with an argument, not a scope.
            if agent != "unavailable_after":
                scope_applies = agent in (user_agent_token.lower(), "*")
                item = directive.strip()
        if scope_applies and item:
            ours.update(item.split())
    return ours


def is_opted_out(
    x_robots_tag_values: Iterable[str], user_agent_token: str, *, strict: bool = False
) -> bool:
    wanted = STRICT_OPT_OUT if strict else OPT_OUT
    return any(
        _directives_for_us(value, user_agent_token) & wanted for value in x_robots_tag_values
    )
