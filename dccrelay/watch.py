"""
Which matched dispatches have reached the bot, for what waits on them: the
typing indicator, deferred interactions and the wake-time figures.

A dispatch is watched from the moment it matched until its delivery
channel reports that the bot took it
(:meth:`dccrelay.delivery.IChannelOwner.channel_delivered`:
written, acknowledged, answered 2xx).  Dispatches are recognised by their
bytes, which are unique (each holds its gateway sequence number), so a
dispatch read back from the store, or handed from one channel to the next
when the bot's dst changes, is still recognised.  At most :data:`LIMIT` are
watched; past it the oldest are forgotten, unfinished (a bot that sleeps
that long had them dropped from its queue anyway, or will get them long
after anyone waited).
"""

from __future__ import annotations

from typing import Callable, Sequence

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

#: dispatches watched at most, per bot
LIMIT = 1000


class Watch:
    """
    One matched dispatch on its way to the bot.

    :ivar arrived_at: when it matched.
    :ivar asleep: whether the bot was not connected then.
    :ivar done: whether the bot has it.
    :ivar delivered_at: when the bot took it, once it did.
    """

    __slots__ = ("arrived_at", "asleep", "done", "delivered_at", "_callbacks")

    def __init__(self, arrived_at: float, asleep: bool) -> None:
        self.arrived_at = arrived_at
        self.asleep = asleep
        self.done = False
        self.delivered_at: float | None = None
        self._callbacks: list[Callable[[Watch], object]] = []

    def is_done(self) -> bool:
        """
        Whether the bot has it (for :class:`dccrelay.wake.TypingWhileWaking`).
        """
        return self.done

    def when_done(self, callback: Callable[[Watch], object]) -> None:
        """
        Call ``callback(watch)`` once the bot has it (never, if that is not
        seen).
        """
        self._callbacks.append(callback)


class DeliveryWatches:
    """
    The watched dispatches of one bot.
    """

    log = Logger()

    def __init__(self, clock: IReactorTime, limit: int = LIMIT) -> None:
        self._clock = clock
        self._limit = limit
        self._watched: dict[bytes, Watch] = {}

    def __len__(self) -> int:
        return len(self._watched)

    def watch(self, payload: bytes, asleep: bool) -> Watch:
        """
        Watch a dispatch that just matched.
        """
        watch = self._watched.get(payload)
        if watch is not None:
            return watch
        watch = self._watched[payload] = Watch(self._clock.seconds(), asleep)
        if len(self._watched) > self._limit:
            del self._watched[next(iter(self._watched))]
        return watch

    def delivered(self, payloads: Sequence[bytes]) -> None:
        """
        The bot took ``payloads`` (see
        :meth:`~dccrelay.delivery.IChannelOwner.channel_delivered`).
        """
        if not self._watched:
            return
        now = None
        for payload in payloads:
            watch = self._watched.pop(payload, None)
            if watch is None:
                continue
            if now is None:
                now = self._clock.seconds()
            watch.done = True
            watch.delivered_at = now
            callbacks, watch._callbacks = watch._callbacks, []
            for callback in callbacks:
                try:
                    callback(watch)
                except Exception:
                    self.log.failure("A delivery watch's callback failed")

    def clear(self) -> None:
        """
        Forget every watched dispatch (the relay stops).
        """
        self._watched.clear()
