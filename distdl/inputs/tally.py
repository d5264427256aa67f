"""Rows set aside while planning, counted by reason, and the small file that keeps the counts.

Filtered rows are not downloads, so they are neither successes nor error rows: the plan's
promise becomes "every input row is planned, rejected as an error row, or counted here".
``filtered.json`` sits next to the plan (``{urls_folder}/filtered.json``), written
atomically with it; ``distdl status`` and ``DATASET.md`` read it.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from distdl.io.atomic import atomic_write_text

FILTERED_FILE = "filtered.json"

# Reasons, in the order rules are applied (a row is counted under the first that drops it).
REASONS = {
    "references_only": "no identifier, only a references page (never fetched blindly)",
    "type": "type not allowed (input_filters.types)",
    "format": "format not allowed (input_filters.formats)",
    "license": "licence not allowed (input_filters.licenses)",
    "publisher": "publisher excluded (input_filters.*_publishers)",
    "host": "host excluded (input_filters.*_hosts)",
    "duplicate": "same source_id and identifier as an earlier row (one image)",
    "previous_output": "already stored in previous_output",
    "basis_of_record": "basisOfRecord not allowed (input_filters.basis_of_record)",
    "dataset": "dataset excluded (input_filters.*_datasets)",
    "sampling": "not chosen by input_sampling",
}


class Tally:
    """Counts by reason; :meth:`to_json` is what ``filtered.json`` holds."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.rows_read = 0

    def add(self, reason: str, n: int) -> None:
        assert reason in REASONS, reason
        if n:
            self.counts[reason] += n

    @property
    def filtered(self) -> int:
        return sum(self.counts.values())

    def to_json(self) -> dict[str, object]:
        return {
            "rows_read": self.rows_read,
            "filtered": self.filtered,
            "by_reason": {r: self.counts[r] for r in REASONS if self.counts[r]},
        }


def write_filtered(folder: Path, tally: Tally, applied: dict[str, object]) -> None:
    document = {**tally.to_json(), "filters": applied}
    atomic_write_text(folder / FILTERED_FILE, json.dumps(document, indent=2) + "\n")


def read_filtered(urls_folder: Path) -> dict[str, object] | None:
    """The counts of the current plan, or None when it has none (older plans, no plan)."""
    try:
        loaded = json.loads((urls_folder / FILTERED_FILE).read_text("utf-8"))
    except FileNotFoundError:
        return None
    return loaded if isinstance(loaded, dict) else None
