"""
Tests for :mod:`dccrelay.delivery.websocket`: websocket v1 delivery.

The first group runs on a ``MemoryReactorClock``: TCP attempts are answered
by hand with ``iosim.ConnectionCompleter``, and the bot on the other end is
the real :class:`DispatchReceiverFactory`, so both ends speak real websocket
frames in memory.  The second group uses real loopback sockets and a
twisted.web server.
"""

from __future__ import annotations

import datetime
from base64 import b64encode
from typing import Any, Callable, Generator, Sequence

import txaio
from autobahn.websocket.protocol import WebSocketProtocol
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    PrivateCertificate,
    optionsForClientTLS,
)
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogEvent, capturedLogs, formatEvent
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.test.iosim import ConnectionCompleter, IOPump
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface.verify import verifyObject

from dccrelay.client.receiver import DispatchReceiverFactory, receiver_resource
from dccrelay.delivery import STATES, IDeliveryChannel
from dccrelay.delivery.websocket import CLOSE_TIMEOUT, STALLED, WebSocketChannel
from tests.channel_builders import status_of, websocket_v1

SECRET = "admin:c2VjcmV0LXNhdWNl"
PORT = 8080
DST = f"ws://bot.example:{PORT}/dcc"
# HostnameEndpoint tries one address every 0.3 s and reports failure only
# once it has run out of addresses, i.e. 0.3 s after the first attempt.
ATTEMPT_DELAY = 0.3

PAYLOADS = [
    b'{"t":"MESSAGE_CREATE","s":1,"op":0,"d":{"content":"!bring chips"}}',
    # odd spacing and non-ASCII: must arrive exactly as given, not re-encoded
    b'{"t": "MESSAGE_CREATE",  "s":2,"op":0,"d":{"content":"h\xc3\xa9 \\u00e9 \xf0\x9f\x8c\xad"}}',
    b'{"t":"MESSAGE_CREATE","s":3,"op":0,"d":{"content":""}}',
]


def linear_policy(attempt: int) -> float:
    """
    A predictable retry policy: 10 s per consecutive failure.
    """
    return 10.0 * attempt


