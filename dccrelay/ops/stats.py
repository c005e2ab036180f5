"""
Figures the relay keeps for ``GET /metrics`` that no single relay object
holds: plain numbers updated on the data path without locks or allocation,
read (and shaped for Prometheus) only when scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from functools import cache
from itertools import accumulate

#: Upper bounds, in seconds, of the delivery latency buckets: from a
#: connected bot (milliseconds) to one whose host must wake up first (tens of
#: seconds) or that is unreachable for a while.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)


#: Upper bounds, in seconds, of the wake time buckets: how long a dispatch
#: for a sleeping bot took to reach it, from a host that was only idle to one
#: that had to start (seconds to tens of seconds) or never came.
WAKE_BUCKETS = (
    0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
)


class LatencyHistogram:
    """
    How long dispatches waited between arriving from the gateway and being
    written to their bot.

    :ivar counts: observations per bucket of :data:`LATENCY_BUCKETS`, and
        one more for those above the last bound (not cumulative).
    """

    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        """
        Count one dispatch that waited ``seconds``.
        """
        # A clock stepped back must not make a negative wait.
        seconds = max(seconds, 0.0)
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """
        ``(upper bound, observations at or below it)`` per bucket, the last
        ``"+Inf"``: Prometheus' shape.
        """
        return list(zip(_labels(self.bounds), accumulate(self.counts)))


@cache
def _labels(bounds: tuple[float, ...]) -> tuple[str, ...]:
    # every bot's histogram has the same bounds: their text is made once
    return (*map(repr, bounds), "+Inf")
