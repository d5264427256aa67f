"""Normalise licence URLs and names to SPDX-style ids, and judge whether a row's licence is full.

Ids: ``CC-BY-NC-4.0``, ``CC-BY-SA-3.0``, ``CC0-1.0`` as SPDX spells them; a Creative Commons
licence named without a version keeps none (``cc-by`` -> ``CC-BY``); ``LicenseRef-*`` ids for
what SPDX lacks (public domain, the Public Domain Mark, all rights reserved). An unrecognised
string has no id (null). The table of names lives in ``licences.yaml``.

``is_license_full`` means: the licence is known, and the attribution it requires is present
(a non-empty ``source``, the rights holder). Public-domain licences require none.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

import polars as pl
import yaml

_CC_URL = re.compile(
    r"^creativecommons\.org/(?:licenses|licence|license)/(?P<elements>[a-z-]+)(?:/(?P<version>[0-9.]+))?"
)
_CC_ZERO_URL = re.compile(r"^creativecommons\.org/publicdomain/zero(?:/(?P<version>[0-9.]+))?")
_CC_MARK_URL = re.compile(r"^creativecommons\.org/publicdomain/mark")
_CC_NAME = re.compile(
    r"^(?:cc|creative-commons)-?(?P<elements>by(?:-nc)?(?:-sa|-nd)?)(?:-(?P<version>[0-9]+(?:-[0-9]+)?))?"
    r"(?:-[a-z]+)*$"
)
_LONG_ELEMENTS = (("noncommercial", "NC"), ("sharealike", "SA"), ("noderiv", "ND"))
_VALID_ELEMENTS = {"BY", "BY-SA", "BY-NC", "BY-ND", "BY-NC-SA", "BY-NC-ND"}


@cache
def _table() -> dict[str, object]:
    text = resources.files("distdl.inputs").joinpath("licences.yaml").read_text("utf-8")
    loaded = yaml.safe_load(text)
    assert isinstance(loaded, dict)
    return loaded


def _aliases() -> dict[str, str | None]:
    aliases = _table()["aliases"]
    assert isinstance(aliases, dict)
    return aliases


def no_attribution_needed() -> frozenset[str]:
    names = _table()["no_attribution_needed"]
    assert isinstance(names, list)
    return frozenset(names)


def _version(raw: str | None) -> str:
    if not raw:
        return ""
    parts = raw.replace("-", ".").split(".")
    return "-" + (parts[0] + "." + (parts[1] if len(parts) > 1 and parts[1] else "0"))


def _cc(elements: str, version: str | None) -> str | None:
    upper = elements.upper().strip("-")
    return f"CC-{upper}{_version(version)}" if upper in _VALID_ELEMENTS else None


def licence_id(text: str | None) -> str | None:
    """The SPDX-style id of one licence string, or None when it is not recognised."""
    if text is None or not text.strip():
        return None
    plain = text.strip().lower()
    plain = re.sub(r"^https?://", "", plain).removeprefix("www.")
    plain = re.sub(r"/(?:legalcode|deed\.[a-z_-]+)(?:\.[a-z]+)?$", "", plain).rstrip("/")
    if match := _CC_ZERO_URL.match(plain):
        return "CC0" + (_version(match["version"]) or "-1.0")
    if _CC_MARK_URL.match(plain):
        return "LicenseRef-Public-Domain-Mark"
    if match := _CC_URL.match(plain):
        return _cc(match["elements"], match["version"])
    words = re.sub(r"[\s_.()/,:;]+", "-", plain).strip("-")
    if words in _aliases():
        return _aliases()[words]
    if match := _CC_NAME.match(words):
        return _cc(match["elements"], match["version"])
    return _long_name(words)


def _long_name(words: str) -> str | None:
    """``creative-commons-attribution-noncommercial-4-0-international`` -> ``CC-BY-NC-4.0``."""
    if "attribution" not in words or ("creative" not in words and not words.startswith("cc")):
        return None
    elements = "BY" + "".join(f"-{code}" for key, code in _LONG_ELEMENTS if key in words)
    version = re.search(r"-([0-9]+)-([0-9]+)(?:-|$)", words)
    return _cc(elements, f"{version[1]}.{version[2]}" if version else None)


def licence_ids(licences: pl.Series) -> pl.Series:
    """:func:`licence_id` of every row, computed once per distinct string."""
    distinct = licences.drop_nulls().unique()
    ids = pl.Series([licence_id(text) for text in distinct.to_list()], dtype=pl.String)
    return licences.replace_strict(distinct, ids, default=None, return_dtype=pl.String).rename(
        "license_id"
    )


def full_licence(license_id: pl.Series, source: pl.Series) -> pl.Series:
    """True where the licence is known and its required attribution (``source``) is given."""
    free = license_id.is_in(pl.Series(sorted(no_attribution_needed()), dtype=pl.String).implode())
    attributed = (source.str.strip_chars().str.len_bytes() > 0).fill_null(False)
    known = license_id.is_not_null()
    return (known & (free | attributed)).rename("is_license_full")
