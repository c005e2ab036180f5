"""
Tests for :mod:`dccrelay.gateway.limiter`: Discord's identify limits.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.gateway.limiter import IDENTIFY_WINDOW, SAFETY_MARGIN, IdentifyLimiter

WINDOW = IDENTIFY_WINDOW + SAFETY_MARGIN


class IdentifyLimiterTests(SynchronousTestCase):
    """
    One IDENTIFY per bucket per 5 s, measured from the sends, within the
    daily budget.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()

    def test_first_is_immediate(self) -> None:
        """
        The first shard of a bucket may identify at once; sending uses one
        session start.
        """
        limiter = IdentifyLimiter(self.clock)
        slot = self.successResultOf(limiter.acquire(0))
        self.assertEqual(limiter.remaining, 1000)
        slot.used()
        self.assertEqual(limiter.remaining, 999)

    def test_window_counts_from_send(self) -> None:
        """
        The next shard of a bucket waits until 5 s after the previous one
        actually sent IDENTIFY, however long that took.
        """
        limiter = IdentifyLimiter(self.clock, max_concurrency=1)
        first = self.successResultOf(limiter.acquire(0))
        second = limiter.acquire(1)
        self.clock.advance(7)  # a slow connection: IDENTIFY goes out late
        self.assertNoResult(second)
        first.used()
        self.clock.advance(WINDOW - 0.01)
        self.assertNoResult(second)
        self.clock.advance(0.01)
        self.successResultOf(second)

    def test_in_order(self) -> None:
        """
        Shards of one bucket get their slots in the order they asked.
        """
        limiter = IdentifyLimiter(self.clock, max_concurrency=1)
        granted: list[int] = []

        def got(slot: Any, shard: int) -> None:
            granted.append(shard)
            slot.used()

        for shard in range(3):
            limiter.acquire(shard).addCallback(got, shard)
        self.assertEqual(granted, [0])
        self.assertEqual(limiter.waiting, 2)
        self.clock.advance(WINDOW)
        self.assertEqual(granted, [0, 1])
        self.clock.advance(WINDOW)
        self.assertEqual(granted, [0, 1, 2])

    def test_released_slot_not_counted(self) -> None:
        """
        A slot given back without sending (the connection failed) lets the
        next shard go at once and uses no session start.
        """
        limiter = IdentifyLimiter(self.clock)
        first = self.successResultOf(limiter.acquire(0))
        second = limiter.acquire(1)
        first.release()
        self.successResultOf(second)
        self.assertEqual(limiter.remaining, 1000)

    def test_buckets_run_in_parallel(self) -> None:
        """
        With max_concurrency 16, shards 0-15 identify at once; shard 16
        shares bucket 0 and waits for shard 0's window.
        """
        limiter = IdentifyLimiter(self.clock, max_concurrency=16)
        results = [limiter.acquire(shard) for shard in range(17)]
        for d in results[:16]:
            self.successResultOf(d).used()
        self.assertNoResult(results[16])
        self.clock.advance(WINDOW)
        self.successResultOf(results[16])

    def test_daily_budget_exhausted(self) -> None:
        """
        With no session starts left, shards wait until Discord's reset.
        """
        limiter = IdentifyLimiter(self.clock, remaining=0, reset_after=3600)
        d = limiter.acquire(0)
        self.clock.advance(3599)
        self.assertNoResult(d)
        self.clock.advance(1)
        self.successResultOf(d)

    def test_cancel_gives_place_up(self) -> None:
        """
        A cancelled wait frees its place for the next shard.
        """
        limiter = IdentifyLimiter(self.clock)
        self.successResultOf(limiter.acquire(0)).used()
        second = limiter.acquire(1)
        third = limiter.acquire(2)
        second.cancel()
        self.failureResultOf(second)
        self.clock.advance(WINDOW)
        self.successResultOf(third)
