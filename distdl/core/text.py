"""Words for counts in what users read (pure)."""

from __future__ import annotations


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 partition``, ``2 partitions``; ``many`` for an irregular plural."""
    return f"{count} {noun}" if count == 1 else f"{count} {many or noun + 's'}"
