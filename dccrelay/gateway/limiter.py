"""
Discord's identify limits for one bot token.

Discord lets a bot send ``max_concurrency`` IDENTIFYs per 5 seconds, one per
bucket (``shard_id % max_concurrency``), and a daily budget of session starts
(``remaining``, refilled after ``reset_after``).  Going over gets op 9 or,
for the daily budget, a reset token, so shards wait here instead.
"""

from __future__ import annotations

from collections import deque
from typing import Deque

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime

IDENTIFY_WINDOW = 5.0


class _Bucket:
    __slots__ = ("next_free", "waiters", "timer")

    def __init__(self) -> None:
        self.next_free = 0.0
        self.waiters: Deque[Deferred[None]] = deque()
        self.timer: IDelayedCall | None = None


class IdentifyLimiter:
    """
    Hands out identify slots for one bot, in the order they were asked for.

    :param clock: where time comes from.
    """

    def __init__(
        self,
        clock: IReactorTime,
        max_concurrency: int = 1,
        remaining: int = 1000,
        reset_after: float = 0.0,
    ) -> None:
        self._clock = clock
        self._buckets: dict[int, _Bucket] = {}
        self.max_concurrency = max_concurrency
        self.remaining = remaining
        self._reset_at = clock.seconds() + reset_after

    def update(self, max_concurrency: int, remaining: int, reset_after: float) -> None:
        """
        Take fresh figures from ``GET /gateway/bot``.
        """
        self.max_concurrency = max(1, max_concurrency)
        self.remaining = remaining
        self._reset_at = self._clock.seconds() + reset_after

    @property
    def waiting(self) -> int:
        """
        How many shards are waiting for a slot.
        """
        return sum(len(b.waiters) for b in self._buckets.values())

    def acquire(self, shard_id: int) -> Deferred[None]:
        """
        :return: a Deferred that fires when this shard may IDENTIFY.
            Cancelling it gives the place up.
        """
        bucket = self._buckets.setdefault(
            shard_id % self.max_concurrency, _Bucket()
        )
        if not bucket.waiters and self._delay(bucket) <= 0:
            self._grant(bucket)
            return succeed(None)

        def cancel(d: Deferred[None]) -> None:
            bucket.waiters.remove(d)

        waiter: Deferred[None] = Deferred(cancel)
        bucket.waiters.append(waiter)
        self._schedule(bucket)
        return waiter

    def _delay(self, bucket: _Bucket) -> float:
        now = self._clock.seconds()
        if self.remaining <= 0:
            if now < self._reset_at:
                return self._reset_at - now
            # The budget is back; Discord's next answer will correct it.
            self.remaining = 1
        return bucket.next_free - now

    def _grant(self, bucket: _Bucket) -> None:
        bucket.next_free = self._clock.seconds() + IDENTIFY_WINDOW
        self.remaining -= 1

    def _schedule(self, bucket: _Bucket) -> None:
        if bucket.timer is not None and bucket.timer.active():
            return
        bucket.timer = self._clock.callLater(
            max(0.0, self._delay(bucket)), self._wake, bucket
        )

    def _wake(self, bucket: _Bucket) -> None:
        bucket.timer = None
        if bucket.waiters and self._delay(bucket) <= 0:
            self._grant(bucket)
            bucket.waiters.popleft().callback(None)
        if bucket.waiters:
            self._schedule(bucket)

    def stop(self) -> None:
        """
        Cancel timers; waiting shards are expected to have cancelled already.
        """
        for bucket in self._buckets.values():
            if bucket.timer is not None and bucket.timer.active():
                bucket.timer.cancel()
            bucket.timer = None
