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


class WindowTests(SynchronousTestCase):
    """
    With a window, no more calls start while that many started ones are
    still busy; one that stays busy past ``hold`` stops counting.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.pacer = Pacer(self.clock, per_second=10, burst=3, window=2, hold=5.0)
        self.ran: list[int] = []
        self.busy: set[int] = set()

    def add(self, *numbers: int) -> None:
        def call(n: int) -> None:
            self.ran.append(n)
            self.busy.add(n)

        for n in numbers:
            self.pacer.add(lambda n=n: call(n), lambda n=n: n in self.busy)  # type: ignore[misc]

    def test_full_window_waits(self) -> None:
        """
        Two start (the window, not the burst of three); the others wait,
        turn after turn, until a started one is done; then one more.
        """
        self.add(1, 2, 3, 4)
        self.clock.advance(0)
        self.assertEqual(self.ran, [1, 2])
        self.assertEqual(self.pacer.working, 2)
        self.clock.advance(0.3)
        self.clock.advance(0.3)
        self.assertEqual(self.ran, [1, 2])
        self.busy.discard(1)
        self.clock.advance(0.3)
        self.assertEqual(self.ran, [1, 2, 3])
        self.busy.clear()
        self.clock.advance(0.3)
        self.assertEqual(self.ran, [1, 2, 3, 4])
        self.assertEqual(self.pacer.pending, 0)

    def test_not_busy_at_once(self) -> None:
        """
        A call that is done as soon as it ran takes no place in the window:
        two start every turn (no more than the window in one turn).
        """
        for n in (1, 2, 3, 4, 5):
            self.pacer.add(lambda n=n: self.ran.append(n), lambda: False)  # type: ignore[misc]
        self.clock.advance(0)
        self.assertEqual(self.ran, [1, 2])
        self.assertEqual(self.pacer.working, 0)
        self.clock.advance(0.3)
        self.assertEqual(self.ran, [1, 2, 3, 4])
        self.clock.advance(0.3)
        self.assertEqual(self.ran, [1, 2, 3, 4, 5])

    def test_hold(self) -> None:
        """
        Calls busy for longer than ``hold`` give their places back: a hung
        one does not hold the queue.
        """
        self.add(1, 2, 3)
        self.clock.advance(0)
        self.assertEqual(self.ran, [1, 2])
        self.clock.pump([0.3] * 16)
        self.assertEqual(self.ran, [1, 2])
        self.clock.advance(0.3)
        self.assertEqual(self.ran, [1, 2, 3])

    def test_failed_call_takes_no_place(self) -> None:
        """
        A call that raised is not waited for.
        """
        self.pacer.add(lambda: 1 / 0, lambda: True)
        self.add(2, 3)
        self.clock.advance(0)
        self.assertEqual(self.ran, [2])
        self.clock.advance(0.3)
        self.assertEqual(self.ran, [2, 3])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_stop(self) -> None:
        """
        Stopping forgets the busy ones too.
        """
        self.add(1, 2)
        self.clock.advance(0)
        self.pacer.stop()
        self.assertEqual(self.pacer.working, 0)
