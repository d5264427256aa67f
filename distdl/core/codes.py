"""Error codes written to the ``error_code`` column of errors.parquet.

A positive code is the HTTP status the server answered with. A negative code is ours;
free text only ever goes into ``error_msg``. Codes are stable: never renumber one.
"""

from __future__ import annotations

# Planning (the URL never reached the network)
INVALID_URL = -1  # empty, unparsable, no host, bad port
UNSUPPORTED_SCHEME = -2  # anything but http/https (ftp:, file:, javascript:, data:, …)
MISSING_UUID = -3  # the row's uuid is empty or null, so its outcome could not be keyed

# Network (the fetcher maps every aiohttp/OS exception to one of these)
CONNECTION_ERROR = -10  # refused, reset, closed early
DNS_ERROR = -11  # name could not be resolved
TIMEOUT = -12  # connect, read or total timeout
TOO_MANY_REDIRECTS = -13  # more than the allowed redirects, or a loop
PAYLOAD_ERROR = -14  # truncated or malformed body / transfer encoding
SSL_ERROR = -15  # TLS handshake or certificate failure
INVALID_REDIRECT = -16  # redirect to a non-http(s) or malformed location
UNSAFE_REDIRECT = -17  # redirect from a public address to a loopback/private/link-local one

# Content
TOO_LARGE = -20  # body larger than max_image_bytes
UNDECODABLE = -21  # not an image, or an image pillow cannot decode
DECOMPRESSION_BOMB = -22  # more pixels than max_image_pixels, or too big for memory_per_rank
IMAGE_TIMEOUT = -23  # decoding and resizing took longer than image_timeout

# Politeness
ROBOTS_DISALLOWED = -30  # robots.txt disallows the URL for our user agent
OPTED_OUT = -31  # X-Robots-Tag noai / noimageai
HOST_UNREACHABLE = -32  # circuit breaker gave up on the host

INTERNAL_ERROR = -99  # a bug while handling this URL; the rank survives

DESCRIPTIONS: dict[int, str] = {
    INVALID_URL: "invalid URL (empty, unparsable, no host or bad port)",
    UNSUPPORTED_SCHEME: "unsupported URL scheme (only http and https)",
    MISSING_UUID: "empty or null uuid",
    CONNECTION_ERROR: "connection refused, reset or closed",
    DNS_ERROR: "host name could not be resolved",
    TIMEOUT: "connect/read/total timeout",
    TOO_MANY_REDIRECTS: "too many redirects or a redirect loop",
    PAYLOAD_ERROR: "truncated or malformed response body",
    SSL_ERROR: "TLS error",
    INVALID_REDIRECT: "redirect to an invalid or non-http(s) location",
    UNSAFE_REDIRECT: "redirect from a public address to a non-public one, refused",
    TOO_LARGE: "body larger than max_image_bytes",
    UNDECODABLE: "not a decodable image",
    DECOMPRESSION_BOMB: "image has more pixels than allowed (max_image_pixels or memory_per_rank)",
    IMAGE_TIMEOUT: "image processing took longer than image_timeout",
    ROBOTS_DISALLOWED: "disallowed by robots.txt",
    OPTED_OUT: "X-Robots-Tag opt-out (noai/noimageai)",
    HOST_UNREACHABLE: "host declared unreachable by the circuit breaker",
    INTERNAL_ERROR: "internal error while processing this URL",
}

# HTTP statuses worth another try: the server may answer differently later.
RETRYABLE_HTTP = frozenset({408, 420, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
RETRYABLE_INTERNAL = frozenset({CONNECTION_ERROR, DNS_ERROR, TIMEOUT, PAYLOAD_ERROR})
# Statuses worth a few more tries, not max_retries: some CDNs answer 403 to a client that is
# too fast (the rate controller then slows down), but most 403s forbid the image for good,
# and each extra try of those is a wasted request.
FEW_RETRIES = {403: 2}


def is_retryable(code: int) -> bool:
    return code in RETRYABLE_HTTP or code in RETRYABLE_INTERNAL or code in FEW_RETRIES


def describe(code: int) -> str:
    if code > 0:
        return f"HTTP {code}"
    return DESCRIPTIONS.get(code, "unknown")
