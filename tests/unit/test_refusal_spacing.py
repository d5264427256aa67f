"""When a host's refusals say it is overloaded (they cluster) and when one came alone."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from distdl.core.refusal_spacing import RefusalSpacing


def test_the_first_refusal_alone_is_not_a_cluster() -> None:
    spacing = RefusalSpacing(quiet_answers=50)
    assert not spacing.observe(answers=3, refusals=0)
    assert not spacing.observe(answers=0, refusals=1)


def test_several_refusals_at_once_are_a_cluster() -> None:
    assert RefusalSpacing(quiet_answers=50).observe(answers=5, refusals=2)


def test_a_refusal_soon_after_the_last_is_a_cluster_and_one_after_a_quiet_stretch_is_not() -> None:
    spacing = RefusalSpacing(quiet_answers=50)
    spacing.observe(answers=0, refusals=1)
    assert spacing.observe(answers=49, refusals=1)
    spacing.observe(answers=50, refusals=0)
    assert not spacing.observe(answers=0, refusals=1)


@given(st.lists(st.tuples(st.integers(0, 80), st.integers(0, 3)), max_size=40))
def test_a_refusal_clusters_exactly_when_another_came_within_the_quiet_answers(
    reports: list[tuple[int, int]],
) -> None:
    """Against a plain replay: the answers since the last refusal, counted one by one."""
    spacing = RefusalSpacing(quiet_answers=50)
    since: int | None = None
    for answers, refusals in reports:
        if since is not None:
            since += answers
        expected = refusals >= 2 or (refusals == 1 and since is not None and since < 50)
        assert spacing.observe(answers, refusals) == expected
        if refusals:
            since = 0
