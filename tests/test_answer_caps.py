"""
Tests for :mod:`dccrelay.net.answer_caps` and the handshake cap of
:mod:`dccrelay.net.websocket`: what the relay reads of an answer from a
bot's URL stays within its caps, driven with ``StringTransport``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import treq
from autobahn.twisted.websocket import WebSocketClientFactory
from autobahn.websocket import protocol as autobahn_protocol
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web._newclient import Request, ResponseFailed
from twisted.web.http_headers import Headers

from dccrelay.net.answer_caps import (
    AnswerCaps,
    AnswerTooLarge,
    _CappedClientProtocol,
    _CappedResponse,
    _too_large_plainly,
)
from dccrelay.net.websocket import AUTOBAHN_TIMERS_OFF, CappedHandshakeProtocol

CAPS = AnswerCaps(head_bytes=200, header_lines=5, body_bytes=1000)


def _connection(caps: AnswerCaps = CAPS) -> tuple[_CappedClientProtocol, StringTransport, Any]:
    quiescent: list[Any] = []
    protocol = _CappedClientProtocol(quiescent.append, caps)
    transport = StringTransport()
    protocol.makeConnection(transport)
    d = protocol.request(Request(b"GET", b"/wake", Headers({b"host": [b"bot"]}), None, True))
    return protocol, transport, (d, quiescent)


class HeadCapTests(SynchronousTestCase):
    """
    An answer's head is counted line by line before Twisted's parser keeps
    it; past a cap the connection is cut and the request fails with
    :class:`AnswerTooLarge`.
    """

    def _refused(self, d: Any) -> str:
        failure = self.failureResultOf(d, ResponseFailed)
        cause = _too_large_plainly(failure)
        self.assertIsInstance(cause, Failure)
        self.assertTrue(cause.check(AnswerTooLarge), cause)
        return str(cause.value)

    def test_within_caps(self) -> None:
        """
        An answer within the caps is Twisted's as before: the response, its
        body, and the connection back to the pool.
        """
        protocol, transport, (d, quiescent) = _connection()
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\nok")
        response = self.successResultOf(d)
        self.assertEqual(response.code, 200)
        self.assertEqual(self.successResultOf(treq.content(response)), b"ok")
        self.assertEqual(quiescent, [protocol])
        self.assertFalse(transport.disconnecting)

    def test_head_exactly_at_the_cap(self) -> None:
        """
        A head of exactly ``head_bytes`` bytes passes, even fed one byte at
        a time; one byte more is refused.
        """
        head = b"HTTP/1.1 204 No Content\r\nX-Pad: "
        head += b"p" * (CAPS.head_bytes - len(head) - 4) + b"\r\n\r\n"
        self.assertEqual(len(head), CAPS.head_bytes)
        protocol, _, (d, _) = _connection()
        for i in range(len(head)):
            protocol.dataReceived(head[i : i + 1])
        self.assertEqual(self.successResultOf(d).code, 204)

        protocol, transport, (d, _) = _connection()
        protocol.dataReceived(head[:-4] + b"p\r\n\r\n")
        self.assertEqual(self._refused(d), "its headers were over 200 bytes (--max-answer-head)")
        self.assertTrue(transport.disconnecting)

    def test_endless_header_lines(self) -> None:
        """
        Header lines without end: refused once there are more than
        ``header_lines``, whatever else is in the same read.
        """
        protocol, transport, (d, _) = _connection(AnswerCaps(head_bytes=10**6, header_lines=5))
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 100_000)
        self.assertEqual(self._refused(d), "it had over 5 header lines (--max-answer-headers)")
        self.assertTrue(transport.disconnecting)
        # nothing after the cut reaches a parser
        protocol.dataReceived(b"X: y\r\n" * 10)

    def test_one_endless_line(self) -> None:
        """
        One header line without end (no newline ever) is refused at the
        byte cap, not kept: Twisted's own line limit (16 KiB, and a slow
        TLS close) never comes first.
        """
        caps = AnswerCaps(head_bytes=64 * 1024)
        protocol, transport, (d, _) = _connection(caps)
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nX-Long: ")
        for _ in range(10):
            protocol.dataReceived(b"a" * 8192)
        self.assertEqual(
            self._refused(d), "its headers were over 65536 bytes (--max-answer-head)"
        )
        self.assertTrue(transport.disconnecting)

    def test_counted_per_answer(self) -> None:
        """
        The count starts again with each request on a kept connection.
        """
        protocol, _, (d, _) = _connection()
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nA: 1\r\nB: 2\r\n\r\n"
        protocol.dataReceived(answer)
        self.successResultOf(d)
        for _ in range(5):
            d = protocol.request(Request(b"GET", b"/", Headers({b"host": [b"bot"]}), None, True))
            protocol.dataReceived(answer)
            self.assertEqual(self.successResultOf(d).code, 200)


class BodyCapTests(SynchronousTestCase):
    """
    A body is read as it streams and passed on until ``body_bytes``; past
    it the reading fails with :class:`AnswerTooLarge` and the connection's
    producer is stopped (which closes a real connection).
    """

    def _response(self, length: int) -> tuple[Any, StringTransport, _CappedClientProtocol]:
        protocol, transport, (d, _) = _connection()
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % length)
        return _CappedResponse(self.successResultOf(d), CAPS.body_bytes), transport, protocol

    def test_within(self) -> None:
        """A body of exactly ``body_bytes`` is read whole."""
        response, _, protocol = self._response(1000)
        chunks: list[bytes] = []
        done = treq.collect(response, chunks.append)
        protocol.dataReceived(b"b" * 1000)
        self.successResultOf(done)
        self.assertEqual(b"".join(chunks), b"b" * 1000)

    def test_over(self) -> None:
        """
        One byte over: what came before the cap was passed on, the rest is
        dropped, and the reading fails naming the cap.
        """
        response, transport, protocol = self._response(5000)
        chunks: list[bytes] = []
        done = treq.collect(response, chunks.append)
        protocol.dataReceived(b"b" * 600)
        protocol.dataReceived(b"b" * 401)
        failure = self.failureResultOf(done, AnswerTooLarge)
        self.assertEqual(str(failure.value), "its body was over 1000 bytes (--max-answer-body)")
        self.assertEqual(b"".join(chunks), b"b" * 600)
        self.assertEqual(transport.producerState, "stopped")
        protocol.dataReceived(b"b" * 1000)
        self.assertEqual(b"".join(chunks), b"b" * 600)

    def test_chunked(self) -> None:
        """A chunked body is counted as decoded."""
        protocol, _, (d, _) = _connection()
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        response = _CappedResponse(self.successResultOf(d), CAPS.body_bytes)
        done = treq.collect(response, lambda data: None)
        for _ in range(3):
            protocol.dataReceived(b"190\r\n" + b"c" * 400 + b"\r\n")
        self.failureResultOf(done, AnswerTooLarge)


class _TCPLikeTransport(StringTransport):
    """
    A real transport lets a protocol unregister a producer it never
    registered (Autobahn does so on dropping a connection).
    """

    def unregisterProducer(self) -> None:
        if self.producer is not None:
            super().unregisterProducer()


class _Client(CappedHandshakeProtocol):
    opened = False

    def onOpen(self) -> None:
        self.opened = True


def _handshaking(caps: AnswerCaps) -> tuple[_Client, StringTransport, bytes]:
    factory = WebSocketClientFactory("ws://bot.example/ws")
    factory.setProtocolOptions(**AUTOBAHN_TIMERS_OFF)
    factory.protocol = _Client
    factory.handshake_caps = caps  # type: ignore[attr-defined]
    protocol = factory.buildProtocol(None)
    transport = _TCPLikeTransport()
    protocol.makeConnection(transport)
    found = re.search(rb"Sec-WebSocket-Key: (\S+)", transport.value())
    assert found is not None
    accept = base64.b64encode(
        hashlib.sha1(found.group(1) + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
    )
    answer = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    return protocol, transport, answer


class SendTests(SynchronousTestCase):
    """
    The relay's websocket clients (:class:`RelayClientProtocol`, here through
    :class:`CappedHandshakeProtocol`) write a frame as Autobahn does, without
    formatting Autobahn's per-write debug line.
    """

    def test_frame_written_without_debug_line(self) -> None:
        """
        A message sent on an open connection reaches the transport as the
        same masked frame, and no debug line is formatted for it.
        """
        protocol, transport, answer = _handshaking(AnswerCaps())
        protocol.dataReceived(answer)
        transport.clear()
        formatted: list[Any] = []
        self.patch(autobahn_protocol, "hltype", lambda *a: formatted.append(a))
        self.patch(autobahn_protocol, "hlval", lambda *a: formatted.append(a))
        protocol.sendMessage(b"payload", isBinary=True)
        frame = transport.value()
        self.assertEqual(frame[:2], b"\x82\x87")
        mask = frame[2:6]
        self.assertEqual(bytes(b ^ mask[i % 4] for i, b in enumerate(frame[6:])), b"payload")
        self.assertEqual(formatted, [])


class HandshakeCapTests(SynchronousTestCase):
    """
    :class:`CappedHandshakeProtocol` hands Autobahn the handshake's answer once its
    end came, within the caps, and fails the handshake past them.
    """

    def test_answer_in_pieces(self) -> None:
        """
        A good answer opens the websocket whether it comes whole, a byte at
        a time, or with its blank line split across reads; a frame in the
        same read as the answer's end is not lost.
        """
        protocol, _, answer = _handshaking(AnswerCaps())
        protocol.dataReceived(answer)
        self.assertTrue(protocol.opened)

        protocol, _, answer = _handshaking(AnswerCaps())
        for i in range(len(answer)):
            protocol.dataReceived(answer[i : i + 1])
        self.assertTrue(protocol.opened)

        received: list[bytes] = []
        protocol, _, answer = _handshaking(AnswerCaps())
        protocol.onMessage = lambda payload, binary: received.append(payload)  # type: ignore[method-assign]
        protocol.dataReceived(answer[:-2])
        protocol.dataReceived(answer[-2:] + b"\x81\x02hi")
        self.assertTrue(protocol.opened)
        self.assertEqual(received, [b"hi"])

    def test_endless_headers(self) -> None:
        """
        Header lines without end fail the handshake once past
        ``head_bytes``, and the connection is cut; Autobahn never buffered
        them.
        """
        protocol, transport, _ = _handshaking(AnswerCaps(head_bytes=4096))
        protocol.dataReceived(b"HTTP/1.1 101 Switching Protocols\r\n")
        for _ in range(100):
            protocol.dataReceived(b"X-Filler: " + b"a" * 90 + b"\r\n")
        self.assertEqual(
            protocol.handshake_problem, "its headers were over 4096 bytes (--max-answer-head)"
        )
        self.assertFalse(protocol.opened)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(protocol.data, b"")

    def test_too_many_lines(self) -> None:
        """
        An answer within the bytes but with more than ``header_lines``
        header lines fails the handshake.
        """
        protocol, transport, answer = _handshaking(AnswerCaps(header_lines=3))
        protocol.dataReceived(answer.replace(b"\r\n\r\n", b"\r\nA: 1\r\n\r\n"))
        self.assertEqual(
            protocol.handshake_problem, "it had over 3 header lines (--max-answer-headers)"
        )
        self.assertFalse(protocol.opened)
        self.assertTrue(transport.disconnecting)
