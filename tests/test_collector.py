"""
Tests for :mod:`dccrelay.ops.collector`: full collections wait while the
node starts, what start-up made is frozen once it settles, and a gateway
connection (to Discord or to a bot) that ends is freed by reference
counting, frozen or not.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from dccrelay.gateway.connection import GatewayConnector
from dccrelay.gateway.shard import gateway_url
from dccrelay.ops.collector import STARTING_THRESHOLD, StartUpCollector
from tests.channel_builders import websocket_v1
from tests.harness import (
    LOOPBACK,
    SECRET,
    TRUST_TEST_CA,
    BotReceiver,
    tls_simulator,
    wait_for,
)


class FakeCollector:
    """Records what is asked of :mod:`gc`."""

    def __init__(self) -> None:
        self.threshold = (700, 10, 10)
        self.calls: list[Any] = []
        self.frozen = 0

    def get_threshold(self) -> tuple[int, int, int]:
        return self.threshold

    def set_threshold(self, *threshold: int) -> None:
        self.threshold = threshold  # type: ignore[assignment]

    def collect(self, generation: int = 2) -> int:
        self.calls.append(("collect", generation))
        return 0

    def freeze(self) -> None:
        self.calls.append("freeze")

    def get_freeze_count(self) -> int:
        raise AssertionError("counting walks every frozen object: not on the reactor")

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")


class StartUpCollectorTests(TestCase):
    def make(
        self, settled: list[bool], deadline: float = 600.0
    ) -> tuple[StartUpCollector, FakeCollector, Clock]:
        clock, fake = Clock(), FakeCollector()
        collector = StartUpCollector(clock, lambda: settled[0], deadline=deadline, collector=fake)
        collector.startService()
        return collector, fake, clock

    def test_full_collections_wait_while_starting(self) -> None:
        """
        While start-up goes on, the oldest generation's threshold is out of
        reach and nothing is frozen; young thresholds are untouched.
        """
        collector, fake, clock = self.make([False])
        clock.advance(30)
        self.assertEqual(fake.threshold, (700, 10, STARTING_THRESHOLD))
        self.assertEqual((fake.calls, collector.frozen), ([], False))

    def test_freezes_once_settled(self) -> None:
        """
        Settled at two checks in a row: a young collection, a freeze, the
        usual thresholds back, and no more checks.
        """
        settled = [False]
        collector, fake, clock = self.make(settled)
        clock.advance(1)
        settled[0] = True
        clock.advance(1)
        self.assertEqual(fake.calls, [])
        clock.advance(1)
        self.assertEqual(fake.calls, [("collect", 1), "freeze"])
        self.assertEqual((fake.threshold, collector.frozen), ((700, 10, 10), True))
        clock.advance(10)
        self.assertEqual(len(fake.calls), 2)

    def test_deadline(self) -> None:
        """A start-up that never settles still ends at the deadline: frozen, thresholds back."""
        collector, fake, clock = self.make([False], deadline=5)
        clock.advance(5)
        self.assertEqual(fake.calls, [("collect", 1), "freeze"])
        self.assertEqual(fake.threshold, (700, 10, 10))

    def test_stop(self) -> None:
        """Stopping gives the usual thresholds back and unfreezes what was frozen."""
        collector, fake, clock = self.make([True])
        clock.advance(1)
        clock.advance(1)
        collector.stopService()
        self.assertEqual(fake.calls[-1], "unfreeze")
        self.assertEqual(fake.threshold, (700, 10, 10))
        stopped_early, fake, clock = self.make([False])
        stopped_early.stopService()
        self.assertEqual(
            (fake.threshold, fake.calls, clock.getDelayedCalls()), ((700, 10, 10), [], [])
        )


class Listener:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.closed: list[int | None] = []

    def frame_received(self, data: bytes) -> None:
        self.frames.append(data)

    def connection_closed(self, code: int | None, reason: str) -> None:
        self.closed.append(code)


class FrozenConnectionTests(TestCase):
    def test_ended_connection_freed_while_frozen(self) -> None:
        """
        A gateway connection frozen while open (as start-up leaves it) is
        freed by reference counting once it ends: a reconnect does not leak
        the old connection (its protocol and inflate context).
        """
        return ensureDeferred(self._freed())

    async def _freed(self) -> None:
        from twisted.internet import reactor

        sim = tls_simulator()
        await sim.listen(LOOPBACK)
        self.addCleanup(sim.stop)
        sim.add_bot(token="TOKEN", user_id="1")
        connector = GatewayConnector(
            reactor, tls_options_for=TRUST_TEST_CA.creator_for, compression="zlib-stream"
        )
        listener = Listener()
        connection = await connector.connect(gateway_url(sim.gateway_url), listener)
        await wait_for(lambda: listener.frames, what="HELLO")
        protocol = weakref.ref(connection)
        del connection
        gc.freeze()
        self.addCleanup(gc.unfreeze)
        alive = protocol()
        assert alive is not None
        alive.close(4000)
        del alive
        await wait_for(lambda: listener.closed, what="the close")
        # let Twisted finish with the transport after the protocol heard of it
        from twisted.internet.task import deferLater

        await deferLater(reactor, 0.05, lambda: None)
        self.assertIsNone(protocol())


class FrozenBotConnectionTests(TestCase):
    def test_ended_bot_connection_freed_while_frozen(self) -> None:
        """
        The same for a websocket to a bot: one frozen while open and then
        closed (an idle close, a stop) is freed by reference counting.
        """
        return ensureDeferred(self._freed())

    async def _freed(self) -> None:
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        receiver = BotReceiver()
        await receiver.start()
        self.addCleanup(receiver.stop)
        channel = websocket_v1(
            reactor, alias="cookout", dst=receiver.url, client_secret=SECRET,
            tls_options_for=TRUST_TEST_CA.creator_for,
        )
        channel.deliver(b'{"t":"MESSAGE_CREATE"}')
        await wait_for(lambda: receiver.received, what="the dispatch")
        connection = weakref.ref(channel._connection)  # type: ignore[arg-type]
        gc.freeze()
        self.addCleanup(gc.unfreeze)
        await channel.stop()
        await deferLater(reactor, 0.05, lambda: None)
        self.assertIsNone(connection())
