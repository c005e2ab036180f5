"""
Tests for :mod:`dccrelay.delivery.factory`: which channel a registration
gets.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.delivery import IDurableChannel
from dccrelay.delivery.factory import DeliveryFactory, is_durable
from dccrelay.delivery.outbox import OutboxWriter
from dccrelay.delivery.webhook import WebhookDelivery
from dccrelay.delivery.websocket import WebSocketDelivery
from dccrelay.delivery.websocket_v2 import WebSocketV2Delivery
from tests.memory_store import MemoryRelayStore

SECRET = "admin:c2VjcmV0c2VjcmV0"


class FactoryTests(SynchronousTestCase):
    """
    DeliveryFactory.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.store = MemoryRelayStore()
        self.successResultOf(self.store.open())
        self.successResultOf(self.store.save_relay("cookout", {}))
        self.factory = DeliveryFactory(
            self.clock,
            store=self.store,
            writer=OutboxWriter(self.store, self.clock),
            http=object(),
            queue_limit=7,
        )

    def make(self, dst: str, protocol: int = 1) -> object:
        return self.factory(alias="cookout", dst=dst, client_secret=SECRET, protocol=protocol)

    def test_kinds(self) -> None:
        """
        ws(s) with protocol 1 is v1; with 2, v2; http(s) is a webhook,
        whatever the protocol says.
        """
        self.assertIs(type(self.make("wss://bot.example/")), WebSocketDelivery)
        self.assertIs(type(self.make("ws://bot.example/", 2)), WebSocketV2Delivery)
        self.assertIs(type(self.make("https://bot.example/hook")), WebhookDelivery)
        self.assertIs(type(self.make("HTTP://bot.example/hook")), WebhookDelivery)

    def test_durable(self) -> None:
        """
        v2 and webhooks are durable; v1 is not.
        """
        self.assertFalse(IDurableChannel.providedBy(self.make("wss://bot.example/")))
        self.assertTrue(IDurableChannel.providedBy(self.make("wss://bot.example/", 2)))
        self.assertTrue(IDurableChannel.providedBy(self.make("https://bot.example/")))
        self.assertEqual(
            [is_durable(d, p) for d, p in [("wss://x/", 1), ("wss://x/", 2), ("https://x/", 1)]],
            [False, True, True],
        )

    def test_on_gone_and_initial(self) -> None:
        """
        A webhook gets the relay's on_gone; payloads a v1 channel held go
        into a durable channel's outbox.
        """
        gone: list[str] = []
        channel = self.factory(
            alias="cookout", dst="https://bot.example/", client_secret=SECRET,
            initial=[b'{"s":1}'], on_gone=gone.append,
        )
        assert isinstance(channel, WebhookDelivery)
        self.assertIs(channel._on_gone.__self__, gone)  # type: ignore[attr-defined]
        self.assertEqual(channel.status()["queued"], 1)
        v1 = self.make("wss://bot.example/")
        for n in range(9):
            v1.deliver(b"%d" % n)  # type: ignore[attr-defined]
        self.assertEqual(v1.status()["dropped"], 2)  # type: ignore[attr-defined]
        self.successResultOf(v1.stop())  # type: ignore[attr-defined]
