"""Does a host fail more when it is pushed harder? The evidence, by rate band.

A back end that fails a fixed share of requests (a flaky disk behind a good proxy) fails
that share at every rate; an overloaded one fails more as the rate grows past its knee.
:class:`FailureBands` keeps the share of 5xx/timeouts a host showed in each *rate band*
(rates within a factor ``BAND_RATIO`` of each other) and answers one question: are the
failures seen at the current rate improbably many for the share the host showed at lower
rates? Before any lower rate has been seen, the comparison is with a prior share
(``prior_share`` over ``prior_answers``); a host that fails at its lowest rate as much as
anywhere else never looks loaded. Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# Rates within 25% of each other share a band: close enough to fail alike, far enough
# apart that an overload's knee separates them.
BAND_RATIO = 1.25
# Answers a band remembers: old evidence fades, so a host that was overloaded by someone
# else's traffic earlier can be tried again at that rate.
BAND_MEMORY = 500.0


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), in O(k) steps."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    pmf = (1 - p) ** n
    below = 0.0
    odds = p / (1 - p)
    for i in range(k):
        below += pmf
        pmf *= (n - i) / (i + 1) * odds
    return max(0.0, 1.0 - below)


def band_of(rate: float) -> int:
    return math.floor(math.log(rate) / math.log(BAND_RATIO))


@dataclass
class FailureBands:
    prior_share: float
    prior_answers: float
    # band -> [failures, answers], decayed
    _bands: dict[int, list[float]] = field(default_factory=dict)

    def record(self, rate: float, failures: int, answers: int) -> None:
        if answers <= 0:
            return
        counts = self._bands.setdefault(band_of(rate), [0.0, 0.0])
        keep = max(0.0, 1.0 - answers / BAND_MEMORY)
        counts[0] = counts[0] * keep + failures
        counts[1] = counts[1] * keep + answers

    def share_below(self, rate: float) -> float:
        """The failure share at lower rates, as high as it may plausibly be.

        The lowest band's upper bound (the share plus three standard errors, each band
        seeded with the prior): an upper bound, because a few dozen answers cannot tell 2%
        from 9% and an underestimate would make a host failing at random look loaded; the
        lowest band, because an overload's share grows gradually past the knee and pooled
        lower bands would carry it up with the rate.
        """
        band = band_of(rate)
        lower = [counts for other, counts in self._bands.items() if other < band]
        return min((self._upper(f, n) for f, n in lower), default=self._upper(0.0, 0.0))

    def _upper(self, failures: float, answers: float) -> float:
        failures += self.prior_share * self.prior_answers
        answers += self.prior_answers
        share = failures / answers
        return min(1.0, share + 3 * math.sqrt(share * (1 - share) / answers) + 1 / answers)

    def share(self) -> float:
        """The failure share over every band, the prior included."""
        failures = self.prior_share * self.prior_answers + sum(f for f, _ in self._bands.values())
        answers = self.prior_answers + sum(n for _, n in self._bands.values())
        return failures / answers

    def tail_at(self, rate: float) -> float:
        """How likely the failures recorded at ``rate``'s band are for the lower share."""
        failures, answers = self._bands.get(band_of(rate), [0.0, 0.0])
        if failures < 2:
            return 1.0
        return binomial_tail(round(failures), round(answers), self.share_below(rate))

    def forget_at(self, rate: float) -> None:
        """Halve the evidence at ``rate``'s band: acted on, it must build up again."""
        counts = self._bands.get(band_of(rate))
        if counts is not None:
            counts[0] /= 2
            counts[1] /= 2
