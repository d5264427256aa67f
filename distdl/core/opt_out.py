"""``X-Robots-Tag`` opt-outs: an image whose answer says ``noai`` or ``noimageai`` is not kept.

The header carries comma- (or space-) separated directives, either for every crawler or
scoped to one by a leading ``agent:`` that holds until the next scope in the same header
value (Google's syntax, which the ``noai`` proposals reuse)::

    X-Robots-Tag: noai, noimageai          -> everyone, us included
    X-Robots-Tag: distdl: noimageai        -> us
    X-Robots-Tag: *: noai                  -> everyone
    X-Robots-Tag: otherbot: noai           -> someone else: ignored
    X-Robots-Tag: otherbot: noindex, distdl: noai   (two headers folded into one) -> us

A header may appear several times; each value is read on its own. Everything is
case-insensitive. Directives that take a value (``max-image-preview: large``,
``unavailable_after: 25 Jun 2010 15:00:00 PST``) are not mistaken for agent names, and
their values, up to the next comma, are not read as directives.
``strict`` also honours ``noindex``, ``noimageindex`` and ``none`` (= noindex, nofollow), as
img2dataset does by default: sites use them to keep images out of search engines, not
necessarily out of datasets, so distdl leaves that choice to the user.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

AI_DIRECTIVES = frozenset({"noai", "noimageai"})
INDEX_DIRECTIVES = frozenset({"noindex", "noimageindex", "none"})
# Directives written "name: value": their name is not a user agent.
_VALUED = frozenset({"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"})
_AGENT = re.compile(r"^(\*|[a-z][a-z0-9._-]*)$")


def is_opted_out(
    x_robots_tag_values: Iterable[str], user_agent_token: str, *, strict: bool = False
) -> bool:
    """Whether any of the header values opts this image out for ``user_agent_token``."""
    ours = user_agent_token.strip().lower()
    refused = AI_DIRECTIVES | INDEX_DIRECTIVES if strict else AI_DIRECTIVES
    for value in x_robots_tag_values:
        for agent, directive in _directives(value):
            if directive in refused and agent in (None, "*", ours):
                return True
    return False


def _directives(value: str) -> list[tuple[str | None, str]]:
    """``(agent or None, directive)`` pairs of one header value, lower-cased."""
    pairs: list[tuple[str | None, str]] = []
    agent: str | None = None
    for segment in value.lower().split(","):
        words = segment.split()
        if not words:
            continue
        name, colon, rest = words[0].partition(":")
        if colon and name in _VALUED:
            continue  # "max-image-preview: large": the rest of the segment is its value
        if colon and _AGENT.match(name):
            agent = name  # "agent: d1 d2", or glued: "agent:d1"
            words = [rest, *words[1:]]
        pairs.extend((agent, word) for word in words if word)
    return pairs
