"""
Tests for :mod:`dccrelay.gateway.frames` and the short receive path of
:class:`dccrelay.gateway.connection.GatewayProtocol`: what arrives is what
Autobahn's full path would have delivered, byte for byte, and whatever the
short path does not take is still Autobahn's to check and answer.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib

from autobahn.twisted.websocket import WebSocketClientFactory
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase

from dccrelay.gateway.connection import GatewayProtocol
from dccrelay.gateway.frames import split_whole_frames
from dccrelay.net.websocket import AUTOBAHN_TIMERS_OFF
from tests.test_gateway_connection import Listener

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(payload: bytes, opcode: int = 2, fin: bool = True, mask: bytes | None = None) -> bytes:
    """One websocket frame as a server (or, with ``mask``, a client) writes it."""
    head = bytes([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


class Transport(StringTransport):
    """StringTransport, and Autobahn may unregister a producer it never registered."""

    def unregisterProducer(self) -> None:
        self.producer = None


def opened_protocol(compressed: bool = False) -> tuple[GatewayProtocol, Transport, Listener]:
    """A gateway protocol through Autobahn's real opening handshake, in memory."""
    factory = WebSocketClientFactory("ws://gateway.test/?v=10")
    factory.setProtocolOptions(**AUTOBAHN_TIMERS_OFF)
    protocol = GatewayProtocol()
    protocol.factory = factory
    protocol.listener = listener = Listener()  # type: ignore[assignment]
    protocol.opened = None
    if compressed:
        protocol.inflater = zlib.decompressobj()
    transport = Transport()
    protocol.makeConnection(transport)
    request = transport.value()
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    transport.clear()
    protocol.dataReceived(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    assert protocol.state == WebSocketProtocol.STATE_OPEN
    return protocol, transport, listener


class SplitWholeFramesTests(TestCase):
    """
    :func:`split_whole_frames` takes whole plain data frames and stops at
    anything else.
    """

    def take(self, data: bytes) -> tuple[list[tuple[bytes, bool]], int]:
        got: list[tuple[bytes, bool]] = []
        taken = split_whole_frames(data, lambda p, b: got.append((p, b)) is None, True)
        return got, taken

    def test_lengths(self) -> None:
        """
        Payloads of 7-bit, 16-bit and 64-bit lengths come out whole, text
        and binary told apart.
        """
        small, medium, large = b"a" * 125, b"b" * 300, b"c" * 70000
        data = frame(small, 1) + frame(medium) + frame(large, 1)
        got, taken = self.take(data)
        self.assertEqual(got, [(small, False), (medium, True), (large, False)])
        self.assertEqual(taken, len(data))

    def test_partial(self) -> None:
        """A frame cut short, in its header or payload, is left whole to the caller."""
        whole = frame(b"x" * 300)
        for cut in (1, 3, 100):
            got, taken = self.take(frame(b"first") + whole[:cut])
            self.assertEqual((got, taken), ([(b"first", True)], len(frame(b"first"))))

    def test_not_taken(self) -> None:
        """
        Control frames, fragments, continuations, masked frames, extension
        bits and invalid UTF-8 text stop the short path where they begin.
        """
        for other in (
            frame(b"", 9),  # ping
            frame(b"\x03\xe8", 8),  # close
            frame(b"part", 1, fin=False),
            frame(b"rest", 0),
            frame(b"masked", 1, mask=b"abcd"),
            bytes([0xC2, 3]) + b"rsv",  # RSV1 without an extension
            frame(b"\xff\xfe", 1),
        ):
            got, taken = self.take(frame(b"ok") + other + frame(b"after"))
            self.assertEqual((got, taken), ([(b"ok", True)], 4), other)

    def test_stops_when_told(self) -> None:
        """When ``deliver`` answers False, nothing after that frame is taken."""
        got: list[bytes] = []
        data = frame(b"one") + frame(b"two")
        taken = split_whole_frames(data, lambda p, b: got.append(p) is not None, True)
        self.assertEqual((got, taken), ([b"one"], len(frame(b"one"))))


class GatewayShortPathTests(TestCase):
    """
    The gateway protocol with its short path gives the listener what
    Autobahn would, and leaves the rest to Autobahn.
    """

    def test_zlib_frames_in_one_read(self) -> None:
        """
        Several zlib-stream messages in one read, and one split over two
        reads, reach the listener as the exact JSON bytes.
        """
        protocol, _, listener = opened_protocol(compressed=True)
        compressor = zlib.compressobj()
        payloads = [b'{"op":0,"s":%d,"t":"MESSAGE_CREATE","d":{"n":"\xc3\xa9"}}' % i
                    for i in range(4)]
        frames = [frame(compressor.compress(p) + compressor.flush(zlib.Z_SYNC_FLUSH))
                  for p in payloads]
        protocol.dataReceived(frames[0] + frames[1] + frames[2][:5])
        protocol.dataReceived(frames[2][5:] + frames[3])
        self.assertEqual(listener.frames, payloads)

    def test_text_frames(self) -> None:
        """Plain JSON text frames, without compression, arrive untouched."""
        protocol, _, listener = opened_protocol()
        texts = [b'{"op":11}', '{"op":0,"d":"caf\u00e9"}'.encode()]
        protocol.dataReceived(b"".join(frame(t, 1) for t in texts))
        self.assertEqual(listener.frames, texts)

    def test_ping_between_messages(self) -> None:
        """A ping between two messages is answered by Autobahn with a pong."""
        protocol, transport, listener = opened_protocol()
        protocol.dataReceived(frame(b'{"op":11}', 1) + frame(b"hi", 9) + frame(b'{"op":1}', 1))
        self.assertEqual(listener.frames, [b'{"op":11}', b'{"op":1}'])
        sent = transport.value()
        self.assertEqual(sent[0], 0x8A)  # FIN and pong
        self.assertEqual(sent[1] & 0x7F, 2)

    def test_fragmented_message(self) -> None:
        """A message in fragments is joined by Autobahn, then the short path goes on."""
        protocol, _, listener = opened_protocol()
        protocol.dataReceived(frame(b'{"op":', 1, fin=False) + frame(b"11}", 0) + frame(b"{}", 1))
        self.assertEqual(listener.frames, [b'{"op":11}', b"{}"])

    def test_invalid_utf8_fails_the_connection(self) -> None:
        """
        Text that is not UTF-8 is Autobahn's to refuse: it fails (drops)
        the connection, and neither that frame nor the next reaches the
        listener.
        """
        protocol, transport, listener = opened_protocol()
        protocol.dataReceived(frame(b"{}", 1) + frame(b"\xff\xfe", 1) + frame(b"{}", 1))
        self.assertEqual(listener.frames, [b"{}"])
        self.assertTrue(protocol.wasNotCleanReason and "UTF-8" in protocol.wasNotCleanReason)
        self.assertTrue(transport.disconnecting)

    def test_masked_frame_fails_the_connection(self) -> None:
        """A masked frame from the server is a protocol violation Autobahn fails."""
        protocol, transport, listener = opened_protocol()
        protocol.dataReceived(frame(b"{}", 1, mask=b"abcd"))
        self.assertEqual(listener.frames, [])
        self.assertIn("masked", protocol.wasNotCleanReason or "")
        self.assertTrue(transport.disconnecting)
