"""Parse an HTTP ``Retry-After`` header (RFC 9110 §10.2.3) into a delay in seconds.

The header is either delay-seconds (``120``) or an HTTP-date in one of the three forms
HTTP/1.1 accepts: IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``), the obsolete RFC 850 form
(``Sunday, 06-Nov-94 08:49:37 GMT``) and asctime (``Sun Nov  6 08:49:37 1994``).

Wall-clock time comes in as ``now_epoch`` (Unix seconds) so this stays pure and testable.
"""

from __future__ import annotations

from datetime import timezone
from email.utils import parsedate_to_datetime


def parse_retry_after(value: str | None, now_epoch: float, cap: float) -> float | None:
    """Seconds to wait, in ``[0, cap]``; ``None`` when the header is missing or unparsable.

    A date in the past or a negative number means "now" (0.0). The cap keeps a hostile or
    broken server from parking us for days; callers fall back to their own backoff on None.
    """
    if cap < 0:
        raise ValueError(f"cap must be >= 0, got {cap}")
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    seconds = _delay_seconds(text)
    if seconds is None:
        seconds = _seconds_until_date(text, now_epoch)
    if seconds is None:
        return None
    return float(min(max(seconds, 0.0), cap))


def _delay_seconds(text: str) -> float | None:
    # Checked before dates because parsedate_to_datetime raises on a bare integer. isascii()
    # because str.isdigit() also accepts characters such as "²" that int() rejects.
    digits = text[1:] if text.startswith("-") else text
    if not (digits.isascii() and digits.isdigit()):
        return None
    if text.startswith("-"):
        return 0.0
    # Compare as int first: a 400-digit value would overflow float().
    return float(min(int(digits), 10**18))


def _seconds_until_date(text: str, now_epoch: float) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError, IndexError):
        # Python 3.10 raises TypeError on garbage, 3.11+ ValueError; out-of-range fields
        # raise ValueError or OverflowError.
        return None
    if when.tzinfo is None:
        # asctime (and a "-0000" zone) carry no offset; HTTP dates are always UTC.
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp() - now_epoch
