"""Filter rules: each drops what it says, counted under the first rule that drops a row."""

from __future__ import annotations

from collections import Counter

import polars as pl

from distdl.config import InputFilters
from distdl.inputs.filters import apply_filters, build_filters


def _frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "identifier": [
                "https://a.org/1.jpg",
                "https://a.org/2.mp3",
                None,
                "",
                "https://cdn.b.org/3.jpg",
                "https://c.org/4.jpg",
            ],
            "license_id": ["CC0-1.0", "CC0-1.0", "CC-BY-4.0", None, "CC-BY-NC-4.0", None],
            "__type": ["StillImage", "Sound", "StillImage", None, "StillImage", None],
            "__format": ["image/jpeg", "audio/mpeg", None, None, "IMAGE/PNG", None],
            "__references": [None, None, "https://a.org/page", None, None, None],
            "__publisher": ["iNaturalist", "iNaturalist", None, None, "Museum", "Museum"],
        }
    )


def _counter(
    filters: InputFilters, defaults: dict[str, list[str]] | None = None
) -> tuple[list[int], dict[str, int]]:
    rows, _ = build_filters(filters, defaults or {})
    counts: Counter[str] = Counter()
    kept = apply_filters(_frame().with_row_index(), rows, lambda r, n: counts.update({r: n}))
    return kept["index"].to_list(), dict(counts)


def test_the_gbif_defaults_keep_still_images_and_rows_without_type() -> None:
    kept, counts = _counter(InputFilters(), {"types": ["StillImage"], "formats": ["image/*"]})
    assert kept == [0, 3, 4, 5]  # an empty identifier is the planner's to reject
    assert counts == {"references_only": 1, "type": 1}


def test_licence_allow_list_drops_unknown_licences_too() -> None:
    # Globs work too: "CC-BY-*" would also let CC-BY-NC-4.0 (row 4) through.
    kept, counts = _counter(InputFilters(licenses=["CC0-1.0", "cc-by-4.0"]))
    assert kept == [0, 1]
    assert counts == {"references_only": 1, "license": 3}


def test_hosts_and_publishers_include_and_exclude() -> None:
    kept, counts = _counter(InputFilters(exclude_hosts=["*.b.org"], include_publishers=["museum"]))
    assert kept == [5]
    assert counts == {"references_only": 1, "publisher": 3, "host": 1}


def test_an_empty_configured_list_overrides_the_preset() -> None:
    kept, _ = _counter(InputFilters(types=[]), {"types": ["StillImage"]})
    assert kept == [3, 5]  # [] allows no type: only rows without one stay
