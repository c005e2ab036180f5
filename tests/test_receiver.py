"""
Tests for :mod:`dccrelay.client.receiver`, the bot's end of websocket v1.

Most run the receiver against a stand-in for the relay (a plain Autobahn
client) in memory; one serves :func:`receiver_resource` from twisted.web on
a loopback port.
"""

from __future__ import annotations

from base64 import b64encode
from typing import Any, Generator

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet import reactor as global_reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, serverFromString
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.test.iosim import IOPump, connect, makeFakeClient, makeFakeServer
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from dccrelay.client.receiver import (
    HANDSHAKE_TIMEOUT,
    DispatchReceiverFactory,
    authorization_matches,
    receiver_resource,
)

SECRET = "admin:c2VjcmV0LXNhdWNl"
PAYLOADS = [
    b'{"t":"MESSAGE_CREATE","s":1,"op":0,"d":{"content":"!bring chips"}}',
    b'{"t": "MESSAGE_CREATE",  "s":2,"d":{"content":"h\xc3\xa9 \xf0\x9f\x8c\xad"}}',
]


def basic(secret: str) -> str:
    return "Basic " + b64encode(secret.encode()).decode()


class AuthorizationTests(TestCase):
    """
    authorization_matches.
    """

    def test_match(self) -> None:
        """
        Basic base64(secret) matches; the scheme's case and surrounding
        spaces do not matter.
        """
        self.assertTrue(authorization_matches(basic(SECRET), SECRET))
        self.assertTrue(authorization_matches(basic(SECRET).replace("Basic", "basic"), SECRET))
        self.assertTrue(authorization_matches("  " + basic(SECRET) + " ", SECRET))
        self.assertTrue(authorization_matches(basic("sécret:ü"), "sécret:ü"))

    def test_mismatch(self) -> None:
        """
        Anything else does not: no header, another secret, another scheme,
        the bare secret, non-ASCII junk.
        """
        self.assertFalse(authorization_matches(None, SECRET))
        self.assertFalse(authorization_matches("", SECRET))
        self.assertFalse(authorization_matches(basic(SECRET + "x"), SECRET))
        self.assertFalse(authorization_matches(basic(SECRET).replace("Basic", "Bearer"), SECRET))
        self.assertFalse(authorization_matches("Basic " + SECRET, SECRET))
        self.assertFalse(authorization_matches(basic(SECRET)[:-1] + "é", SECRET))
        self.assertFalse(authorization_matches(b64encode(SECRET.encode()).decode(), SECRET))


class _RelayStandIn(WebSocketClientProtocol):
    factory: _RelayStandInFactory

    def onOpen(self) -> None:
        self.factory.opened = True


class _RelayStandInFactory(WebSocketClientFactory):
    protocol = _RelayStandIn  # type: ignore[assignment]
    opened = False


