"""
What the relay writes to a bot on its open websocket, and what it hears
back: the write path of a :class:`~dccrelay.delivery.websocket.WebSocketChannel`.

It writes the feed's waiting entries in order, framed, each at most once
per connection, and counts what the bot took.  It is the connection
transport's streaming producer: once the transport holds more than its
buffer allows (a bot that does not read), writing pauses, the entries stay
in the feed (bounded by its limits, the excess counted as dropped), and it
goes on when the transport has drained.  Without that, every dispatch for
a bot that never reads would pile up in the relay's memory, counted as
delivered.
"""

from __future__ import annotations

from typing import Any, cast

from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from dccrelay.delivery import IChannelOwner
from dccrelay.delivery.bot_link import BotConnection, abort
from dccrelay.delivery.feed import IFeed
from dccrelay.delivery.framing import IBotFrames, IFraming
from dccrelay.delivery.timers import IdleTimer


@implementer(IBotFrames, IPushProducer)
class BotWriter:
    """
    Writes one bot's waiting entries on the connection it is attached to.

    :param idle: touched whenever something is written.
    """

    log = Logger()

    def __init__(
        self,
        *,
        alias: str,
        feed: IFeed,
        framing: IFraming,
        owner: IChannelOwner,
        idle: IdleTimer,
    ) -> None:
        self._alias = alias
        self._feed = feed
        self._framing = framing
        self._owner = owner
        self._idle = idle
        self._connection: BotConnection | None = None
        # the newest entry written on the current connection
        self._sent_up_to = 0
        self._paused = False
        #: dispatches the bot took (written, or acknowledged in v2)
        self.delivered = 0

    def attach(self, connection: BotConnection) -> None:
        """
        Write on ``connection`` from now on, everything not taken yet
        (unacknowledged entries go again on a new connection).
        """
        self._connection = connection
        self._sent_up_to = 0
        self._paused = False
        transport = connection.transport
        if transport is not None:
            cast(IConsumer, transport).registerProducer(self, True)

    def detach(self) -> None:
        """
        The connection is closing or gone: write nothing more on it.
        """
        self._connection = None

    @property
    def stalled(self) -> bool:
        """
        Whether writing waits for the bot to read what was written.
        """
        return self._connection is not None and self._paused

    def write_waiting(self) -> None:
        """
        Write what waits and was not written on this connection yet, until
        the transport asks to pause.
        """
        connection = self._connection
        if connection is None or self._paused:
            return
        framing = self._framing
        written = 0
        try:
            for entry_id, payload in self._feed.entries_after(self._sent_up_to):
                if self._paused or connection.state != WebSocketProtocol.STATE_OPEN:
                    break
                connection.sendMessage(
                    framing.frame(entry_id, self._as_sent(payload)), isBinary=False
                )
                # taken only once written: a failure above leaves it queued
                self._sent_up_to = entry_id
                written += 1
        except Exception:
            self.log.failure("Could not send to {alias}'s bot", alias=self._alias)
            abort(connection)
        if written:
            self._idle.touch()
            if framing.delivered_when_written:
                self._take(self._sent_up_to)

    # -- IPushProducer: the transport's flow control ----------------------------------

    # (stalled, shown in the channel's snapshot, follows _paused)

    def pauseProducing(self) -> None:
        self._paused = True
        self._owner.status_changed()

    def resumeProducing(self) -> None:
        self._paused = False
        self._owner.status_changed()
        self.write_waiting()

    def stopProducing(self) -> None:
        self._paused = True
        self._owner.status_changed()

    # -- IBotFrames ---------------------------------------------------------------

    def acked(self, up_to: int) -> None:
        # an ack can only cover what was sent on this connection
        self._take(min(up_to, self._sent_up_to))

    def commanded(self, ref: str | int | None, command: Any) -> None:
        try:
            status, answer = self._owner.bot_command(command)
        except Exception:
            self.log.failure("{alias}: a command from the bot failed", alias=self._alias)
            status, answer = 500, {"error": "the relay failed to handle the command"}
        connection = self._connection
        if connection is not None and connection.state == WebSocketProtocol.STATE_OPEN:
            # An answer is written even while paused: the bot asked for it,
            # and there is one per command it sent.
            connection.sendMessage(
                self._framing.command_result(ref, status, answer), isBinary=False
            )

    # -- helpers ----------------------------------------------------------------------

    def _take(self, up_to: int) -> None:
        taken = self._feed.take(up_to)
        if taken:
            self.delivered += len(taken)
            try:
                self._owner.channel_delivered(taken)
            except Exception:
                self.log.failure("{alias}: on_delivered failed", alias=self._alias)

    def _as_sent(self, payload: bytes) -> bytes:
        try:
            return self._owner.annotate(payload)
        except Exception:
            self.log.failure("{alias}: annotate failed", alias=self._alias)
            return payload
