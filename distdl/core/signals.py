"""What one answer says about the *rate* we send at: the signals the throttle reacts to.

Servers say "too fast" in several dialects, and say other things that only look alike:

* ``429 Too Many Requests`` is always about the rate; so are its cousins ``420 Enhance Your
  Calm`` (Twitter's old API, GBIF's own API) and ``503 SlowDown`` from S3-style object stores
  (iNaturalist's open-data bucket), which name the reason in their XML error body.
* Any other 5xx may or may not be: many back ends fail a fixed share of requests whatever
  the rate (a flaky disk behind a good proxy), others fail more as they are pushed. Only the
  throttle, which sees many answers at known rates, can tell the two apart.
* Timeouts are like 5xx: a queueing server, or one stray slow image.
* A sudden burst of 403 is how some CDNs throttle.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from enum import Enum

from distdl.core import codes


class Signal(Enum):
    OK = "ok"
    RATE_LIMITED = "rate_limited"  # 429, 420, 503 SlowDown: slow down, no doubt about it
    SERVER_ERROR = "server_error"  # other 5xx: load, or a fault whatever the rate
    TIMEOUT = "timeout"
    FORBIDDEN = "forbidden"  # 403: a refusal, or a CDN's way of throttling when it bursts
    OTHER = "other"  # says nothing about the rate (404, bad image, TLS error, …)


# The S3 error code an object store puts in a 503's XML body when a client is too fast.
S3_SLOW_DOWN = "SlowDown"
_RATE_STATUSES = frozenset({420, 429})


def answer_signal(error_code: int, error_msg: str = "") -> Signal:
    """The signal of one finished request (``error_code`` as in :mod:`distdl.core.codes`).

    ``error_msg`` is the fetcher's message; for a 503 it carries the S3 error code when the
    body named one, which is how a ``SlowDown`` is told from an ordinary 503.
    """
    if error_code == 0:
        return Signal.OK
    if error_code in _RATE_STATUSES:
        return Signal.RATE_LIMITED
    if error_code == 503 and S3_SLOW_DOWN in error_msg:
        return Signal.RATE_LIMITED
    if 500 <= error_code < 600:
        return Signal.SERVER_ERROR
    if error_code == codes.TIMEOUT:
        return Signal.TIMEOUT
    if error_code == 403:
        return Signal.FORBIDDEN
    return Signal.OTHER
