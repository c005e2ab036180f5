"""
Delivery: getting matching dispatches from the relay to the bot.

Every way of reaching a bot (websocket v1, websocket v2, webhooks) is a
*delivery channel* for one bot, and they all look the same to the relay:
:class:`IDeliveryChannel`; :mod:`.factory` picks one for a registration.
The pieces they share live in small modules beside this one:
:mod:`dccrelay.delivery.queue` (v1's bounded in-memory backlog that drops the
oldest and counts what it dropped), :mod:`.outbox` (the durable outbox in the
store, for v2 and webhooks), :mod:`.timers` (retry backoff and idle close on
an injected clock) and :mod:`.errors` (short, secret-free descriptions of why
a bot could not be reached).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

from zope.interface import Interface

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from dccrelay.store import OutboxCheckpoint

#: The values of ``status()["state"]``, for every channel.
STATES = ("idle", "connecting", "connected", "waiting to retry", "stopped")


class IDeliveryChannel(Interface):
    """
    Carries one bot's dispatches to the bot, in order.

    A channel is created with the bot's ``dst`` and ``clientSecret`` and an
    optional ``initial`` iterable of payloads (what an earlier channel still
    held).  When ``dst`` or the secret changes the relay stops the old
    channel and builds a new one with ``initial=old.pending()``.
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

    def status() -> dict[str, object]:
        """
        :return: ``{"state": one of STATES, "queued": int, "dropped": int,
            "delivered": int, "lastError": str | None}``.  ``lastError``
            describes the bot's side only and never holds a secret.
        """


#: What a channel may be given to report the payloads its bot has taken, in
#: order: written to the websocket (v1), acknowledged (v2), answered 2xx
#: (webhook).  The payloads are equal to those given to ``deliver`` (not
#: necessarily the same objects: a durable channel may read them back from
#: the store).
OnDelivered = Callable[[Sequence[bytes]], object]

#: What a channel may be given to change a payload as it is written to the
#: bot (the relay's deferred-interaction news, see
#: :mod:`dccrelay.interactions`); it returns the payload itself when there
#: is nothing to change.
Annotate = Callable[[bytes], bytes]


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
