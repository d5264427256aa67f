"""robots.txt rules as RFC 9309 reads them, parsed by protego (Scrapy's parser).

What the fetch of ``/robots.txt`` returned decides everything (``distdl.net.robots_fetch``
does the fetching and hands over ``(status, text)``):

* **2xx**: the text is parsed; groups are matched on our product token, the most specific
  group wins, ``*`` otherwise, and within a group the longest matching rule (RFC 9309 2.2).
  An empty body allows everything.
* **3xx** left after the fetcher followed its five redirects: "unavailable" (2.3.1.2).
* **4xx** (401 and 403 included): "unavailable", no restrictions (2.3.1.3). Except 429:
  "slow down" is no licence to crawl everything, so it reads as a server error, as
  Google's crawler does.
* **5xx**, or unreachable (``status`` None: connection error, DNS failure, timeout, or a
  redirect loop): disallow everything (2.3.1.4); the caller may try again later. Any other
  status is treated the same way: when in doubt, do not crawl.

``/robots.txt`` itself is always allowed (RFC 9309 2.4).

``Crawl-delay`` and ``Request-rate`` are not in the RFC but widely honoured; together they
give :meth:`RobotsRules.rate_cap`, a ceiling for the host's request rate. A crawl delay
counts for at most ``MAX_CRAWL_DELAY`` = 30 s: that is the longest delay Apache Nutch and
StormCrawler accept (``fetcher.max.crawl.delay``, 30 s by default). Beyond it they skip
the host by default; StormCrawler with ``fetcher.max.crawl.delay.force`` crawls it at the
30 s pace instead, which is what distdl does: one image every 30 s is already gentle, and
honouring an hour would keep a partition of 10 000 URLs busy for a year. (Heritrix allows
up to 300 s.) A request rate limited to a time of day (``Request-rate: 1/5 0100-0600``) is
applied at all hours, the conservative reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from protego import Protego

TOO_MANY_REQUESTS = 429
MAX_CRAWL_DELAY = 30.0  # seconds; Nutch's and StormCrawler's fetcher.max.crawl.delay

RobotsKind = Literal["parsed", "allow_all", "disallow_all"]


@dataclass(frozen=True)
class RobotsRules:
    """The robots.txt verdict for one host."""

    kind: RobotsKind
    status: int | None = None
    parser: Protego | None = None
    # False when no line of the file can forbid anything (only Allow, Crawl-delay, ...):
    # every URL is allowed without asking the parser, which splits and quotes each URL (on
    # a fast host, a visible share of a rank's CPU per image: benchmarks/README.md).
    restricts: bool = True

    @classmethod
    def from_response(cls, status: int | None, text: str | None) -> RobotsRules:
        if status is not None and 200 <= status < 300:
            if not text or not text.strip():
                return cls("allow_all", status)
            return cls("parsed", status, Protego.parse(text), restricts=may_disallow(text))
        if status is not None and 300 <= status < 500 and status != TOO_MANY_REQUESTS:
            return cls("allow_all", status)
        return cls("disallow_all", status)

    @classmethod
    def allow_everything(cls) -> RobotsRules:
        """For runs told not to read robots.txt."""
        return cls("allow_all")

    def allowed(self, url: str, user_agent: str) -> bool:
        if self.kind == "allow_all" or not self.restricts or _is_robots_txt(url):
            return True
        if self.kind == "disallow_all" or self.parser is None:
            return False
        return self.parser.can_fetch(url, user_agent)

    def crawl_delay(self, user_agent: str) -> float | None:
        """The ``Crawl-delay`` of our group in seconds, as written (not capped)."""
        if self.parser is None:
            return None
        return self.parser.crawl_delay(user_agent)

    def request_rate(self, user_agent: str) -> float | None:
        """The ``Request-rate`` of our group in requests per second."""
        if self.parser is None:
            return None
        declared = self.parser.request_rate(user_agent)
        if declared is None:
            return None
        return declared.requests / declared.seconds

    def rate_cap(self, user_agent: str) -> float | None:
        """The highest request rate the site asks for (req/s), or None if it asks nothing.

        The lower of ``1 / crawl_delay`` (delay capped at ``MAX_CRAWL_DELAY``) and
        ``request_rate``. A crawl delay of 0 asks for nothing.
        """
        caps: list[float] = []
        delay = self.crawl_delay(user_agent)
        if delay is not None and delay > 0:
            caps.append(1.0 / min(delay, MAX_CRAWL_DELAY))
        rate = self.request_rate(user_agent)
        if rate is not None:
            caps.append(rate)
        return min(caps) if caps else None


# Lines that cannot forbid a URL, whatever the group they are in.
_CANNOT_FORBID = frozenset(
    {"user-agent", "allow", "crawl-delay", "request-rate", "sitemap", "host"}
)


def may_disallow(text: str) -> bool:
    """Whether a line of ``text`` might forbid some URL: anything but comments, the
    fields above and an empty ``Disallow:`` (which allows all). Any line it does not know
    (a misspelt ``Dissallow``, which protego honours) counts as one that might."""
    for line in text.splitlines():
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        name, colon, value = content.partition(":")
        name = name.strip().lower()
        if colon and (name in _CANNOT_FORBID or (name == "disallow" and not value.strip())):
            continue
        return True
    return False


def _is_robots_txt(url: str) -> bool:
    if "/robots.txt" not in url:  # asked for every URL: the split costs more than the rest
        return False
    try:
        return urlsplit(url).path == "/robots.txt"
    except ValueError:
        return False