class MemoryReceiverTests(TestCase):
    """
    DispatchReceiverFactory with an Autobahn client in memory.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.received: list[bytes] = []
        self.receiver = DispatchReceiverFactory(SECRET, self.received.append, reactor=self.clock)

    def connect(self, authorization: str | None = basic(SECRET)) -> IOPump:
        """
        Connect a stand-in relay sending ``authorization``, in memory.
        """
        headers = {} if authorization is None else {"Authorization": authorization}
        factory = _RelayStandInFactory("ws://bot.example/dcc", headers=headers, reactor=self.clock)
        # Autobahn's timers would land on the global reactor
        factory.setProtocolOptions(
            openHandshakeTimeout=0, closeHandshakeTimeout=0, serverConnectionDropTimeout=0
        )
        client = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 8080))
        assert client is not None
        return self.pump_to(client)

    def pump_to(self, client: object) -> IOPump:
        """
        Connect ``client`` to a new receiver connection, in memory.
        """
        server = self.receiver.buildProtocol(IPv4Address("TCP", "127.0.0.1", 8080))
        return connect(
            server, makeFakeServer(server), client, makeFakeClient(client), clock=self.clock
        )

    def test_dispatches(self) -> None:
        """
        Each text frame reaches on_dispatch as its raw bytes, in order.
        """
        pump = self.connect()
        self.assertTrue(pump.client.factory.opened)
        for payload in PAYLOADS:
            pump.client.sendMessage(payload, isBinary=False)
        pump.flush()
        self.assertEqual(self.received, PAYLOADS)

    def test_wrong_secret(self) -> None:
        """
        Another secret is refused with HTTP 401 in the handshake; nothing is
        dispatched and the secret is not logged.
        """
        with capturedLogs() as events:
            pump = self.connect(basic("admin:guess"))
        self.assertEqual(pump.client.http_status_line.split()[1], "401")
        self.assertFalse(pump.client.factory.opened)
        self.assertTrue(pump.serverIO.disconnected)
        self.assertEqual(self.received, [])
        refusals = [e for e in events if "Refused a websocket connection" in formatEvent(e)]
        self.assertEqual(len(refusals), 1)
        for event in events:
            self.assertNotIn("admin:guess", formatEvent(event) + repr(event))
            self.assertNotIn(SECRET, formatEvent(event) + repr(event))

    def test_no_authorization(self) -> None:
        """
        A handshake without Authorization is refused with HTTP 401.
        """
        pump = self.connect(None)
        self.assertEqual(pump.client.http_status_line.split()[1], "401")
        self.assertTrue(pump.serverIO.disconnected)

    def test_handler_error(self) -> None:
        """
        A handler that raises is logged; the connection stays open and the
        next dispatch is handled.
        """

        def handler(payload: bytes) -> None:
            if payload == PAYLOADS[0]:
                raise ValueError("bad dispatch")
            self.received.append(payload)

        self.receiver.on_dispatch = handler
        pump = self.connect()
        for payload in PAYLOADS:
            pump.client.sendMessage(payload, isBinary=False)
        pump.flush()
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertEqual(self.received, PAYLOADS[1:])
        self.assertEqual(pump.server.state, WebSocketProtocol.STATE_OPEN)

    def test_handler_failed_deferred(self) -> None:
        """
        A handler's failed Deferred is logged too.
        """
        self.receiver.on_dispatch = lambda payload: fail(ValueError("later"))
        pump = self.connect()
        pump.client.sendMessage(PAYLOADS[0], isBinary=False)
        pump.flush()
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertEqual(pump.server.state, WebSocketProtocol.STATE_OPEN)

    def test_handler_does_not_block(self) -> None:
        """
        Dispatches keep coming while a handler's Deferred is pending (v1 has
        no acks to wait for).
        """
        pending: list[Deferred[None]] = []

        def handler(payload: bytes) -> Deferred[None]:
            self.received.append(payload)
            waiting: Deferred[None] = Deferred()
            pending.append(waiting)
            return waiting

        self.receiver.on_dispatch = handler
        pump = self.connect()
        for payload in PAYLOADS:
            pump.client.sendMessage(payload, isBinary=False)
        pump.flush()
        self.assertEqual(self.received, PAYLOADS)
        for waiting in pending:
            waiting.callback(None)

    def test_binary_ignored(self) -> None:
        """
        Binary frames are not dispatches: they are ignored, with a warning.
        """
        pump = self.connect()
        with capturedLogs() as events:
            pump.client.sendMessage(b"\x00\x01", isBinary=True)
            pump.flush()
        self.assertEqual(self.received, [])
        self.assertTrue(any("binary frame" in formatEvent(e) for e in events))
        self.assertEqual(pump.server.state, WebSocketProtocol.STATE_OPEN)

    def test_handshake_timeout(self) -> None:
        """
        A connection that never sends its handshake is cut after
        HANDSHAKE_TIMEOUT seconds, on the injected reactor.
        """
        pump = self.pump_to(Protocol())
        self.clock.advance(HANDSHAKE_TIMEOUT - 0.1)
        pump.flush()
        self.assertFalse(pump.serverIO.disconnected)
        self.clock.advance(0.1)
        pump.flush()
        self.assertTrue(pump.serverIO.disconnected)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_handshake_deadline_cancelled(self) -> None:
        """
        Once the handshake is done no timer is left behind.
        """
        self.connect()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class _RawClient(Protocol):
    """
    Sends one HTTP request and collects the answer until the server closes.
    """

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.answer = b""
        self.closed: Deferred[bytes] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.answer += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.closed.callback(self.answer)


class ResourceTests(TestCase):
    """
    receiver_resource served by twisted.web on a loopback port.
    """

    @inlineCallbacks
    def test_unauthorized_over_http(self) -> Generator[Deferred[Any], Any, None]:
        """
        Behind twisted.web, a handshake with the wrong Authorization is
        answered with HTTP 401 and the connection is closed.
        """
        received: list[bytes] = []
        root = Resource()
        root.putChild(b"dcc", receiver_resource(SECRET, received.append))
        port = yield serverFromString(global_reactor, "tcp:0:interface=127.0.0.1").listen(
            Site(root)
        )
        self.addCleanup(port.stopListening)
        request = (
            b"GET /dcc HTTP/1.1\r\n"
            b"Host: 127.0.0.1\r\n"
            b"Upgrade: websocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n"
            b"Authorization: " + basic("admin:guess").encode() + b"\r\n"
            b"\r\n"
        )
        client = _RawClient(request)
        endpoint = TCP4ClientEndpoint(global_reactor, "127.0.0.1", port.getHost().port)
        yield connectProtocol(endpoint, client)
        answer = yield client.closed
        self.assertTrue(answer.startswith(b"HTTP/1.1 401 "), answer)
        self.assertEqual(received, [])
