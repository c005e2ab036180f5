"""
Delivery: getting matching dispatches from the relay to the bot.

Every way of reaching a bot (websocket v1, websocket v2, webhooks) is a
*delivery channel* for one bot, and they all look the same to the relay:
:class:`IDeliveryChannel`; :mod:`.factory` picks one for a registration.
Every channel reports to its owner (the relay) through
:class:`IChannelOwner` and describes itself with a :class:`ChannelSnapshot`.

The pieces, each in a small module beside this one:

- :mod:`.config`: :class:`~.config.DeliveryConfig`, every setting and its
  default, written once;
- :mod:`.feed`: where a channel's dispatches wait (:class:`~.feed.IFeed`):
  :class:`~.feed.MemoryFeed`, v1's bounded backlog (:mod:`.queue`), or the
  durable outbox in the store (:class:`~.outbox.BotOutbox`, v2 and webhooks);
- :mod:`.framing`: what differs between websocket v1 and v2 (the frames, the
  acknowledgements, the bot's commands), as a strategy;
- :mod:`.websocket`: the one state machine of a websocket link to a bot,
  composed with a feed and a framing;
- :mod:`.webhook`: signed HTTP batches from the outbox;
- :mod:`.factory`: which channel a registration gets;
- :mod:`.timers` (deadlines on an injected clock) and :mod:`.errors` (short,
  secret-free descriptions of why a bot could not be reached).

A channel's constructor does no I/O: its owner calls ``start()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from zope.interface import Attribute, Interface, implementer

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from dccrelay.store import OutboxCheckpoint

#: The values of ``status()["state"]``, for every channel.
STATES = ("idle", "connecting", "connected", "waiting to retry", "stopped")


@dataclass(frozen=True, slots=True)
class ChannelSnapshot:
    """
    What a channel shows of itself at one moment.
    """

    #: one of :data:`STATES`
    state: str
    #: dispatches waiting for the bot
    queued: int
    #: dispatches dropped by the limits (count, age), never silently
    dropped: int
    #: dispatches the bot took (written, acknowledged or answered 2xx)
    delivered: int
    #: the last problem reaching the bot, about the bot's side only; never
    #: holds a secret
    last_error: str | None


class IChannelOwner(Interface):
    """
    What a delivery channel tells, and asks, the one who made it (the
    relay).  A channel never lets an exception from these escape into its
    own work: it logs it.
    """

    def channel_delivered(payloads: Sequence[bytes]) -> None:
        """
        The bot has taken these payloads, in order: written to the
        websocket (v1), acknowledged (v2), answered 2xx (webhook).  They are
        equal to those given to ``deliver`` (not necessarily the same
        objects: a durable channel may read them back from the store).
        """

    def annotate(payload: bytes) -> bytes:
        """
        Change a payload as it is written to the bot (the relay's
        deferred-interaction news, see :mod:`dccrelay.waking.interactions`).

        :return: ``payload`` itself when there is nothing to change.
        """

    def bot_command(command: Any) -> tuple[int, dict[str, Any]]:
        """
        Answer a gateway command a v2 bot sent (the ``d`` of its frame).

        :return: ``(status, body)`` as ``POST /relays/{alias}/commands``
            would answer (:func:`dccrelay.gateway.commands.command_answer`).
        """

    def bot_gone(reason: str) -> None:
        """
        The bot's endpoint says it is gone for good (webhook 410): ``reason``
        is for a person to act on.
        """

    def status_changed() -> None:
        """
        What the channel's :meth:`~IDeliveryChannel.snapshot` shows may have
        changed, on this reactor turn, other than by a call of the owner's
        (``deliver``) or by what :meth:`channel_delivered` reports: a cluster
        node publishes a bot's status only when told it may have changed.
        """


@implementer(IChannelOwner)
class NoOwner:
    """
    The owner of a channel nobody listens to: nothing is reported, nothing
    is changed, commands are refused.
    """

    def channel_delivered(self, payloads: Sequence[bytes]) -> None:
        pass

    def annotate(self, payload: bytes) -> bytes:
        return payload

    def bot_command(self, command: Any) -> tuple[int, dict[str, Any]]:
        return 501, {"error": "this relay does not take commands from bots"}

    def bot_gone(self, reason: str) -> None:
        pass

    def status_changed(self) -> None:
        pass


class IDeliveryChannel(Interface):
    """
    Carries one bot's dispatches to the bot, in order.

    A channel is built (without I/O) with the bot's ``dst`` and
    ``clientSecret`` and an optional ``initial`` iterable of payloads (what
    an earlier channel still held), then started.  When ``dst`` or the
    secret changes the relay stops the old channel and builds a new one
    with ``initial=old.pending()``.
    """

    connected = Attribute(
        "True while the bot is known to be reachable (its connection is open, or for"
        " a webhook it took a batch within idle_timeout seconds): cheap, for the"
        " dispatch path"
    )

    def start() -> None:
        """
        Begin I/O: load what waits, and connect when something does.
        """

    def deliver(payload: bytes) -> None:
        """
        Queue one gateway payload (its original bytes) for the bot.

        Never raises.  Opens a connection when one is needed.  When the
        backlog is full the oldest payload is dropped and counted.
        """

    def stop() -> Deferred[None]:
        """
        Close any connection and cancel every timer.

        :return: fires once the connection is gone.  What was not delivered stays available from
            :meth:`pending`.
        """

    def pending() -> list[bytes]:
        """
        :return: the payloads still waiting, oldest first.
        """

    def snapshot() -> ChannelSnapshot:
        """
        :return: the channel's state and figures now.
        """


class IDurableChannel(IDeliveryChannel):
    """
    A channel that keeps each dispatch in the store's outbox until the bot
    acknowledges it (websocket v2, webhooks): at-least-once, across bot and
    relay restarts.

    Its :meth:`pending` is empty: a new channel for the same bot finds the
    outbox in the store.
    """

    def deliver(payload: bytes, checkpoint: OutboxCheckpoint | None = None) -> None:
        """
        Append one gateway payload to the bot's outbox; it is sent once
        stored.

        :param checkpoint: the shard's seq to store in the same transaction:
            once the dispatch is durable, Discord need not replay it after a
            restart.
        """

    def unstored() -> int:
        """
        :return: how many dispatches given to :meth:`deliver` are not in the
            store yet (the newest ones): what Discord may have to replay if
            the relay dies now.
        """
