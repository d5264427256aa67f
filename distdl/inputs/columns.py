"""Resolve the names a mapping asks for against the columns an input really has.

A header may spell a term as its URI; both spellings name the same column. Duplicate names
(two ``source`` columns after a hand edit, or two URIs ending in the same term) are an
error naming them, because silently reading either one gives wrong data. A name matches
exactly, or, when no column has exactly that name, case-insensitively if only one does.
"""

from __future__ import annotations

from collections import Counter

from distdl.errors import InputError
from distdl.inputs.meta import term_name


def normalised_names(header: list[str], where: str) -> tuple[str, ...]:
    """The header's names as terms; raise InputError on a name given twice."""
    names = tuple(term_name(name.strip()) or f"_col{i}" for i, name in enumerate(header))
    repeated = sorted(name for name, n in Counter(names).items() if n > 1)
    if repeated:
        raise InputError(
            f"{where}: column name(s) given more than once: {', '.join(repeated)} "
            "(distdl cannot tell which one to read; rename or remove the extra column)"
        )
    return names


def find_column(names: tuple[str, ...], wanted: str, where: str) -> str | None:
    """The input column ``wanted`` names, or None when it has none."""
    if wanted in names:
        return wanted
    folded = [name for name in names if name.lower() == wanted.lower()]
    if len(folded) > 1:
        raise InputError(
            f"{where}: {wanted!r} is ambiguous: the input has {', '.join(folded)}; "
            "name one exactly in input_columns"
        )
    return folded[0] if folded else None


def first_present(names: tuple[str, ...], candidates: list[str], where: str) -> str | None:
    """The first candidate the input has (presets list alternatives, e.g. gbifID, coreid)."""
    for candidate in candidates:
        found = find_column(names, candidate, where)
        if found is not None:
            return found
    return None
