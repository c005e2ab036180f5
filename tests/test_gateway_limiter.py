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


class UnknownFiguresTests(SynchronousTestCase):
    """
    A limiter made with ``ask`` grants nothing until Discord's figures are
    in, and asks for them when the first shard wants to IDENTIFY.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.asked = 0
        self.limiter = IdentifyLimiter(self.clock, ask=self.ask)

    def ask(self) -> None:
        self.asked += 1

    def test_nothing_asked_until_needed(self) -> None:
        """
        A relay whose shards all resume never asks.
        """
        self.clock.advance(60)
        self.assertEqual(self.asked, 0)
        self.assertFalse(self.limiter.known)

    def test_waits_for_figures(self) -> None:
        """
        Shards wait, asking once; the figures place them in their own
        buckets, so that with max_concurrency 2 two go at once.
        """
        first, second, third = (self.limiter.acquire(n) for n in range(3))
        self.assertEqual(self.asked, 1)
        self.assertEqual(self.limiter.waiting, 3)
        self.clock.advance(10)
        self.assertNoResult(first)
        self.limiter.update(max_concurrency=2, remaining=10, reset_after=0)
        self.assertTrue(self.limiter.known)
        self.successResultOf(first).used()
        self.successResultOf(second).used()
        self.assertNoResult(third)
        self.assertEqual(self.limiter.remaining, 8)
        self.clock.advance(WINDOW)
        self.successResultOf(third)

    def test_no_budget_in_figures(self) -> None:
        """
        Figures with no session start left keep the shards waiting.
        """
        waiting = self.limiter.acquire(0)
        self.limiter.update(max_concurrency=1, remaining=0, reset_after=600)
        self.assertNoResult(waiting)
        self.clock.advance(600)
        self.successResultOf(waiting)

    def test_cancel_before_figures(self) -> None:
        """
        A shard that stops waiting before the figures came gives its place up.
        """
        first, second = self.limiter.acquire(0), self.limiter.acquire(1)
        first.cancel()
        self.failureResultOf(first)
        self.assertEqual(self.limiter.waiting, 1)
        self.limiter.update(max_concurrency=1, remaining=10, reset_after=0)
        self.successResultOf(second)


class FakeSharedSlots:
    """
    The database's side of shared identify slots, as another node sees it.
    """

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.asked: list[int] = []
        self.finished: list[tuple[int, bool]] = []

    def acquire(self, bucket: int) -> Any:
        from twisted.internet.defer import succeed

        self.asked.append(bucket)
        return succeed(self.waits.pop(0) if self.waits else 0.0)

    def finish(self, bucket: int, sent: bool) -> None:
        self.finished.append((bucket, sent))


class SharedSlotsTests(SynchronousTestCase):
    """
    With other nodes running the same token, the database decides too.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.shared = FakeSharedSlots()
        self.limiter = IdentifyLimiter(self.clock, shared=self.shared)

    def test_granted_when_database_agrees(self) -> None:
        """
        A free slot locally and in the database is granted; sending or
        giving it back tells the database.
        """
        slot = self.successResultOf(self.limiter.acquire(0))
        slot.used()
        self.assertEqual(self.shared.finished, [(0, True)])

    def test_waits_for_other_node(self) -> None:
        """
        When another node holds the slot, the shard waits as long as the
        database says, then asks again.
        """
        self.shared.waits = [3.0]
        d = self.limiter.acquire(0)
        self.assertNoResult(d)
        self.clock.advance(2.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.successResultOf(d).release()
        self.assertEqual(self.shared.asked, [0, 0])
        self.assertEqual(self.shared.finished, [(0, False)])

    def test_database_unreachable(self) -> None:
        """
        If the database cannot be asked, the shard waits and asks again
        rather than identifying blindly.
        """
        from twisted.internet.defer import fail

        calls = []

        def broken(bucket: int) -> Any:
            calls.append(bucket)
            if len(calls) == 1:
                return fail(ConnectionError("down"))
            return FakeSharedSlots.acquire(self.shared, bucket)

        self.shared.acquire = broken  # type: ignore[method-assign]
        d = self.limiter.acquire(0)
        self.assertNoResult(d)
        self.clock.advance(1.0)
        self.successResultOf(d)
