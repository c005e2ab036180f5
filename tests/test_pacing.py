"""
Tests for :mod:`dccrelay.relay.pacing`.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.relay.pacing import Pacer


class PacerTests(SynchronousTestCase):
    """
    Queued calls run in order, a burst at a time, at most at the pace.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.pacer = Pacer(self.clock, per_second=10, burst=2)
        self.ran: list[int] = []

    def add(self, *numbers: int) -> None:
        for n in numbers:
            self.pacer.add(lambda n=n: self.ran.append(n))  # type: ignore[misc]

    def test_paced(self) -> None:
        """
        Five calls added together: two in the next turn, then two every
        0.2 s.
        """
        self.add(1, 2, 3, 4, 5)
        self.assertEqual(self.ran, [])
        self.clock.advance(0)
        self.assertEqual(self.ran, [1, 2])
        self.assertEqual(self.pacer.pending, 3)
        self.clock.advance(0.19)
        self.assertEqual(self.ran, [1, 2])
        self.clock.advance(0.01)
        self.assertEqual(self.ran, [1, 2, 3, 4])
        self.clock.advance(0.2)
        self.assertEqual(self.ran, [1, 2, 3, 4, 5])

    def test_added_within_the_interval_waits(self) -> None:
        """
        A call added just after a burst waits for the interval to end; one
        added after a quiet spell runs in the next turn.
        """
        self.add(1)
        self.clock.advance(0)
        self.add(2)
        self.clock.advance(0.1)
        self.assertEqual(self.ran, [1])
        self.clock.advance(0.1)
        self.assertEqual(self.ran, [1, 2])
        self.clock.advance(5)
        self.add(3)
        self.clock.advance(0)
        self.assertEqual(self.ran, [1, 2, 3])

    def test_failure_does_not_stop_the_rest(self) -> None:
        """
        A call that raises is logged; the others still run.
        """
        self.pacer.add(lambda: 1 / 0)
        self.add(2)
        self.clock.advance(0)
        self.assertEqual(self.ran, [2])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_stop(self) -> None:
        """
        Stopping drops what waits.
        """
        self.add(1, 2, 3)
        self.clock.advance(0)
        self.pacer.stop()
        self.clock.advance(10)
        self.assertEqual(self.ran, [1, 2])
        self.assertEqual(self.clock.getDelayedCalls(), [])
