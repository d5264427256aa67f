from __future__ import annotations

from distdl.runtime.feedback import FeedbackBook


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
