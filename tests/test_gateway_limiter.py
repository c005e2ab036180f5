"""
Tests for :mod:`dccrelay.gateway.limiter`: Discord's identify limits.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.gateway.limiter import IDENTIFY_WINDOW, IdentifyLimiter


class IdentifyLimiterTests(SynchronousTestCase):
    """
    One IDENTIFY per bucket per 5 s, within the daily budget.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()

    def test_first_is_immediate(self) -> None:
        """
        The first shard of a bucket identifies at once.
        """
        limiter = IdentifyLimiter(self.clock)
        self.successResultOf(limiter.acquire(0))
        self.assertEqual(limiter.remaining, 999)

    def test_same_bucket_waits_window(self) -> None:
        """
        With max_concurrency 1, shards identify 5 s apart, in order.
        """
        limiter = IdentifyLimiter(self.clock, max_concurrency=1)
        granted: list[int] = []
        for shard in range(3):
            limiter.acquire(shard).addCallback(lambda _, s=shard: granted.append(s))
        self.assertEqual(granted, [0])
        self.assertEqual(limiter.waiting, 2)
        self.clock.advance(IDENTIFY_WINDOW - 0.01)
        self.assertEqual(granted, [0])
        self.clock.advance(0.01)
        self.assertEqual(granted, [0, 1])
        self.clock.advance(IDENTIFY_WINDOW)
        self.assertEqual(granted, [0, 1, 2])

    def test_buckets_run_in_parallel(self) -> None:
        """
        With max_concurrency 16, shards 0-15 identify at once; shard 16
        shares bucket 0 and waits.
        """
        limiter = IdentifyLimiter(self.clock, max_concurrency=16)
        results = [limiter.acquire(shard) for shard in range(17)]
        for d in results[:16]:
            self.successResultOf(d)
        self.assertNoResult(results[16])
        self.clock.advance(IDENTIFY_WINDOW)
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
        limiter.acquire(0)
        second = limiter.acquire(1)
        third = limiter.acquire(2)
        second.cancel()
        self.failureResultOf(second)
        self.clock.advance(IDENTIFY_WINDOW)
        self.successResultOf(third)
