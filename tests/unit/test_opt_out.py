"""X-Robots-Tag opt-out parsing."""

from __future__ import annotations

import pytest

from distdl.core.opt_out import is_opted_out

TOKEN = "distdl"


@pytest.mark.parametrize(
    "values",
    [
        ["noai"],
        ["noimageai"],
        ["noindex, noai"],
        ["NoAI"],
        ["noindex noimageai"],  # whitespace-separated
        ["nofollow,noai"],
        ["distdl: noai"],
        ["DistDL: NoImageAI"],
        ["distdl:noai"],
        ["*: noimageai"],
        ["otherbot: noindex, distdl: noai"],  # two headers folded into one value
        ["otherbot: noai", "noimageai"],  # several header values
        ["unavailable_after: 25 Jun 2010 15:00:00 PST, noai"],
        ["max-image-preview: large, noimageai"],
        ["unavailable_after: Friday, 25-Jun-10 15:00:00 GMT, noai"],  # a date with a comma
    ],
)
def test_opted_out(values: list[str]) -> None:
    assert is_opted_out(values, TOKEN)


@pytest.mark.parametrize(
    "values",
    [
        [],
        [""],
        ["all"],
        ["nofollow, noarchive"],
        ["noindex", "noimageindex", "none"],  # search-engine directives, not strict
        ["otherbot: noai"],
        ["otherbot: noai, noimageai"],  # the scope holds for the whole value
        ["distdlbot: noai"],  # another agent whose name starts with ours
        ["max-image-preview: noai"],  # a value, not a directive
        ["unavailable_after: 25 Jun 2010 15:00:00 PST"],
        ["unavailable_after: Friday, 25-Jun-10 15:00:00 GMT"],
        ["ainoai", "noai-later"],
    ],
)
def test_not_opted_out(values: list[str]) -> None:
    assert not is_opted_out(values, TOKEN)


@pytest.mark.parametrize(
    "values", [["noindex"], ["noimageindex"], ["none"], ["distdl: noindex"], ["*: NOINDEX"]]
)
def test_strict_also_honours_the_index_directives(values: list[str]) -> None:
    assert not is_opted_out(values, TOKEN)
    assert is_opted_out(values, TOKEN, strict=True)


def test_strict_still_ignores_other_agents() -> None:
    assert not is_opted_out(["googlebot: noindex"], TOKEN, strict=True)


def test_the_token_is_matched_case_insensitively_and_trimmed() -> None:
    assert is_opted_out(["distdl: noai"], " DistDL ")


def test_a_scope_applies_only_within_its_own_header_value() -> None:
    assert is_opted_out(["otherbot: noindex", "noai"], TOKEN)
    assert not is_opted_out(["otherbot: nofollow", "otherbot: noai"], TOKEN)