class MemoryDeliveryTests(TestCase):
    """
    WebSocketDelivery against an in-memory bot on a MemoryReactorClock.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.received: list[bytes] = []
        self.completer = ConnectionCompleter(self.clock)
        self.replace_bot(DispatchReceiverFactory(SECRET, self.received.append, reactor=self.clock))

    def replace_bot(self, bot: Factory | DispatchReceiverFactory) -> None:
        """
        Make ``bot`` the server that answers at dst from now on.
        """
        self.bot = bot
        self.clock.tcpServers.clear()
        self.clock.listenTCP(PORT, bot)

    def other_secret_bot(self) -> DispatchReceiverFactory:
        return DispatchReceiverFactory("another secret", self.received.append, reactor=self.clock)

    def channel(self, **kwargs: Any) -> WebSocketChannel:
        options: dict[str, Any] = {
            "alias": "cookout",
            "dst": DST,
            "client_secret": SECRET,
            "retry_policy": linear_policy,
        }
        options.update(kwargs)
        return websocket_v1(self.clock, **options)

    def accept(self) -> IOPump:
        """
        Let the oldest TCP attempt reach the bot, and pump the handshake.
        """
        pump = self.completer.succeedOnce()
        assert pump is not None, "no connection attempt to accept"
        return pump

    def refuse(self) -> None:
        """
        Refuse the oldest TCP attempt, as a host with nothing listening does.
        """
        self.completer.failOnce()
        self.clock.advance(ATTEMPT_DELAY)

    def attempts(self) -> int:
        return len(self.clock.tcpClients)

    def test_interface(self) -> None:
        """
        WebSocketDelivery provides IDeliveryChannel, and its status has the
        documented keys and starting values.
        """
        channel = self.channel()
        verifyObject(IDeliveryChannel, channel)
        self.assertEqual(
            status_of(channel),
            {"state": "idle", "queued": 0, "dropped": 0, "delivered": 0, "lastError": None},
        )

    def test_connects_on_demand(self) -> None:
        """
        No connection is opened until there is a dispatch to deliver; then one
        goes to dst's host and port.
        """
        channel = self.channel()
        self.assertEqual(self.attempts(), 0)
        channel.deliver(PAYLOADS[0])
        self.assertEqual(self.attempts(), 1)
        host, port = self.clock.tcpClients[0][:2]
        self.assertEqual((host, port), ("127.0.0.1", PORT))
        self.assertEqual(status_of(channel)["state"], "connecting")
        self.assertEqual(status_of(channel)["queued"], 1)

    def test_handshake_headers(self) -> None:
        """
        The handshake carries Basic base64(clientSecret) and the User-Agent,
        and asks for no subprotocol.
        """
        channel = self.channel(user_agent="dccrelay/9.9")
        channel.deliver(PAYLOADS[0])
        pump = self.accept()
        headers = pump.server.http_headers
        expected = "Basic " + b64encode(SECRET.encode()).decode()
        self.assertEqual(headers["authorization"], expected)
        self.assertEqual(headers["user-agent"], "dccrelay/9.9")
        self.assertNotIn("sec-websocket-protocol", headers)
        self.assertEqual(pump.server.http_request_path, "/dcc")

    def test_flush_on_open(self) -> None:
        """
        Dispatches queued while connecting are sent as soon as the connection
        opens, in order and byte-identical, without waiting for another
        dispatch (the prototype sent them only when the next one came).
        """
        channel = self.channel()
        for payload in PAYLOADS:
            channel.deliver(payload)
        self.assertEqual(self.received, [])
        self.accept()
        self.assertEqual(self.received, PAYLOADS)
        self.assertEqual(
            status_of(channel),
            {"state": "connected", "queued": 0, "dropped": 0, "delivered": 3, "lastError": None},
        )

    def test_text_frames(self) -> None:
        """
        Each payload travels as one unfragmented text frame.
        """
        frames: list[tuple[bytes, bool]] = []
        channel = self.channel()
        channel.deliver(PAYLOADS[1])
        pump = self.accept()
        server = pump.server
        original = server.onMessage

        def on_message(payload: bytes, isBinary: bool) -> None:
            frames.append((payload, isBinary))
            original(payload, isBinary)

        server.onMessage = on_message
        channel.deliver(PAYLOADS[2])
        pump.flush()
        self.assertEqual(frames, [(PAYLOADS[2], False)])

    def test_sends_at_once_when_connected(self) -> None:
        """
        While connected, a dispatch is written immediately.
        """
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        pump = self.accept()
        channel.deliver(PAYLOADS[1])
        pump.flush()
        self.assertEqual(self.received, PAYLOADS[:2])
        self.assertEqual(self.attempts(), 0)

    def test_on_delivered(self) -> None:
        """
        ``on_delivered`` gets the payloads as they are written, in order.
        """
        taken: list[list[bytes]] = []
        channel = self.channel(on_delivered=taken.append)
        channel.deliver(PAYLOADS[0])
        channel.deliver(PAYLOADS[1])
        self.assertEqual(taken, [])
        pump = self.accept()
        channel.deliver(PAYLOADS[2])
        pump.flush()
        self.assertEqual(taken, [PAYLOADS[:2], PAYLOADS[2:3]])

    def test_annotate(self) -> None:
        """
        ``annotate`` changes what is written, not what ``on_delivered``
        reports.
        """
        taken: list[bytes] = []
        channel = self.channel(
            annotate=lambda p: b"[" + p + b"]" if p == PAYLOADS[0] else p,
            on_delivered=taken.extend,
        )
        channel.deliver(PAYLOADS[0])
        channel.deliver(PAYLOADS[1])
        pump = self.accept()
        pump.flush()
        self.assertEqual(self.received, [b"[" + PAYLOADS[0] + b"]", PAYLOADS[1]])
        self.assertEqual(taken, PAYLOADS[:2])

    def test_overflow_drops_oldest(self) -> None:
        """
        1,500 dispatches while the bot is unreachable keep the newest 1,000
        and count 500 dropped (the prototype emptied its whole queue at the
        1,001st); the 1,000 kept are delivered in order once it connects.
        """
        channel = self.channel()
        payloads = [b'{"s":%d}' % n for n in range(1500)]
        with capturedLogs() as events:
            for payload in payloads:
                channel.deliver(payload)
        self.assertEqual(status_of(channel)["queued"], 1000)
        self.assertEqual(status_of(channel)["dropped"], 500)
        self.assertEqual(channel.pending(), payloads[500:])
        drop_warnings = [e for e in events if "dropping the oldest" in formatEvent(e)]
        self.assertEqual(len(drop_warnings), 1)
        self.accept()
        self.assertEqual(self.received, payloads[500:])
        self.assertEqual(status_of(channel)["delivered"], 1000)
        self.assertEqual(status_of(channel)["dropped"], 500)

    def test_queue_limit(self) -> None:
        """
        queue_limit sets how many dispatches are kept.
        """
        channel = self.channel(queue_limit=2)
        for payload in PAYLOADS:
            channel.deliver(payload)
        self.assertEqual(channel.pending(), PAYLOADS[1:])
        self.assertEqual(status_of(channel)["dropped"], 1)

    def test_idle_close(self) -> None:
        """
        After idle_timeout seconds with nothing sent, the connection is closed
        with code 1000; the next dispatch opens a new one.
        """
        channel = self.channel(idle_timeout=60.0)
        channel.deliver(PAYLOADS[0])
        pump = self.accept()
        self.clock.advance(59.0)
        pump.flush()
        self.assertEqual(pump.server.state, WebSocketProtocol.STATE_OPEN)
        self.clock.advance(1.0)
        pump.flush()
        self.assertEqual(pump.server.state, WebSocketProtocol.STATE_CLOSED)
        self.assertEqual(pump.server.remoteCloseCode, 1000)
        self.assertEqual(status_of(channel)["state"], "idle")
        self.assertIsNone(status_of(channel)["lastError"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

        channel.deliver(PAYLOADS[1])
        self.assertEqual(self.attempts(), 1)
        self.accept()
        self.assertEqual(self.received, PAYLOADS[:2])

    def test_connected(self) -> None:
        """
        ``connected`` is True exactly while status() shows "connected": from
        the handshake until the connection closes.
        """
        channel = self.channel(idle_timeout=60.0)
        self.assertFalse(channel.connected)
        channel.deliver(PAYLOADS[0])
        self.assertEqual(status_of(channel)["state"], "connecting")
        self.assertFalse(channel.connected)
        pump = self.accept()
        self.assertEqual(status_of(channel)["state"], "connected")
        self.assertTrue(channel.connected)
        self.assertEqual(channel.snapshot().delivered, 1)
        self.clock.advance(60.0)
        pump.flush()
        self.assertEqual(status_of(channel)["state"], "idle")
        self.assertFalse(channel.connected)

    def test_idle_period_restarts_on_send(self) -> None:
        """
        Each dispatch sent starts the idle period again.
        """
        channel = self.channel(idle_timeout=60.0)
        channel.deliver(PAYLOADS[0])
        pump = self.accept()
        self.clock.advance(50.0)
        channel.deliver(PAYLOADS[1])
        pump.flush()
        self.clock.advance(50.0)
        pump.flush()
        self.assertEqual(pump.server.state, WebSocketProtocol.STATE_OPEN)
        self.clock.advance(10.0)
        pump.flush()
        self.assertEqual(pump.server.state, WebSocketProtocol.STATE_CLOSED)

    def test_dispatch_during_idle_close(self) -> None:
        """
        A dispatch that comes while the idle close is under way waits, and a
        new connection carries it once the old one is gone.
        """
        channel = self.channel(idle_timeout=60.0)
        channel.deliver(PAYLOADS[0])
        pump = self.accept()
        self.clock.advance(60.0)
        channel.deliver(PAYLOADS[1])
        self.assertEqual(status_of(channel)["state"], "connecting")
        pump.flush()
        self.assertEqual(self.received, PAYLOADS[:1])
        self.assertEqual(self.attempts(), 1)
        self.accept()
        self.assertEqual(self.received, PAYLOADS[:2])

    def test_bot_closes(self) -> None:
        """
        When the bot closes the connection, nothing reconnects until there is
        something to send.
        """
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        pump = self.accept()
        pump.server.sendClose(code=1000)
        pump.flush()
        self.assertEqual(status_of(channel)["state"], "idle")
        self.assertIsNone(status_of(channel)["lastError"])
        self.assertEqual(self.attempts(), 0)
        channel.deliver(PAYLOADS[1])
        self.accept()
        self.assertEqual(self.received, PAYLOADS[:2])

    def test_bot_closes_but_keeps_tcp(self) -> None:
        """
        A bot that sends a close frame but never drops TCP is cut off
        CLOSE_TIMEOUT seconds later, so its queued dispatches can go on a new
        connection.
        """
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        pump = self.accept()
        pump.server.dropConnection = lambda abort=False: None
        pump.server.sendClose(code=1000)
        pump.flush()
        channel.deliver(PAYLOADS[1])
        self.assertFalse(pump.clientIO.disconnected)
        self.clock.advance(CLOSE_TIMEOUT)
        pump.flush()
        self.assertTrue(pump.clientIO.disconnected)
        self.accept()
        self.assertEqual(self.received, PAYLOADS[:2])

    def test_bot_drops(self) -> None:
        """
        A connection that drops without a close handshake is reported in
        lastError; the next dispatch reconnects.
        """
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        pump = self.accept()
        pump.server.transport.abortConnection()
        pump.flush()
        self.assertEqual(status_of(channel)["state"], "idle")
        self.assertEqual(status_of(channel)["lastError"], "the connection to the bot was lost")
        channel.deliver(PAYLOADS[1])
        self.accept()
        self.assertEqual(self.received, PAYLOADS[:2])
        self.assertIsNone(status_of(channel)["lastError"])

    def test_retry_schedule(self) -> None:
        """
        An unreachable bot is retried after retry_policy(attempt) seconds,
        attempt counting consecutive failures from 1 and starting again after
        a success.
        """
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        self.refuse()
        status = status_of(channel)
        self.assertEqual(status["state"], "waiting to retry")
        self.assertEqual(status["lastError"], "connection refused")
        self.assertEqual(status["queued"], 1)

        self.clock.advance(9.9)
        self.assertEqual(self.attempts(), 0)
        self.clock.advance(0.1)
        self.assertEqual(self.attempts(), 1)
        self.assertEqual(status_of(channel)["state"], "connecting")
        self.refuse()
        self.clock.advance(19.9)
        self.assertEqual(self.attempts(), 0)
        self.clock.advance(0.1)
        self.assertEqual(self.attempts(), 1)

        pump = self.accept()
        self.assertEqual(self.received, PAYLOADS[:1])
        self.assertIsNone(status_of(channel)["lastError"])

        # after a success, the first failure waits retry_policy(1) again
        self.clock.advance(60.0)
        pump.flush()
        channel.deliver(PAYLOADS[1])
        self.refuse()
        self.clock.advance(9.9)
        self.assertEqual(self.attempts(), 0)
        self.clock.advance(0.1)
        self.assertEqual(self.attempts(), 1)

    def test_dispatch_while_waiting_keeps_schedule(self) -> None:
        """
        Dispatches arriving while waiting to retry join the queue; they do not
        hurry the retry.
        """
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        self.refuse()
        channel.deliver(PAYLOADS[1])
        self.assertEqual(self.attempts(), 0)
        self.assertEqual(status_of(channel)["state"], "waiting to retry")
        self.clock.advance(10.0)
        self.accept()
        self.assertEqual(self.received, PAYLOADS[:2])

    def test_unauthorized(self) -> None:
        """
        A bot that answers the handshake with 401 is retried, and lastError
        names the status without any secret.
        """
        self.replace_bot(self.other_secret_bot())
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        self.accept()
        status = status_of(channel)
        self.assertEqual(status["state"], "waiting to retry")
        self.assertEqual(status["lastError"], "bot answered HTTP 401 to the websocket handshake")
        self.assertEqual(self.received, [])
        self.assertEqual(channel.pending(), PAYLOADS[:1])
        self.clock.advance(10.0)
        self.assertEqual(self.attempts(), 1)

    def test_not_a_websocket(self) -> None:
        """
        A bot URL that answers with plain HTTP (here 404) is reported with its
        status code.
        """

        class NotFound(Protocol):
            def dataReceived(self, data: bytes) -> None:
                assert self.transport is not None
                if b"\r\n\r\n" in data:
                    self.transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    self.transport.loseConnection()

        self.replace_bot(Factory.forProtocol(NotFound))
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        self.accept()
        self.assertEqual(
            status_of(channel)["lastError"], "bot answered HTTP 404 to the websocket handshake"
        )

    def test_connect_timeout(self) -> None:
        """
        A TCP attempt that neither succeeds nor fails is given up after
        connect_timeout seconds and retried.
        """
        channel = self.channel(connect_timeout=30.0)
        channel.deliver(PAYLOADS[0])
        self.clock.advance(29.9)
        self.assertEqual(status_of(channel)["state"], "connecting")
        self.clock.advance(0.1)
        status = status_of(channel)
        self.assertEqual(status["state"], "waiting to retry")
        self.assertEqual(status["lastError"], "could not connect to the bot within 30 s")
        self.assertTrue(self.clock.connectors[0].stoppedConnecting)
        self.clock.advance(10.0)
        self.assertEqual(len(self.clock.tcpClients), 2)

    def test_handshake_timeout(self) -> None:
        """
        A bot that accepts TCP but never answers the handshake is cut off
        after connect_timeout seconds, on the injected clock, and retried.
        """
        self.replace_bot(Factory.forProtocol(Protocol))
        channel = self.channel(connect_timeout=30.0)
        channel.deliver(PAYLOADS[0])
        pump = self.accept()
        self.clock.advance(30.0)
        pump.flush()
        self.assertTrue(pump.clientIO.disconnected)
        status = status_of(channel)
        self.assertEqual(status["state"], "waiting to retry")
        self.assertEqual(
            status["lastError"], "the bot did not answer the websocket handshake within 30 s"
        )
        self.assertEqual(channel.pending(), PAYLOADS[:1])

    def test_stop_connected(self) -> None:
        """
        stop() closes with code 1000 and fires once the connection is gone;
        dispatches given afterwards stay in pending() and no timer is left.
        """
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        pump = self.accept()
        stopped = channel.stop()
        self.assertNoResult(stopped)
        pump.flush()
        self.assertIsNone(self.successResultOf(stopped))
        self.assertEqual(pump.server.remoteCloseCode, 1000)
        channel.deliver(PAYLOADS[1])
        self.assertEqual(channel.pending(), PAYLOADS[1:2])
        self.assertEqual(status_of(channel)["state"], "stopped")
        self.assertEqual(self.attempts(), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_unanswered_close(self) -> None:
        """
        A bot that never completes the close handshake cannot hold stop() up
        for more than CLOSE_TIMEOUT seconds.
        """
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        pump = self.accept()
        stopped = channel.stop()
        self.clock.advance(CLOSE_TIMEOUT)
        self.assertNoResult(stopped)
        # the abort happened; delivering it is the transport's business
        pump.flush()
        self.successResultOf(stopped)

    def test_stop_waiting(self) -> None:
        """
        stop() while waiting to retry cancels the retry and fires at once; the
        queued dispatches stay in pending().
        """
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        self.refuse()
        self.successResultOf(channel.stop())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(channel.pending(), PAYLOADS[:1])

    def test_stop_connecting(self) -> None:
        """
        stop() while TCP is connecting cancels the attempt and fires at once.
        """
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        self.successResultOf(channel.stop())
        self.assertTrue(self.clock.connectors[0].stoppedConnecting)
        self.assertEqual(status_of(channel)["state"], "stopped")
        self.assertEqual(status_of(channel)["lastError"], None)

    def test_stop_during_handshake(self) -> None:
        """
        stop() during the websocket handshake cuts the connection and fires
        once it is gone.
        """
        self.replace_bot(Factory.forProtocol(Protocol))
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        pump = self.accept()
        stopped = channel.stop()
        pump.flush()
        self.successResultOf(stopped)
        self.assertEqual(channel.pending(), PAYLOADS[:1])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_replacement_takes_pending(self) -> None:
        """
        A channel built with initial=old.pending() connects at once and
        delivers them; initial items obey queue_limit too.
        """
        old = self.channel()
        for payload in PAYLOADS:
            old.deliver(payload)
        self.successResultOf(old.stop())
        self.clock.tcpClients.clear()
        self.clock.connectors.clear()

        new = self.channel(initial=old.pending(), queue_limit=2)
        self.assertEqual(status_of(new)["dropped"], 1)
        self.assertEqual(self.attempts(), 1)
        self.accept()
        self.assertEqual(self.received, PAYLOADS[1:])

    def test_deliver_never_raises(self) -> None:
        """
        deliver() logs what it cannot take (here a str, which would not be
        the original bytes) instead of raising.
        """
        channel = self.channel()
        with capturedLogs() as events:
            channel.deliver("not bytes")  # type: ignore[arg-type]
        self.assertEqual(channel.pending(), [])
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)
        self.assertTrue(any("cookout" in formatEvent(e) for e in events))

    def test_no_global_reactor_timers(self) -> None:
        """
        A whole cycle (connect, deliver, idle close, 401, retry) schedules
        nothing on the global reactor: every timer is on the injected one.
        """
        before = set(global_reactor.getDelayedCalls())
        channel = self.channel(idle_timeout=1.0)
        channel.deliver(PAYLOADS[0])
        pump = self.accept()
        self.clock.advance(1.0)
        pump.flush()
        self.replace_bot(self.other_secret_bot())
        channel.deliver(PAYLOADS[1])
        self.accept()
        self.clock.advance(10.0)
        self.successResultOf(channel.stop())
        self.assertEqual(set(global_reactor.getDelayedCalls()), before)

    def test_logs_alias_never_secret(self) -> None:
        """
        Logs name the alias and never contain the secret or its base64, even
        with txaio (Autobahn's logging) turned up to debug.
        """
        level = txaio.get_global_log_level()  # type: ignore[attr-defined]
        txaio.set_global_log_level("debug")  # type: ignore[attr-defined]
        self.addCleanup(txaio.set_global_log_level, level)  # type: ignore[attr-defined]
        with capturedLogs() as events:
            channel = self.channel(idle_timeout=1.0)
            channel.deliver(PAYLOADS[0])
            pump = self.accept()
            self.clock.advance(1.0)
            pump.flush()
            self.replace_bot(self.other_secret_bot())
            channel.deliver(PAYLOADS[1])
            self.accept()
            self.successResultOf(channel.stop())
        self.assertSecretAbsent(events)
        self.assertTrue(any("cookout" in formatEvent(e) for e in events))

    def assertSecretAbsent(self, events: Sequence[LogEvent]) -> None:
        encoded = b64encode(SECRET.encode()).decode()
        for event in events:
            text = formatEvent(event) + repr(event)
            self.assertNotIn(SECRET, text)
            self.assertNotIn(encoded, text)

    def test_states_documented(self) -> None:
        """
        Every state status() reports is one of delivery.STATES.
        """
        channel = self.channel()
        seen = {status_of(channel)["state"]}
        channel.deliver(PAYLOADS[0])
        seen.add(status_of(channel)["state"])
        self.refuse()
        seen.add(status_of(channel)["state"])
        self.clock.advance(10.0)
        pump = self.accept()
        seen.add(status_of(channel)["state"])
        stopped = channel.stop()
        pump.flush()
        self.successResultOf(stopped)
        seen.add(status_of(channel)["state"])
        self.assertEqual(seen, set(STATES))

    def test_pause_keeps_dispatches_queued(self) -> None:
        """
        While the transport has paused the channel, dispatches wait in the
        queue (the oldest dropped past the limit, and counted); when it
        resumes they are written in order.  Status says the bot is not
        reading meanwhile.
        """
        channel = self.channel(queue_limit=2)
        channel.deliver(PAYLOADS[0])
        pump = self.accept()
        transport = pump.clientIO
        self.assertIsNotNone(transport.producer)
        transport.producer.pauseProducing()
        for payload in PAYLOADS:
            channel.deliver(payload)
        pump.flush()
        self.assertEqual(self.received, PAYLOADS[:1])
        status = status_of(channel)
        self.assertEqual(
            (status["queued"], status["dropped"], status["delivered"]), (2, 1, 1)
        )
        self.assertEqual(status["lastError"], STALLED)

        transport.producer.resumeProducing()
        pump.flush()
        self.assertEqual(self.received, PAYLOADS[:1] + PAYLOADS[1:])
        status = status_of(channel)
        self.assertEqual(
            (status["queued"], status["dropped"], status["delivered"]), (0, 1, 3)
        )
        self.assertIsNone(status["lastError"])

    def test_new_connection_not_paused(self) -> None:
        """
        A pause belongs to the connection: the next one writes at once.
        """
        channel = self.channel(idle_timeout=5.0)
        channel.deliver(PAYLOADS[0])
        pump = self.accept()
        pump.clientIO.producer.pauseProducing()
        pump.clientIO.loseConnection()
        pump.flush()
        channel.deliver(PAYLOADS[1])
        pump = self.accept()
        pump.flush()
        self.assertEqual(self.received, PAYLOADS[:2])
        self.assertIsNone(status_of(channel)["lastError"])


class _ConnectionTracker(WrappingFactory):
    """
    Wraps a server factory to know when every server-side connection is
    gone (the websocket resource takes the connection over from the HTTP
    channel, but the wrapper stays in place), and what close code each
    websocket connection received.
    """

    def __init__(self, wrapped: IProtocolFactory) -> None:
        super().__init__(wrapped)
        self.connections = 0
        self.close_codes: list[int | None] = []
        self._idle_waiters: list[Deferred[None]] = []

    def registerProtocol(self, p: ProtocolWrapper) -> None:
        super().registerProtocol(p)
        self.connections += 1

    def unregisterProtocol(self, p: ProtocolWrapper) -> None:
        super().unregisterProtocol(p)
        inner = p.wrappedProtocol
        while isinstance(inner, ProtocolWrapper):  # TLS
            inner = inner.wrappedProtocol
        self.close_codes.append(getattr(inner, "remoteCloseCode", None))
        if not self.protocols:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                waiter.callback(None)

    def all_closed(self) -> Deferred[None]:
        """
        Fires when no server-side connection is left.
        """
        if not self.protocols:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._idle_waiters.append(waiter)
        return waiter


class LoopbackBot:
    """
    A bot's web server with :func:`receiver_resource` at ``/dcc``, on a
    loopback port.
    """

    def __init__(self, secret: str = SECRET, tls: CertificateOptions | None = None) -> None:
        self.received: list[bytes] = []
        self._waiters: list[tuple[int, Deferred[None]]] = []
        root = Resource()
        root.putChild(b"dcc", receiver_resource(secret, self._on_dispatch))
        site: IProtocolFactory = Site(root)
        if tls is not None:
            # TLS inside the tracker, so the websocket sees a TLS transport
            site = TLSMemoryBIOFactory(tls, False, site)
        self.tracker = _ConnectionTracker(site)
        self.port_number = 0
        self._port: IListeningPort | None = None

    @inlineCallbacks
    def start(self) -> Generator[Deferred[Any], Any, None]:
        """
        Listen, on the port used before if there was one.
        """
        endpoint = serverFromString(
            global_reactor, f"tcp:{self.port_number}:interface=127.0.0.1"
        )
        self._port = yield endpoint.listen(self.tracker)
        assert self._port is not None
        self.port_number = self._port.getHost().port

    @inlineCallbacks
    def stop(self) -> Generator[Deferred[Any], Any, None]:
        """
        Stop listening and wait until every server-side connection is gone.
        """
        if self._port is not None:
            port, self._port = self._port, None
            stopped = port.stopListening()
            if stopped is not None:
                yield stopped
        yield self.tracker.all_closed()

    @property
    def dst(self) -> str:
        return f"ws://127.0.0.1:{self.port_number}/dcc"

    def _on_dispatch(self, payload: bytes) -> None:
        self.received.append(payload)
        ready = [w for w in self._waiters if len(self.received) >= w[0]]
        for waiter in ready:
            self._waiters.remove(waiter)
            waiter[1].callback(None)

    def wait_for(self, count: int) -> Deferred[None]:
        """
        Fires once ``count`` dispatches have arrived.
        """
        if len(self.received) >= count:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiters.append((count, waiter))
        return waiter.addTimeout(5.0, global_reactor)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> Deferred[None]:
    """
    Fires once ``predicate()`` holds, polling the real reactor; fails after
    ``timeout`` seconds.
    """
    done: Deferred[None] = Deferred()
    started = global_reactor.seconds()

    def check() -> None:
        if predicate():
            done.callback(None)
        elif global_reactor.seconds() - started > timeout:
            done.errback(AssertionError("condition not met in time"))
        else:
            global_reactor.callLater(0.01, check)

    check()
    return done


class LoopbackDeliveryTests(TestCase):
    """
    WebSocketDelivery and receiver_resource over real loopback sockets.
    """

    @inlineCallbacks
    def setUp(self) -> Generator[Deferred[Any], Any, None]:
        self.bot = LoopbackBot()
        yield self.bot.start()
        self.addCleanup(self.bot.stop)

    def channel(self, **kwargs: Any) -> WebSocketChannel:
        options: dict[str, Any] = {
            "alias": "cookout",
            "dst": self.bot.dst,
            "client_secret": SECRET,
            "retry_policy": lambda attempt: 0.05,
            "connect_timeout": 5.0,
        }
        options.update(kwargs)
        channel = websocket_v1(global_reactor, **options)
        # cleanups run last-in first-out: the channel stops before the bot
        self.addCleanup(channel.stop)
        return channel

    @inlineCallbacks
    def test_delivers_in_order(self) -> Generator[Deferred[Any], Any, None]:
        """
        Payloads arrive at the bot byte-identical and in order, and the bot
        saw one connection.
        """
        channel = self.channel()
        payloads = PAYLOADS + [b'{"s":%d,"d":"%s"}' % (n, b"x" * n) for n in range(200)]
        for payload in payloads:
            channel.deliver(payload)
        yield self.bot.wait_for(len(payloads))
        self.assertEqual(self.bot.received, payloads)
        self.assertEqual(self.bot.tracker.connections, 1)
        self.assertEqual(status_of(channel)["delivered"], len(payloads))

    @inlineCallbacks
    def test_wrong_secret(self) -> Generator[Deferred[Any], Any, None]:
        """
        A bot with another secret refuses with 401; the channel keeps the
        dispatch, says why in lastError, and retries.
        """
        channel = self.channel(client_secret="admin:not-the-right-one")
        channel.deliver(PAYLOADS[0])
        yield wait_until(lambda: self.bot.tracker.connections >= 2)
        status = status_of(channel)
        self.assertEqual(status["lastError"], "bot answered HTTP 401 to the websocket handshake")
        self.assertIn(status["state"], ("waiting to retry", "connecting"))
        self.assertEqual(channel.pending(), PAYLOADS[:1])
        self.assertEqual(self.bot.received, [])

    @inlineCallbacks
    def test_bot_down_then_up(self) -> Generator[Deferred[Any], Any, None]:
        """
        While the bot is down dispatches wait ("connection refused"); when it
        comes back they are delivered on the next retry, without a new
        dispatch to prompt them.
        """
        yield self.bot.stop()
        channel = self.channel(retry_policy=lambda attempt: 0.1)
        for payload in PAYLOADS:
            channel.deliver(payload)
        yield wait_until(lambda: status_of(channel)["lastError"] == "connection refused")
        self.assertEqual(status_of(channel)["queued"], 3)
        yield self.bot.start()
        yield self.bot.wait_for(3)
        self.assertEqual(self.bot.received, PAYLOADS)
        self.assertIsNone(status_of(channel)["lastError"])

    @inlineCallbacks
    def test_idle_close(self) -> Generator[Deferred[Any], Any, None]:
        """
        After idle_timeout with nothing sent the relay closes with 1000; a
        later dispatch opens a new connection.
        """
        channel = self.channel(idle_timeout=0.2)
        channel.deliver(PAYLOADS[0])
        yield self.bot.wait_for(1)
        opened = global_reactor.seconds()
        yield wait_until(lambda: self.bot.tracker.close_codes != [])
        self.assertGreaterEqual(global_reactor.seconds() - opened, 0.15)
        self.assertEqual(self.bot.tracker.close_codes, [1000])
        yield wait_until(lambda: status_of(channel)["state"] == "idle")
        self.assertIsNone(status_of(channel)["lastError"])

        channel.deliver(PAYLOADS[1])
        yield self.bot.wait_for(2)
        self.assertEqual(self.bot.tracker.connections, 2)
        self.assertEqual(self.bot.received, PAYLOADS[:2])

    @inlineCallbacks
    def test_stop(self) -> Generator[Deferred[Any], Any, None]:
        """
        stop() closes with 1000 and fires after the connection is gone.
        """
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        yield self.bot.wait_for(1)
        yield channel.stop()
        yield self.bot.tracker.all_closed()
        self.assertEqual(self.bot.tracker.close_codes, [1000])
        self.assertEqual(status_of(channel)["state"], "stopped")


def self_signed(hostname: str) -> tuple[bytes, bytes]:
    """
    :return: a private key and a self-signed certificate for ``hostname``,
        both PEM.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)


