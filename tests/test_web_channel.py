"""
Tests for :mod:`dccrelay.web.channel` and the site's time limits: a slow
client ("slow loris") cannot hold a connection open.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Site

from dccrelay.web.channel import IDLE_TIMEOUT, REQUEST_DEADLINE, DeadlineChannel
from dccrelay.web.site import build_site

from .api_harness import Node


class SlowClientTests(SynchronousTestCase):
    """
    A request must arrive in full within REQUEST_DEADLINE seconds, and a
    silent connection is closed after IDLE_TIMEOUT seconds.
    """

    def setUp(self) -> None:
        node = Node()
        self.addCleanup(node.stop)
        self.clock = MemoryReactorClock()
        self.site: Site = build_site(
            node.manager, lambda body: None, reactor=self.clock  # type: ignore[arg-type, return-value]
        )

    def connect(self) -> tuple[Any, StringTransport]:
        channel = self.site.buildProtocol(IPv4Address("TCP", "192.0.2.7", 50000))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.7", 50000))
        channel.makeConnection(transport)
        return channel, transport

    def test_site_settings(self) -> None:
        """
        The site uses the deadline channel and an idle timeout.
        """
        self.assertIs(self.site.protocol, DeadlineChannel)
        self.assertEqual(self.site.timeOut, IDLE_TIMEOUT)
        self.assertLess(REQUEST_DEADLINE, IDLE_TIMEOUT)

    def test_trickled_headers(self) -> None:
        """
        Headers trickling in a byte every few seconds (never idle long
        enough for the idle timeout) get 408 at the deadline and the
        connection is closed.
        """
        channel, transport = self.connect()
        request = b"GET /healthz HTTP/1.1\r\nHost: relay.example\r\nX-Slow: "
        for n in range(int(REQUEST_DEADLINE) // 5 + 1):
            channel.dataReceived(request[n : n + 1] if n < len(request) else b"a")
            self.clock.advance(5)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 408 Request Timeout\r\n"))
        self.assertIn(b'{"error":"the request did not arrive within 30 seconds"}', transport.value())
        self.assertTrue(transport.disconnecting)

    def test_trickled_body(self) -> None:
        """
        A body trickling in is cut off the same way.
        """
        channel, transport = self.connect()
        channel.dataReceived(
            b"PUT /relays/x HTTP/1.1\r\nHost: relay.example\r\nContent-Length: 1000\r\n"
            b"Content-Type: application/json\r\n\r\n{"
        )
        for _ in range(int(REQUEST_DEADLINE) // 5 + 1):
            channel.dataReceived(b" ")
            self.clock.advance(5)
        self.assertIn(b"408 Request Timeout", transport.value())
        self.assertTrue(transport.disconnecting)

    def test_abort_if_not_let_go(self) -> None:
        """
        A client that does not close after the 408 is cut.
        """
        channel, transport = self.connect()
        channel.dataReceived(b"GET / HTTP/1.1\r\n")
        self.clock.advance(REQUEST_DEADLINE)
        self.assertFalse(transport.disconnected)
        self.clock.advance(channel.abortTimeout)
        self.assertTrue(transport.disconnected)

    def test_prompt_requests_unaffected(self) -> None:
        """
        A request that arrives in time is answered; the deadline starts
        again for the next request on the same connection, and a connection
        idle after its last answer is closed without another word.
        """
        channel, transport = self.connect()
        for _ in range(3):
            channel.dataReceived(b"GET /healthz HTTP/1.1\r\nHost: relay.example\r\n\r\n")
            self.clock.advance(REQUEST_DEADLINE - 1)
        self.assertEqual(transport.value().count(b"HTTP/1.1 200 OK"), 3)
        self.clock.advance(1)
        self.assertNotIn(b"408", transport.value())
        self.assertTrue(transport.disconnecting)

    def test_silent_connection(self) -> None:
        """
        A connection on which nothing arrives is closed at the deadline,
        and cut if the client does not let go.
        """
        channel, transport = self.connect()
        self.clock.advance(REQUEST_DEADLINE)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")
        self.clock.advance(IDLE_TIMEOUT)
        self.assertTrue(transport.disconnected)
