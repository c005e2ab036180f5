"""
Tests for :mod:`dccrelay.ops.stats` and the delivery latency timestamps the
websocket backlog keeps (:mod:`dccrelay.delivery.queue`).
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.delivery.queue import Backlog
from dccrelay.ops.stats import LatencyHistogram


class LatencyHistogramTests(SynchronousTestCase):
    """
    A histogram that costs a bisect and three additions per observation.
    """

    def test_buckets(self) -> None:
        """
        Each observation lands in the first bucket whose bound it does not
        exceed; cumulative() gives Prometheus' running totals.
        """
        histogram = LatencyHistogram((0.1, 1.0))
        for seconds in (0.05, 0.1, 0.5, 2.0, -1.0):
            histogram.observe(seconds)
        self.assertEqual(histogram.counts, [3, 1, 1])
        self.assertEqual(histogram.cumulative(), [("0.1", 3), ("1.0", 4), ("+Inf", 5)])
        self.assertEqual((histogram.count, histogram.sum), (5, 2.65))


class BacklogTimingTests(SynchronousTestCase):
    """
    With a clock, the backlog reports how long each item it hands out
    waited; dropped items are not reported and do not shift the times.
    """

    def test_waits(self) -> None:
        """
        popleft() reports the time since that item's append().
        """
        clock = MemoryReactorClock()
        waits: list[float] = []
        backlog: Backlog[str] = Backlog(2, clock=clock.seconds, on_taken=waits.append)
        backlog.append("a")
        clock.advance(1)
        backlog.append("b")
        clock.advance(1)
        # "a" is pushed out: "b" and "c" remain, with their own times.
        backlog.append("c")
        clock.advance(3)
        self.assertEqual([backlog.popleft(), backlog.popleft()], ["b", "c"])
        self.assertEqual(waits, [4.0, 3.0])
        self.assertEqual(backlog.dropped, 1)

    def test_without_clock(self) -> None:
        """
        Without ``on_taken`` nothing is timed.
        """
        backlog: Backlog[str] = Backlog(2, ["x"])
        self.assertEqual(backlog.popleft(), "x")