class TLSLoopbackDeliveryTests(TestCase):
    """
    wss:// delivery verifies the bot's certificate and host name.
    """

    @inlineCallbacks
    def start_bot(self, certificate_host: str) -> Generator[Deferred[Any], Any, bytes]:
        key_pem, cert_pem = self_signed(certificate_host)
        server_options = PrivateCertificate.loadPEM(key_pem + cert_pem).options()
        self.bot = LoopbackBot(tls=server_options)
        yield self.bot.start()
        self.addCleanup(self.bot.stop)
        return cert_pem

    def channel(self, **kwargs: Any) -> WebSocketChannel:
        options: dict[str, Any] = {
            "alias": "cookout",
            "dst": f"wss://localhost:{self.bot.port_number}/dcc",
            "client_secret": SECRET,
            "retry_policy": lambda attempt: 0.05,
            "connect_timeout": 5.0,
        }
        options.update(kwargs)
        channel = websocket_v1(global_reactor, **options)
        self.addCleanup(channel.stop)
        return channel

    @inlineCallbacks
    def test_trusted(self) -> Generator[Deferred[Any], Any, None]:
        """
        With the bot's certificate trusted, wss:// delivers byte-identical
        payloads.
        """
        cert_pem = yield self.start_bot("localhost")
        trusted = Certificate.loadPEM(cert_pem)
        channel = self.channel(
            tls_options_for=lambda host: optionsForClientTLS(host, trustRoot=trusted)
        )
        for payload in PAYLOADS:
            channel.deliver(payload)
        yield self.bot.wait_for(3)
        self.assertEqual(self.bot.received, PAYLOADS)

    @inlineCallbacks
    def test_untrusted(self) -> Generator[Deferred[Any], Any, None]:
        """
        By default a certificate nobody vouches for is refused, and lastError
        says that TLS failed.
        """
        yield self.start_bot("localhost")
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        yield wait_until(lambda: status_of(channel)["lastError"] is not None)
        self.assertEqual(
            status_of(channel)["lastError"],
            "TLS handshake with the bot failed: certificate verify failed",
        )
        self.assertEqual(self.bot.received, [])
        self.assertEqual(channel.pending(), PAYLOADS[:1])

    @inlineCallbacks
    def test_wrong_host_name(self) -> Generator[Deferred[Any], Any, None]:
        """
        A trusted certificate for another host name is refused too
        (service_identity).
        """
        cert_pem = yield self.start_bot("other.example")
        trusted = Certificate.loadPEM(cert_pem)
        channel = self.channel(
            tls_options_for=lambda host: optionsForClientTLS(host, trustRoot=trusted)
        )
        channel.deliver(PAYLOADS[0])
        yield wait_until(lambda: status_of(channel)["lastError"] is not None)
        self.assertEqual(
            status_of(channel)["lastError"],
            "the bot's TLS certificate does not match its host name",
        )
        self.assertEqual(self.bot.received, [])

