"""
Which delivery channel a registration gets:

- ``http://`` or ``https://`` dst: :class:`~.webhook.WebhookDelivery`;
- ``ws://`` or ``wss://`` dst: a :class:`~.websocket.WebSocketChannel`, with
  ``delivery.protocol`` 2 :class:`~.framing.V2Framing` on the durable outbox
  (:class:`~.outbox.BotOutbox`), otherwise :class:`~.framing.V1Framing` on
  the memory backlog (:class:`~.feed.MemoryFeed`).

Webhooks and v2 keep their dispatches in the store's outbox; v1 keeps them
in memory.  When a bot moves from v1 to a durable channel, what v1 still
held goes into the outbox.  Moving the other way, what waits in the outbox
stays there (v1 cannot take it in order with acks) and is delivered if the
bot moves back.

The factory builds; the owner starts (``channel.start()``).
"""

from __future__ import annotations

from random import Random
from typing import Any, Callable, Iterable

from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IReactorTime
from twisted.internet.ssl import optionsForClientTLS

from dccrelay.delivery import IChannelOwner, IDeliveryChannel
from dccrelay.delivery.config import DEFAULTS, DeliveryConfig
from dccrelay.delivery.feed import MemoryFeed
from dccrelay.delivery.framing import V1Framing, V2Framing
from dccrelay.delivery.outbox import BotOutbox, OutboxWriter
from dccrelay.delivery.webhook import WebhookDelivery
from dccrelay.delivery.websocket import WebSocketChannel
from dccrelay.store import IRelayStore

# The framings hold no state: one of each serves every bot.
_V1 = V1Framing()
_V2 = V2Framing()


def is_durable(dst: str, protocol: int) -> bool:
    """
    Whether a registration's dispatches wait in the durable outbox.
    """
    return is_webhook(dst) or protocol == 2


def is_webhook(dst: str) -> bool:
    """
    Whether ``dst`` is delivered to with webhooks.
    """
    return dst.lower().startswith(("http://", "https://"))


class DeliveryFactory:
    """
    Builds delivery channels for the relays of one node.

    :param reactor: for the channels' timers and connections.
    :param store: the node's store (the durable outbox lives there).
    :param writer: the node's :class:`OutboxWriter`.
    :param http: the treq client webhooks are POSTed with.
    :param config: every delivery setting.
    :param tls_options_for: TLS client options for a host name, for
        ``wss`` (the default verifies the certificate and the name).
    :param latency: gets the seconds each v1 dispatch waited, from
        ``deliver`` to being written to the bot's connection.
    :param random: for the webhooks' retry jitter.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        *,
        store: IRelayStore,
        writer: OutboxWriter,
        http: Any,
        config: DeliveryConfig = DEFAULTS,
        tls_options_for: Callable[[str], IOpenSSLClientConnectionCreator] = optionsForClientTLS,
        latency: Callable[[float], object] | None = None,
        random: Random | None = None,
    ) -> None:
        self.reactor = reactor
        self.store = store
        self.writer = writer
        self.http = http
        self.config = config
        self.tls_options_for = tls_options_for
        self.latency = latency
        self.random = random if random is not None else Random()

    def __call__(
        self,
        *,
        alias: str,
        dst: str,
        client_secret: str,
        owner: IChannelOwner,
        initial: Iterable[bytes] = (),
        protocol: int = 1,
    ) -> IDeliveryChannel:
        """
        The channel for one bot's registration, not started.

        :param owner: what the channel reports to.
        :param initial: what the bot's previous channel still held.
        :param protocol: the registration's ``delivery.protocol``.
        """
        config = self.config
        if is_webhook(dst):
            return WebhookDelivery(
                self.reactor,
                alias=alias,
                dst=dst,
                client_secret=client_secret,
                outbox=self._outbox(alias, initial, owner),
                http=self.http,
                config=config,
                owner=owner,
                random=self.random,
            )
        if protocol == 2:
            return WebSocketChannel(
                self.reactor,
                alias=alias,
                dst=dst,
                client_secret=client_secret,
                feed=self._outbox(alias, initial, owner),
                framing=_V2,
                config=config,
                owner=owner,
                tls_options_for=self.tls_options_for,
            )
        return WebSocketChannel(
            self.reactor,
            alias=alias,
            dst=dst,
            client_secret=client_secret,
            feed=MemoryFeed(
                alias, config.queue_limit, initial, clock=self.reactor, latency=self.latency
            ),
            framing=_V1,
            config=config,
            owner=owner,
            tls_options_for=self.tls_options_for,
        )

    def _outbox(self, alias: str, initial: Iterable[bytes], owner: IChannelOwner) -> BotOutbox:
        return BotOutbox(
            alias=alias,
            store=self.store,
            writer=self.writer,
            clock=self.reactor,
            limit=self.config.queue_limit,
            max_age=self.config.queue_max_age,
            initial=initial,
            window=self.config.outbox_window,
            load_retry=self.config.outbox_load_retry,
            on_change=owner.status_changed,
        )
