"""
Tests for :mod:`dccrelay.delivery.factory`: which channel a registration
gets.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from dccrelay.delivery import IChannelOwner, IDeliveryChannel, IDurableChannel, NoOwner
from dccrelay.delivery.config import DeliveryConfig
from dccrelay.delivery.factory import DeliveryFactory, is_durable
from dccrelay.delivery.feed import MemoryFeed
from dccrelay.delivery.framing import V1Framing, V2Framing
from dccrelay.delivery.outbox import BotOutbox, OutboxWriter
from dccrelay.delivery.webhook import WebhookDelivery
from dccrelay.delivery.websocket import WebSocketChannel
from tests.channel_builders import CallbackOwner, status_of
from tests.memory_store import MemoryRelayStore

SECRET = "admin:c2VjcmV0c2VjcmV0"


class AskedStore(MemoryRelayStore):
    """
    A memory store that notes which outbox questions it was asked.
    """

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def outbox_count(self, alias: str) -> Any:
        self.asked.append("count")
        return super().outbox_count(alias)

    def outbox_load(self, alias: str, after_id: int, limit: int) -> Any:
        self.asked.append("load")
        return super().outbox_load(alias, after_id, limit)


class FactoryTests(SynchronousTestCase):
    """
    DeliveryFactory.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.store = AskedStore()
        self.successResultOf(self.store.open())
        self.successResultOf(self.store.save_relay("cookout", {}))
        self.factory = DeliveryFactory(
            self.clock,
            store=self.store,
            writer=OutboxWriter(self.store, self.clock),
            http=object(),
            config=DeliveryConfig(queue_limit=7),
        )

    def make(self, dst: str, protocol: int = 1) -> IDeliveryChannel:
        channel = self.factory(
            alias="cookout", dst=dst, client_secret=SECRET, protocol=protocol, owner=NoOwner()
        )
        channel.start()
        return channel

    def test_kinds(self) -> None:
        """
        ws(s) with protocol 1 is the websocket machine with v1 framing on a
        memory feed; with 2, v2 framing on the outbox; http(s) is a webhook,
        whatever the protocol says.
        """
        v1 = self.make("wss://bot.example/")
        v2 = self.make("ws://bot.example/", 2)
        assert isinstance(v1, WebSocketChannel) and isinstance(v2, WebSocketChannel)
        self.assertIsInstance(v1._framing, V1Framing)
        self.assertIsInstance(v1._feed, MemoryFeed)
        self.assertIsInstance(v2._framing, V2Framing)
        self.assertIsInstance(v2._feed, BotOutbox)
        self.assertIs(type(self.make("https://bot.example/hook")), WebhookDelivery)
        self.assertIs(type(self.make("HTTP://bot.example/hook")), WebhookDelivery)

    def test_pure_constructors(self) -> None:
        """
        Building a channel does no I/O: nothing is dialled and the store is
        not asked until the owner starts it.
        """
        for dst, protocol in [("ws://bot.example/", 1), ("ws://bot.example/", 2),
                              ("https://bot.example/", 1)]:
            channel = self.factory(
                alias="cookout", dst=dst, client_secret=SECRET, protocol=protocol,
                initial=[b'{"s":1}'], owner=NoOwner(),
            )
            self.assertEqual(self.clock.tcpClients, [])
            self.assertEqual(self.clock.getDelayedCalls(), [])
            self.assertEqual(self.store.asked, [])
            self.assertEqual(channel.snapshot().state, "idle")
            self.successResultOf(channel.stop())

    def test_owner(self) -> None:
        """
        The owners given to channels provide IChannelOwner, the test's
        CallbackOwner too.
        """
        verifyObject(IChannelOwner, NoOwner())
        verifyObject(IChannelOwner, CallbackOwner())

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
        owner = CallbackOwner(on_gone=gone.append)
        channel = self.factory(
            alias="cookout", dst="https://bot.example/", client_secret=SECRET,
            initial=[b'{"s":1}'], owner=owner,
        )
        channel.start()
        assert isinstance(channel, WebhookDelivery)
        self.assertIs(channel._owner, owner)
        self.assertEqual(status_of(channel)["queued"], 1)
        v1 = self.make("wss://bot.example/")
        for n in range(9):
            v1.deliver(b"%d" % n)
        self.assertEqual(status_of(v1)["dropped"], 2)
        self.successResultOf(v1.stop())
