from __future__ import annotations

import calendar

import pytest

from distdl.core.retry_after import parse_retry_after

# Sun, 06 Nov 1994 08:49:37 GMT, the example date of RFC 9110.
EXAMPLE_EPOCH = float(calendar.timegm((1994, 11, 6, 8, 49, 37)))
CAP = 3600.0


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_header_gives_none(value: str | None) -> None:
    assert parse_retry_after(value, 0.0, CAP) is None


@pytest.mark.parametrize(("value", "expected"), [("120", 120.0), (" 5 ", 5.0), ("0", 0.0)])
def test_delay_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value, EXAMPLE_EPOCH, CAP) == expected


def test_delay_seconds_are_capped() -> None:
    assert parse_retry_after("100000", 0.0, 300.0) == 300.0
    assert parse_retry_after("9" * 400, 0.0, 300.0) == 300.0


def test_negative_delay_means_now() -> None:
    assert parse_retry_after("-5", 0.0, CAP) == 0.0


@pytest.mark.parametrize(
    "value",
    [
        "1.5",
        "abc",
        "5s",
        "²",
        "5 5",
        "Sun, 99 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 99999 08:49:37 GMT",
    ],
)
def test_garbage_gives_none(value: str) -> None:
    assert parse_retry_after(value, EXAMPLE_EPOCH, CAP) is None


@pytest.mark.parametrize(
    "value",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        "Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850
        "Sun Nov  6 08:49:37 1994",  # asctime: no zone, must be read as UTC
    ],
)
def test_every_http_date_form(value: str) -> None:
    assert parse_retry_after(value, EXAMPLE_EPOCH - 90.0, CAP) == pytest.approx(90.0)


def test_date_with_numeric_offset() -> None:
    # 10:49:37 at +0200 is 08:49:37 UTC.
    value = "Sun, 06 Nov 1994 10:49:37 +0200"
    assert parse_retry_after(value, EXAMPLE_EPOCH - 30.0, CAP) == pytest.approx(30.0)


def test_date_in_the_past_means_now() -> None:
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", EXAMPLE_EPOCH + 500.0, CAP) == 0.0


def test_far_future_date_is_capped() -> None:
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", EXAMPLE_EPOCH - 10**6, 60.0) == 60.0


def test_negative_cap_is_rejected() -> None:
    with pytest.raises(ValueError):
        parse_retry_after("5", 0.0, -1.0)
