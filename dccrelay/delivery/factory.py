"""
Which delivery channel a registration gets:

- ``http://`` or ``https://`` dst: :class:`~.webhook.WebhookDelivery`;
- ``ws://`` or ``wss://`` dst with ``delivery.protocol`` 2:
  :class:`~.websocket_v2.WebSocketV2Delivery`;
- otherwise websocket v1, :class:`~.websocket.WebSocketDelivery`.

Webhooks and v2 keep their dispatches in the store's outbox; v1 keeps them
in memory.  When a bot moves from v1 to a durable channel, what v1 still
held goes into the outbox.  Moving the other way, what waits in the outbox
stays there (v1 cannot take it in order with acks) and is delivered if the
bot moves back.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from twisted.internet.interfaces import IReactorTime

from dccrelay.delivery import Annotate, IDeliveryChannel, OnDelivered
from dccrelay.delivery.outbox import OutboxWriter
from dccrelay.delivery.webhook import WebhookDelivery
from dccrelay.delivery.websocket import WebSocketDelivery
from dccrelay.delivery.websocket_v2 import WebSocketV2Delivery
from dccrelay.store import IRelayStore


def is_durable(dst: str, protocol: int) -> bool:
    """
    Whether a registration's dispatches wait in the durable outbox.
    """
    return dst.lower().startswith(("http://", "https://")) or protocol == 2


class DeliveryFactory:
    """
    Builds delivery channels for the relays of one node.

    :param reactor: for the channels' timers and connections.
    :param store: the node's store (the durable outbox lives there).
    :param writer: the node's :class:`OutboxWriter`.
    :param http: the treq client webhooks are POSTed with.
    :param idle_timeout: seconds before an idle bot connection is closed.
    :param queue_limit: dispatches kept per bot.
    :param queue_max_age: seconds a dispatch waits at most in the outbox,
        or None.
    :param retry_policy: websocket retry delays (the channels' default if
        None).
    :param webhook_retry_policy: webhook retry delays (the webhook default
        if None).
    :param channel_options: more keyword arguments for every websocket
        channel (e.g. ``tls_options_for``).
    """

    def __init__(
        self,
        reactor: IReactorTime,
        *,
        store: IRelayStore,
        writer: OutboxWriter,
        http: Any,
        idle_timeout: float = 60.0,
        queue_limit: int = 1000,
        queue_max_age: float | None = None,
        retry_policy: Callable[[int], float] | None = None,
        webhook_retry_policy: Callable[[int], float] | None = None,
        channel_options: dict[str, Any] | None = None,
    ) -> None:
        self.reactor = reactor
        self.store = store
        self.writer = writer
        self.http = http
        self.idle_timeout = idle_timeout
        self.queue_limit = queue_limit
        self.queue_max_age = queue_max_age
        self.retry_policy = retry_policy
        self.webhook_retry_policy = webhook_retry_policy
        self.channel_options = dict(channel_options or {})

    def __call__(
        self,
        *,
        alias: str,
        dst: str,
        client_secret: str,
        initial: Iterable[bytes] = (),
        protocol: int = 1,
        on_gone: Callable[[str], object] | None = None,
        on_delivered: OnDelivered | None = None,
        on_command: Callable[[Any], tuple[int, dict[str, Any]]] | None = None,
        annotate: Annotate | None = None,
    ) -> IDeliveryChannel:
        """
        The channel for one bot's registration.

        :param initial: what the bot's previous channel still held.
        :param protocol: the registration's ``delivery.protocol``.
        :param on_gone: called with a reason when the bot's endpoint says it
            is gone for good (webhook 410).
        :param on_delivered: gets the payloads the bot has taken.
        :param on_command: answers the gateway commands a v2 bot sends.
        :param annotate: changes payloads as they are written to the bot.
        """
        common: dict[str, Any] = {
            "alias": alias,
            "dst": dst,
            "client_secret": client_secret,
            "idle_timeout": self.idle_timeout,
            "queue_limit": self.queue_limit,
            "initial": initial,
            "on_delivered": on_delivered,
            "annotate": annotate,
        }
        if dst.lower().startswith(("http://", "https://")):
            return WebhookDelivery(
                self.reactor,
                store=self.store,
                writer=self.writer,
                http=self.http,
                on_gone=on_gone or (lambda reason: None),
                queue_max_age=self.queue_max_age,
                retry_policy=self.webhook_retry_policy,
                **common,
            )
        options = dict(self.channel_options)
        if self.retry_policy is not None:
            options["retry_policy"] = self.retry_policy
        if protocol == 2:
            return WebSocketV2Delivery(
                self.reactor,
                store=self.store,
                writer=self.writer,
                queue_max_age=self.queue_max_age,
                on_command=on_command,
                **common,
                **options,
            )
        return WebSocketDelivery(self.reactor, **common, **options)
