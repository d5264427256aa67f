"""The byte budget's bookkeeping: admission, the allowance of requests in flight, claims."""

from __future__ import annotations

import pytest

from distdl.core.memory_budget import MIN_ALLOWANCE, WINDOW, MemoryBudget

MIB = 1024 * 1024


def test_a_rank_starts_carefully_then_expects_what_recent_images_claimed() -> None:
    budget = MemoryBudget(100 * MIB, first_allowance=50 * MIB)
    assert budget.allowance() == 50 * MIB
    budget.record_claim(3 * MIB)
    budget.record_claim(7 * MIB)
    budget.record_claim(2 * MIB)
    assert budget.allowance() == 7 * MIB  # the largest recent claim, not the mean


def test_the_allowance_forgets_claims_older_than_the_window() -> None:
    budget = MemoryBudget(1000 * MIB, first_allowance=MIB)
    budget.record_claim(40 * MIB)
    for _ in range(WINDOW - 1):
        budget.record_claim(2 * MIB)
    assert budget.allowance() == 40 * MIB
    budget.record_claim(2 * MIB)
    assert budget.allowance() == 2 * MIB


def test_the_allowance_has_a_floor_and_never_exceeds_the_capacity() -> None:
    budget = MemoryBudget(10 * MIB, first_allowance=0)
    assert budget.allowance() == MIN_ALLOWANCE
    budget.record_claim(0)
    assert budget.allowance() == MIN_ALLOWANCE
    budget.record_claim(50 * MIB)
    assert budget.allowance() == 10 * MIB
    assert budget.admits()  # an idle rank can always start one request


def test_requests_are_admitted_while_one_more_allowance_fits() -> None:
    budget = MemoryBudget(10 * MIB, first_allowance=3 * MIB)
    for _ in range(3):
        assert budget.admits()
        budget.start()
    assert budget.reserved == 9 * MIB
    assert not budget.admits()
    budget.abandon()
    assert budget.admits()


def test_requests_in_flight_count_as_what_images_are_now_known_to_weigh() -> None:
    budget = MemoryBudget(100 * MIB, first_allowance=50 * MIB)
    budget.start()  # started before anything was known: 50 MiB ...
    budget.start()
    assert budget.reserved == 100 * MIB and not budget.admits()
    budget.record_claim(2 * MIB)  # ... until an answer tells what this rank's images weigh
    assert budget.reserved == 4 * MIB and budget.admits()


def test_an_arrived_body_holds_its_claim_even_past_the_capacity() -> None:
    budget = MemoryBudget(10 * MIB, first_allowance=2 * MIB)
    budget.start()
    budget.start()
    budget.land(MIB)
    budget.resize(MIB, 9 * MIB)  # the bytes exist: held whatever the budget says
    assert budget.reserved == 11 * MIB and budget.peak == 11 * MIB
    assert not budget.admits()  # ... and nothing more starts until it is released
    budget.release(9 * MIB)
    budget.land(0)
    assert budget.reserved == 0 and budget.peak == 11 * MIB


def test_the_peak_is_the_most_ever_reserved_at_once() -> None:
    budget = MemoryBudget(10 * MIB, first_allowance=MIB)
    budget.start()
    budget.land(4 * MIB)
    budget.resize(4 * MIB, 2 * MIB)  # a shrink never raises the peak
    budget.start()
    budget.land(3 * MIB)
    assert budget.peak == 5 * MIB


def test_one_image_fits_only_within_the_whole_capacity() -> None:
    budget = MemoryBudget(10 * MIB, first_allowance=MIB)
    budget.start()
    budget.land(9 * MIB)
    assert budget.fits(10 * MIB)  # fits an idle rank, even if not now
    assert not budget.fits(10 * MIB + 1)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda b: b.release(1), "only 0 held"),
        (lambda b: b.land(1), "no request in flight"),
        (lambda b: b.abandon(), "not in flight"),
        (lambda b: b.resize(0, -1), "negative"),
        (lambda b: b.record_claim(-5), "negative"),
    ],
)
def test_bookkeeping_errors_are_bugs(action, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        action(MemoryBudget(MIB, first_allowance=MIB))


def test_a_budget_needs_a_capacity() -> None:
    with pytest.raises(ValueError, match="capacity"):
        MemoryBudget(0, first_allowance=1)
