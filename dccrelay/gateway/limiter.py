"""
Discord's identify limits for one bot token.

Discord lets a bot send ``max_concurrency`` IDENTIFYs per 5 seconds, one per
bucket (``shard_id % max_concurrency``), and a daily budget of session starts
(``remaining``, refilled after ``reset_after``).  Going over gets op 9 or,
for the daily budget, a reset token, so shards wait here instead.

A relay whose shards all resume stored sessions need not ask Discord for
these figures before it starts: given ``ask``, the limiter grants nothing
until :meth:`IdentifyLimiter.update` brings them, and calls ``ask`` when the
first shard wants to IDENTIFY.

A shard holds its bucket's slot from the grant until it has actually sent
IDENTIFY (or given up), and the bucket's next grant comes 5 s after that
send: the window is measured where Discord measures it, so a slow
connection cannot bring two IDENTIFYs closer than Discord allows.
"""

from __future__ import annotations

from typing import Callable, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime

IDENTIFY_WINDOW = 5.0
# Sends on two connections reach Discord with different delays: keep a
# little more than the documented window between them.
SAFETY_MARGIN = 0.25


class SharedIdentifySlots(Protocol):
    """
    Identify slots shared with other relay nodes that may run the same bot
    token (see :mod:`dccrelay.gateway.shared_identify`).
    """

    def acquire(self, bucket: int) -> Deferred[float]:
        """Take the bucket's slot: fires with 0, or with seconds to wait."""

    def finish(self, bucket: int, sent: bool) -> None:
        """Give the slot back, saying whether IDENTIFY went out."""


class IdentifySlot:
    """
    Permission to send one IDENTIFY; :meth:`used` or :meth:`release` it.
    """

    __slots__ = ("_limiter", "_bucket", "_done")

    def __init__(self, limiter: IdentifyLimiter, bucket: _Bucket) -> None:
        self._limiter = limiter
        self._bucket = bucket
        self._done = False

    def used(self) -> None:
        """
        IDENTIFY was sent now.
        """
        if not self._done:
            self._done = True
            self._limiter._finished(self._bucket, sent=True)

    def release(self) -> None:
        """
        No IDENTIFY was sent (the connection failed or the shard stopped).
        """
        if not self._done:
            self._done = True
            self._limiter._finished(self._bucket, sent=False)


class _Bucket:
    __slots__ = ("number", "next_free", "waiters", "timer", "held")

    def __init__(self, number: int) -> None:
        self.number = number
        self.next_free = 0.0
        # a list: a bot's shards in one bucket are few
        self.waiters: list[Deferred[IdentifySlot]] = []
        self.timer: IDelayedCall | None = None
        self.held = False


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
        shared: SharedIdentifySlots | None = None,
        ask: Callable[[], object] | None = None,
    ) -> None:
        self._clock = clock
        self._shared = shared
        self._buckets: dict[int, _Bucket] = {}
        self.max_concurrency = max(1, max_concurrency)
        self.remaining = remaining
        self._reset_at = clock.seconds() + reset_after
        #: with ``ask``: the figures are unknown, and these shards wait for them
        self._ask = ask
        self._unplaced: list[tuple[int, Deferred[IdentifySlot]]] | None = (
            [] if ask is not None else None
        )

    @property
    def known(self) -> bool:
        """
        Whether the figures from ``GET /gateway/bot`` are in.
        """
        return self._unplaced is None

    def update(self, max_concurrency: int, remaining: int, reset_after: float) -> None:
        """
        Take fresh figures from ``GET /gateway/bot``.
        """
        self.max_concurrency = max(1, max_concurrency)
        self.remaining = remaining
        self._reset_at = self._clock.seconds() + reset_after
        unplaced, self._unplaced = self._unplaced, None
        for shard_id, waiter in unplaced or ():
            self._place(shard_id, waiter)

    @property
    def waiting(self) -> int:
        """
        How many shards are waiting for a slot.
        """
        unplaced = len(self._unplaced) if self._unplaced is not None else 0
        return unplaced + sum(len(b.waiters) for b in self._buckets.values())

    def acquire(self, shard_id: int) -> Deferred[IdentifySlot]:
        """
        :return: a Deferred that fires with a slot when this shard may
            IDENTIFY.  Cancelling it gives the place up.
        """
        waiter: Deferred[IdentifySlot] = Deferred(self._cancel)
        if self._unplaced is None:
            self._place(shard_id, waiter)
            return waiter
        self._unplaced.append((shard_id, waiter))
        ask, self._ask = self._ask, None
        if ask is not None:
            ask()
        return waiter

    def _place(self, shard_id: int, waiter: Deferred[IdentifySlot]) -> None:
        number = shard_id % self.max_concurrency
        bucket = self._buckets.get(number)
        if bucket is None:
            bucket = self._buckets[number] = _Bucket(number)
        bucket.waiters.append(waiter)
        self._serve(bucket)

    def _cancel(self, waiter: Deferred[IdentifySlot]) -> None:
        if self._unplaced is not None:
            for entry in self._unplaced:
                if entry[1] is waiter:
                    self._unplaced.remove(entry)
                    return
        for bucket in self._buckets.values():
            if waiter in bucket.waiters:
                bucket.waiters.remove(waiter)
                return

    def _delay(self, bucket: _Bucket) -> float:
        now = self._clock.seconds()
        if self.remaining <= 0:
            if now < self._reset_at:
                return self._reset_at - now
            # The budget is back; Discord's next answer will correct it.
            self.remaining = 1
        return bucket.next_free - now

    def _serve(self, bucket: _Bucket) -> None:
        if bucket.held or not bucket.waiters:
            return
        delay = self._delay(bucket)
        if delay > 0:
            self._wait(bucket, delay)
            return
        bucket.held = True
        if self._shared is None:
            self._grant(bucket)
            return
        # Other nodes may run this token too: the database has the last word.
        self._shared.acquire(bucket.number).addCallbacks(
            self._shared_answer, self._shared_failed, callbackArgs=(bucket,),
            errbackArgs=(bucket,),
        )

    def _grant(self, bucket: _Bucket) -> None:
        if bucket.waiters:
            bucket.waiters.pop(0).callback(IdentifySlot(self, bucket))
        else:
            # The waiter gave up while the database was asked.
            self._finished(bucket, sent=False)

    def _shared_answer(self, wait: float, bucket: _Bucket) -> None:
        if wait <= 0:
            self._grant(bucket)
            return
        bucket.held = False
        self._wait(bucket, wait)

    def _shared_failed(self, failure: object, bucket: _Bucket) -> None:
        # The database is unreachable: try again shortly rather than risk
        # going over Discord's limit.
        bucket.held = False
        self._wait(bucket, 1.0)

    def _wait(self, bucket: _Bucket, delay: float) -> None:
        if bucket.timer is None or not bucket.timer.active():
            bucket.timer = self._clock.callLater(delay, self._wake, bucket)

    def _wake(self, bucket: _Bucket) -> None:
        bucket.timer = None
        self._serve(bucket)

    def _finished(self, bucket: _Bucket, sent: bool) -> None:
        bucket.held = False
        if self._shared is not None:
            self._shared.finish(bucket.number, sent)
        if sent:
            bucket.next_free = self._clock.seconds() + IDENTIFY_WINDOW + SAFETY_MARGIN
            self.remaining -= 1
        self._serve(bucket)

    def stop(self) -> None:
        """
        Cancel timers; waiting shards are expected to have cancelled already.
        """
        for bucket in self._buckets.values():
            if bucket.timer is not None and bucket.timer.active():
                bucket.timer.cancel()
            bucket.timer = None
