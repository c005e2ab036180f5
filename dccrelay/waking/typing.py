"""
``typingWhileWaking``: while a person's message waits for a sleeping bot,
show them the bot "typing" in that channel, so they see it is coming.

When a matching MESSAGE_CREATE has not reached the bot :data:`GRACE`
seconds after it came (an awake bot gets it well within that), the relay
calls Discord's ``POST /channels/{id}/typing`` for the bot, again every
:data:`INTERVAL` seconds (Discord shows the indicator for about 10 s), until
the message has reached the bot or :data:`LIMIT` seconds have passed since
the latest waiting message in that channel.  One indicator per channel, however
many messages wait there.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from dccrelay.delivery.timers import Deadline
from dccrelay.gateway.rest import DiscordHTTPError

#: seconds a message may take to reach the bot before it counts as asleep:
#: an awake bot takes milliseconds, and the person should see typing within
#: a second of their message
GRACE = 0.5

#: seconds between typing calls (the indicator lasts about 10 s)
INTERVAL = 8.0

#: seconds after the latest waiting message that typing stops anyway
LIMIT = 30.0


class _ChannelTyping:
    __slots__ = ("timer", "delivered", "until")

    def __init__(self, timer: Deadline, delivered: Callable[[], bool], until: float) -> None:
        self.timer = timer
        self.delivered = delivered
        self.until = until


class TypingWhileWaking:
    """
    Typing indicators for one bot.

    :param clock: for the timers.
    :param post: triggers typing in a channel (by id); may fail with
        :class:`DiscordHTTPError`.
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        post: Callable[[str], Deferred[None]],
        *,
        alias: str = "",
        grace: float = GRACE,
        interval: float = INTERVAL,
        limit: float = LIMIT,
    ) -> None:
        self._clock = clock
        self._post = post
        self._alias = alias
        self._grace = grace
        self._interval = interval
        self._limit = limit
        self._channels: dict[str, _ChannelTyping] = {}
        #: typing calls made
        self.calls = 0

    @property
    def channels(self) -> list[str]:
        """
        The channels with a message waiting for the bot.
        """
        return list(self._channels)

    def waiting(self, channel_id: str, delivered: Callable[[], bool]) -> None:
        """
        A message in ``channel_id`` is on its way to the bot.

        :param delivered: tells whether it has reached the bot (the newest
            message's test covers the older ones: delivery is in order).
        """
        until = self._clock.seconds() + self._limit
        typing = self._channels.get(channel_id)
        if typing is not None:
            earlier_delivered = typing.delivered()
            typing.delivered = delivered
            typing.until = until
            if earlier_delivered:
                # The indicator had nothing left to show for: this message
                # starts it again after the grace period, not at the next
                # beat of the old one.
                typing.timer.start(self._grace)
            return
        timer = Deadline(self._clock, lambda: self._tick(channel_id))
        self._channels[channel_id] = _ChannelTyping(timer, delivered, until)
        timer.start(self._grace)

    def stop(self) -> None:
        """
        Stop every indicator (the relay stops or is disabled).
        """
        channels, self._channels = self._channels, {}
        for typing in channels.values():
            typing.timer.cancel()

    def _tick(self, channel_id: str) -> None:
        typing = self._channels.get(channel_id)
        if typing is None:
            return
        if self._clock.seconds() >= typing.until or typing.delivered():
            del self._channels[channel_id]
            return
        typing.timer.start(self._interval)
        self.calls += 1
        try:
            d = self._post(channel_id)
        except Exception:
            self.log.failure("{alias}: could not show typing", alias=self._alias)
            return
        d.addErrback(self._failed, channel_id)

    def _failed(self, failure: Failure, channel_id: str) -> None:
        # Not the bot's delivery: a missing permission or a rate limit only
        # costs the indicator, so stop it for this channel.
        if failure.check(DiscordHTTPError):
            error: DiscordHTTPError = failure.value  # type: ignore[assignment]
            self.log.info(
                "{alias}: Discord refused the typing indicator (HTTP {status}: {message})",
                alias=self._alias,
                status=error.status,
                message=error.message,
            )
        else:
            self.log.info(
                "{alias}: could not reach Discord for the typing indicator ({error})",
                alias=self._alias,
                error=type(failure.value).__name__,
            )
        typing = self._channels.pop(channel_id, None)
        if typing is not None:
            typing.timer.cancel()
