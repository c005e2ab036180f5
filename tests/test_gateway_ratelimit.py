"""
Tests for :mod:`dccrelay.gateway.ratelimit`.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.gateway.ratelimit import RESERVED_FOR_HEARTBEATS, CommandLimiter


class CommandLimiterTests(SynchronousTestCase):
    """
    No more than 120 payloads in any 60 s, in order.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.sent: list[tuple[float, object]] = []
        self.limiter = CommandLimiter(
            self.clock, lambda p: self.sent.append((self.clock.seconds(), p))
        )

    def test_never_over_limit(self) -> None:
        """
        Over five minutes of steady demand, no 60 s window holds more than
        120 payloads, heartbeats included.
        """
        for second in range(300):
            for _ in range(5):
                self.limiter.send({"n": second})
            if second % 41 == 0:
                self.limiter.send_now({"op": 1})
            self.clock.advance(1)
        times = [t for t, _ in self.sent]
        for i, start in enumerate(times):
            in_window = [t for t in times[i:] if t < start + 60]
            self.assertLessEqual(len(in_window), 120)

    def test_order_kept(self) -> None:
        """
        Commands go out in the order they were given.
        """
        for n in range(300):
            self.limiter.send({"n": n})
        self.clock.pump([60.0] * 4)
        self.assertEqual([p["n"] for _, p in self.sent], list(range(300)))  # type: ignore[index]

    def test_reserve_for_heartbeats(self) -> None:
        """
        Commands leave room for heartbeats in every window.
        """
        for n in range(200):
            self.limiter.send({"n": n})
        self.assertEqual(len(self.sent), 120 - RESERVED_FOR_HEARTBEATS)
        self.limiter.send_now({"op": 1})
        self.assertEqual(len(self.sent), 121 - RESERVED_FOR_HEARTBEATS)

    def test_reset(self) -> None:
        """
        A new connection starts with an empty window and no queue.
        """
        for n in range(200):
            self.limiter.send({"n": n})
        self.limiter.reset()
        self.assertEqual(self.limiter.queued, 0)
        self.clock.advance(120)
        self.assertEqual(len(self.sent), 120 - RESERVED_FOR_HEARTBEATS)
