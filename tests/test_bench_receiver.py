"""
Tests for :mod:`bench.receiver`, the bots' end of ``python -m bench``.
"""

from __future__ import annotations

from base64 import b64encode
from typing import Any, Generator

from autobahn.twisted.websocket import (
    WebSocketClientFactory,
    WebSocketClientProtocol,
    connectWS,
)
from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.trial.unittest import TestCase

from bench.receiver import SECRET, Tally, site


class _Bot(WebSocketClientProtocol):
    """
    Stands in for the relay's connection to one bot: sends the factory's
    frames once open, and collects the acks.
    """

    factory: _BotFactory

    def onOpen(self) -> None:
        for frame in self.factory.frames:
            self.sendMessage(frame, isBinary=False)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.acks.append(payload)
        if len(self.factory.acks) == len(self.factory.frames) and not self.factory.done.called:
            self.factory.done.callback(None)
            self.sendClose(code=1000)


class _BotFactory(WebSocketClientFactory):
    protocol = _Bot  # type: ignore[assignment]

    def __init__(self, url: str, frames: list[bytes]) -> None:
        authorization = "Basic " + b64encode(SECRET.encode()).decode()
        super().__init__(url, protocols=["dcc.v2"], headers={"Authorization": authorization})
        # Autobahn's own timers would outlive the test
        self.setProtocolOptions(
            openHandshakeTimeout=0, closeHandshakeTimeout=0, serverConnectionDropTimeout=0
        )
        self.frames = frames
        self.acks: list[bytes] = []
        self.done: Deferred[None] = Deferred()


class PerBotReceiverTests(TestCase):
    """
    ``/ws/<alias>`` is each bot's own receiver.
    """

    @inlineCallbacks
    def test_v2_ids_are_per_bot(self) -> Generator[Deferred[Any], Any, None]:
        """
        Outbox ids are per bot (from one sequence for all of them): a bot's
        dispatch with a lower id than one another bot already had is
        counted, not dropped as a redelivery.  (One receiver shared by
        every bot acknowledged such dispatches without counting them, and
        ``python -m bench --targets durable`` waited for ever.)
        """
        tally = Tally()
        port = yield serverFromString(global_reactor, "tcp:0:interface=127.0.0.1").listen(
            site(tally, global_reactor)
        )
        self.addCleanup(port.stopListening)
        base = f"ws://127.0.0.1:{port.getHost().port}/ws/"
        for alias, ids in (("bot0", [5, 6]), ("bot1", [3, 4])):
            frames = [
                b'{"op":"dispatch","id":%d,"d":{"op":0,"t":"MESSAGE_CREATE","d":{}}}' % n
                for n in ids
            ]
            factory = _BotFactory(base + alias, frames)
            connection = connectWS(factory)
            self.addCleanup(connection.disconnect)
            yield factory.done
            self.assertEqual(factory.acks[-1], b'{"op":"ack","id":%d}' % ids[-1])
        self.assertEqual(tally.count, 4)
