"""
Delivery channels for tests, built and started from one flat set of keyword
arguments (settings, callbacks and neighbours together), as the tests
describe them.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Callable, Sequence

from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from dccrelay.delivery import IChannelOwner, NoOwner
from dccrelay.delivery.config import DeliveryConfig
from dccrelay.delivery.feed import MemoryFeed
from dccrelay.delivery.framing import V1Framing, V2Framing
from dccrelay.delivery.outbox import BotOutbox
from dccrelay.delivery.webhook import WebhookDelivery
from dccrelay.delivery.websocket import WebSocketChannel

_CONFIG_FIELDS = {field.name for field in fields(DeliveryConfig)}


@implementer(IChannelOwner)
class CallbackOwner:
    """
    A channel owner made of optional callables; what is missing behaves as
    :class:`~dccrelay.delivery.NoOwner`.
    """

    def __init__(
        self,
        on_delivered: Callable[[Sequence[bytes]], object] | None = None,
        annotate: Callable[[bytes], bytes] | None = None,
        on_command: Callable[[Any], tuple[int, dict[str, Any]]] | None = None,
        on_gone: Callable[[str], object] | None = None,
    ) -> None:
        self.on_delivered = on_delivered
        self.on_annotate = annotate
        self.on_command = on_command
        self.on_gone = on_gone
        #: how many times the channel said its snapshot may have changed
        self.status_changes = 0

    def channel_delivered(self, payloads: Sequence[bytes]) -> None:
        if self.on_delivered is not None:
            self.on_delivered(payloads)

    def annotate(self, payload: bytes) -> bytes:
        if self.on_annotate is not None:
            return self.on_annotate(payload)
        return payload

    def bot_command(self, command: Any) -> tuple[int, dict[str, Any]]:
        if self.on_command is not None:
            return self.on_command(command)
        return NoOwner().bot_command(command)

    def bot_gone(self, reason: str) -> None:
        if self.on_gone is not None:
            self.on_gone(reason)

    def status_changed(self) -> None:
        self.status_changes += 1


def split(kwargs: dict[str, Any], renames: dict[str, str] | None = None) -> tuple[
    CallbackOwner, DeliveryConfig, dict[str, Any]
]:
    """
    :return: the owner and configuration ``kwargs`` describe, and what is
        left of them.  No age limit unless one is given, as the channels
        had before the configuration object.
    """
    rest = dict(kwargs)
    owner = CallbackOwner(
        **{key: rest.pop(key) for key in ("on_delivered", "annotate", "on_command", "on_gone")
           if key in rest}
    )
    settings: dict[str, Any] = {"queue_max_age": None}
    for key in list(rest):
        name = (renames or {}).get(key, key)
        if name in _CONFIG_FIELDS:
            settings[name] = rest.pop(key)
    return owner, DeliveryConfig(**settings), rest


def outbox(clock: IReactorTime, alias: str, config: DeliveryConfig, rest: dict[str, Any]) -> BotOutbox:
    return BotOutbox(
        alias=alias,
        store=rest.pop("store"),
        writer=rest.pop("writer"),
        clock=clock,
        limit=config.queue_limit,
        max_age=config.queue_max_age,
        initial=rest.pop("initial", ()),
        window=config.outbox_window,
        load_retry=config.outbox_load_retry,
    )


def websocket_v1(clock: IReactorTime, *, start: bool = True, **kwargs: Any) -> WebSocketChannel:
    """
    A started v1 channel.
    """
    owner, config, rest = split(kwargs)
    feed = MemoryFeed(
        rest["alias"], config.queue_limit, rest.pop("initial", ()),
        clock=clock, latency=rest.pop("latency", None),
    )
    channel = WebSocketChannel(
        clock, feed=feed, framing=V1Framing(), config=config, owner=owner, **rest
    )
    if start:
        channel.start()
    return channel


def websocket_v2(clock: IReactorTime, *, start: bool = True, **kwargs: Any) -> WebSocketChannel:
    """
    A started v2 channel; ``store`` and ``writer`` are the outbox's.
    """
    owner, config, rest = split(kwargs)
    rest.pop("latency", None)
    feed = outbox(clock, rest["alias"], config, rest)
    channel = WebSocketChannel(
        clock, feed=feed, framing=V2Framing(), config=config, owner=owner, **rest
    )
    if start:
        channel.start()
    return channel


def webhook(clock: IReactorTime, *, start: bool = True, **kwargs: Any) -> WebhookDelivery:
    """
    A started webhook channel; ``store`` and ``writer`` are the outbox's.
    """
    owner, config, rest = split(
        kwargs, {"retry_policy": "webhook_retry_policy", "timeout": "webhook_timeout"}
    )
    feed = outbox(clock, rest["alias"], config, rest)
    channel = WebhookDelivery(clock, outbox=feed, config=config, owner=owner, **rest)
    if start:
        channel.start()
    return channel


def status_of(channel: Any) -> dict[str, object]:
    """
    A channel's snapshot as a plain dict, in the API's field names, for
    short assertions.
    """
    snapshot = channel.snapshot()
    return {
        "state": snapshot.state,
        "queued": snapshot.queued,
        "dropped": snapshot.dropped,
        "delivered": snapshot.delivered,
        "lastError": snapshot.last_error,
    }
