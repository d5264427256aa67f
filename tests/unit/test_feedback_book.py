from __future__ import annotations

from distdl.runtime.feedback import JUDGING_SECONDS, FeedbackBook


def test_clean_answers_wait_for_a_full_report_and_refusals_do_not() -> None:
    book = FeedbackBook()
    book.record_ok("clean.org", 0.1)
    book.record_ok("busy.org", 0.1)
    book.record_failure("busy.org", 429, 0.1, retry_after=None)
    urgent = book.drain(clean_too=False)
    assert list(urgent) == ["busy.org"]
    assert (urgent["busy.org"].ok, urgent["busy.org"].rate_limited) == (1, 1)
    book.record_ok("clean.org", 0.2)
    assert book.drain(clean_too=False) == {}  # nothing to act on: it keeps adding up
    full = book.drain()
    assert list(full) == ["clean.org"] and full["clean.org"].ok == 2
    assert book.drain() == {}


def test_server_errors_timeouts_and_403s_are_reported_at_once() -> None:
    book = FeedbackBook()
    book.record_failure("a.org", 503, 0.1, retry_after=None)
    book.record_failure("b.org", -12, 30.0, retry_after=None)
    book.record_failure("c.org", 403, 0.1, retry_after=None)
    book.record_failure("d.org", 404, 0.1, retry_after=None)  # content, not the host's load
    assert sorted(book.drain(clean_too=False)) == ["a.org", "b.org", "c.org"]


def test_clean_answers_to_a_new_rate_go_out_at_once_for_a_while() -> None:
    # Rank 0 grows a slow start on each clean window: holding them for a second would
    # halve the pace of every ramp.
    book = FeedbackBook()
    book.rate_changed("ramping.org", now=10.0)
    book.record_ok("ramping.org", 0.1)
    book.record_ok("settled.org", 0.1)
    assert list(book.drain(clean_too=False, now=10.25)) == ["ramping.org"]
    book.record_ok("ramping.org", 0.1)
    later = 10.0 + JUDGING_SECONDS + 0.25
    assert book.drain(clean_too=False, now=later) == {}  # settled again: once a second
    assert sorted(book.drain()) == ["ramping.org", "settled.org"]


def test_a_url_forbidden_on_every_try_is_one_repeat_however_often_it_is_retried() -> None:
    # Live, one dead link answered 403 three times counted as two URLs forbidden again, and a
    # 403 CDN was taken for forbidden content before its ramp began.
    book = FeedbackBook()
    for repeats in range(3):  # its first try, its first retry, its second retry
        book.record_failure("cdn.org", 403, 0.1, retry_after=None, repeats=repeats)
    seen = book.drain()["cdn.org"]
    assert (seen.forbidden, seen.forbidden_again, seen.other_errors) == (1, 1, 1)
