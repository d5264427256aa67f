"""Licence strings as data providers write them, normalised to SPDX-style ids."""

from __future__ import annotations

import polars as pl
import pytest

from distdl.inputs.licences import full_licence, licence_id, licence_ids

CASES = {
    "http://creativecommons.org/licenses/by-nc/4.0/": "CC-BY-NC-4.0",
    "https://creativecommons.org/licenses/by/4.0/legalcode": "CC-BY-4.0",
    "http://creativecommons.org/licenses/by-sa/3.0/deed.en": "CC-BY-SA-3.0",
    "http://creativecommons.org/publicdomain/zero/1.0/": "CC0-1.0",
    "https://creativecommons.org/publicdomain/mark/1.0/": "LicenseRef-Public-Domain-Mark",
    "CC BY-SA 4.0": "CC-BY-SA-4.0",
    "CC-BY-NC 4.0": "CC-BY-NC-4.0",
    "cc-by": "CC-BY",
    "CC_BY_NC_ND": "CC-BY-NC-ND",
    "CC0": "CC0-1.0",
    "cc0 1.0": "CC0-1.0",
    "Creative Commons Attribution-NonCommercial-ShareAlike 4.0 International": "CC-BY-NC-SA-4.0",
    "CC BY-NC 4.0 (Attribution-NonCommercial)": "CC-BY-NC-4.0",
    "All rights reserved": "LicenseRef-All-Rights-Reserved",
    "Public Domain": "LicenseRef-Public-Domain",
}


@pytest.mark.parametrize(("text", "expected"), CASES.items())
def test_licence_spellings_get_their_id(text: str, expected: str) -> None:
    assert licence_id(text) == expected


@pytest.mark.parametrize(
    "text", [None, "", "  ", "see website", "by-nc", "CC BY-XY 4.0", "Unknown"]
)
def test_unrecognised_licences_have_no_id(text: str | None) -> None:
    assert licence_id(text) is None


def test_a_column_is_normalised_once_per_distinct_string() -> None:
    column = pl.Series(["CC0", None, "cc-by", "CC0"])
    assert licence_ids(column).to_list() == ["CC0-1.0", None, "CC-BY", "CC0-1.0"]


def test_full_means_known_and_attributed_where_required() -> None:
    ids = pl.Series(["CC-BY-4.0", "CC-BY-4.0", "CC0-1.0", None, "LicenseRef-All-Rights-Reserved"])
    source = pl.Series(["Museum", " ", None, "Museum", "Museum"])
    assert full_licence(ids, source).to_list() == [True, False, True, False, True]
