"""
Tests for :mod:`dccrelay.web.connection_limit`: the API holds at most
``--max-api-connections`` connections at once; one more is answered 503
and closed, so a client holding idle connections cannot take the node's
file descriptors (issue 17, item 7).
"""

from __future__ import annotations

from typing import Any

import orjson
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from dccrelay.web.connection_limit import APIConnectionLimit
from tests.delivery_harness import WebSocketBot
from tests.harness import RelayProcess, http, wait_for
from tests.test_delivery_end_to_end import Fixture, deferred_test

ADDRESS = IPv4Address("TCP", "127.0.0.1", 40000)


class LimitTests(SynchronousTestCase):
    """
    :class:`APIConnectionLimit` with ``StringTransport``.
    """

    def _connect(self, factory: APIConnectionLimit) -> tuple[Any, StringTransport]:
        protocol = factory.buildProtocol(ADDRESS)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def test_over_the_limit(self) -> None:
        """
        Up to the limit, connections reach the site; the next one is
        answered 503 with Retry-After and a JSON error naming the limit,
        and closed; once one closes, a new one is served again.
        """
        factory = APIConnectionLimit(Site(Resource(), timeout=None), 3)
        held = [self._connect(factory) for _ in range(3)]
        for _, transport in held:
            self.assertEqual(transport.value(), b"")
            self.assertFalse(transport.disconnecting)
        _, refused = self._connect(factory)
        head, _, body = refused.value().partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"))
        self.assertIn(b"\r\nRetry-After: 5\r\n", head)
        self.assertEqual(
            orjson.loads(body)["error"],
            "the relay serves at most 3 API connections at once; try again shortly",
        )
        self.assertTrue(refused.disconnecting)
        self.assertEqual(factory.refused, 1)

        protocol, _ = held.pop()
        protocol.connectionLost(Failure(Exception("closed")))
        _, transport = self._connect(factory)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(transport.value(), b"")

    def test_log_prefix(self) -> None:
        """The port still logs "Site starting on N"."""
        self.assertEqual(APIConnectionLimit(Site(Resource(), timeout=None), 3).logPrefix(), "Site")


class _Idle(Protocol):
    """A client that connects, sends nothing, and keeps what comes."""

    def __init__(self) -> None:
        self.received = b""
        self.lost: Deferred[None] = Deferred()
        self.open = True

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.open = False
        self.lost.callback(None)


class IdleClientsEndToEndTests(Fixture):
    """
    The real relay with ``--max-api-connections 20``, a client opening 60
    idle connections to its API, and a bot on the node.
    """

    @deferred_test
    async def test_idle_connections(self) -> None:
        """
        20 connections are held, the other 40 are answered 503 and closed
        at once; the bot keeps receiving; once the client lets go,
        ``/healthz`` answers again.
        """
        await self.start_discord()
        relay = await RelayProcess.started(
            self, self.data_dir, self.sim.api_url, "--max-api-connections", "20"
        )
        bot = WebSocketBot()
        await self.start_bot(bot)
        code, body = await relay.register(self.body(bot.url))
        self.assertEqual(code, 201, body)
        await self.bot.wait_for_ready()
        # the registration's connection closes (the tests' client keeps none)
        limit = relay.service.getServiceNamed("http").factory
        await wait_for(lambda: not limit.protocols, what="the registration's connection to close")

        port = int(relay.base.rsplit(":", 1)[1])
        clients = []
        for _ in range(60):
            client = _Idle()
            await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)
            clients.append(client)
        await wait_for(lambda: sum(not c.open for c in clients) == 40, what="40 refused")
        held = [c for c in clients if c.open]
        self.assertEqual(len(held), 20)
        self.assertEqual({c.received for c in held}, {b""})
        for client in clients:
            if not client.open:
                self.assertTrue(client.received.startswith(b"HTTP/1.1 503 "))

        sent = self.bot.message("cookout while the API is full")
        await wait_for(lambda: sent in bot.wire, what="the bot's dispatch")

        for client in held:
            assert client.transport is not None
            client.transport.loseConnection()
        for client in held:
            await client.lost
        response = await http.get(relay.base + "/healthz")
        self.assertEqual(response.code, 200)
        await response.content()
        await wait_for(lambda: not limit.protocols, what="the server's side to close")
