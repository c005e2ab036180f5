"""
Tests for :mod:`dccrelay.gateway.connection`: the Autobahn client against
the Discord simulator over loopback.
"""

from __future__ import annotations

from typing import Any

import orjson
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.error import ConnectionRefusedError
from twisted.trial.unittest import TestCase

from dccrelay.gateway.connection import GatewayConnector, HandshakeFailed
from dccrelay.gateway.shard import gateway_url
from dccrelay.testing.simulator import DiscordSimulator
from tests.harness import LOOPBACK, TRUST_TEST_CA, tls_simulator, wait_for


def connector(**options: Any) -> GatewayConnector:
    """The gateway client as the relay builds it, trusting the test CA."""
    return GatewayConnector(reactor, tls_options_for=TRUST_TEST_CA.creator_for, **options)


class Listener:
    """
    Records what a connection reports.
    """

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.closed: list[tuple[int | None, str]] = []

    def frame_received(self, data: bytes) -> None:
        self.frames.append(data)

    def connection_closed(self, code: int | None, reason: str) -> None:
        self.closed.append((code, reason))


class GatewayConnectorTests(TestCase):
    """
    Frames in, frames out, and how a connection ends.
    """

    async def simulator(self) -> DiscordSimulator:
        sim = tls_simulator()
        await sim.listen(LOOPBACK)
        self.addCleanup(sim.stop)
        sim.add_bot(token="TOKEN", user_id="1")
        return sim

    def test_frames_and_close_code(self) -> None:
        """
        HELLO arrives as raw bytes; a sent IDENTIFY is accepted; the
        server's close code reaches the listener.
        """
        return ensureDeferred(self._frames())

    async def _frames(self) -> None:
        sim = await self.simulator()
        listener = Listener()
        connection = await connector().connect(
            gateway_url(sim.gateway_url), listener
        )
        await wait_for(lambda: listener.frames, what="HELLO")
        self.assertEqual(orjson.loads(listener.frames[0])["op"], 10)
        connection.send({"op": 2, "d": {"token": "TOKEN", "intents": 513,
                                        "properties": {"os": "x", "browser": "y", "device": "z"}}})
        await wait_for(lambda: len(listener.frames) >= 2, what="READY")
        self.assertEqual(orjson.loads(listener.frames[1])["t"], "READY")
        sim.bots["TOKEN"].connections[-1].close(4000, "test")
        await wait_for(lambda: listener.closed, what="the close")
        self.assertEqual(listener.closed[0][0], 4000)

    def test_opening_leaves_the_certificate_unparsed(self) -> None:
        """
        Over TLS the connection opens with the server's certificate verified
        but not parsed into Autobahn's details, which nothing reads (a cost
        per connection when thousands reconnect).
        """
        return ensureDeferred(self._certificate())

    async def _certificate(self) -> None:
        sim = await self.simulator()
        connection: Any = await connector().connect(gateway_url(sim.gateway_url), Listener())
        self.addCleanup(connection.abort)
        self.assertIsNotNone(connection.transport.getPeerCertificate())
        self.assertIsNone(connection._transport_details.peer_cert)

    def test_refused(self) -> None:
        """
        A port with nobody listening fails the connect Deferred.
        """
        d = GatewayConnector(reactor).connect("ws://127.0.0.1:1/", Listener())
        return self.assertFailure(d, ConnectionRefusedError)

    def test_cancel_while_connecting(self) -> None:
        """
        Cancelling an attempt still connecting fails it with CancelledError
        alone (a shard being stopped ignores that), not with the endpoint's
        ConnectingCancelledError from inside the cancellation.
        """
        return ensureDeferred(self._cancel_while_connecting())

    async def _cancel_while_connecting(self) -> None:
        sim = await self.simulator()
        d: Deferred[Any] = connector().connect(gateway_url(sim.gateway_url), Listener())
        d.cancel()
        await self.assertFailure(d, CancelledError)

    def test_handshake_refused(self) -> None:
        """
        A websocket handshake the server refuses (an API version Discord
        does not speak) fails the connect Deferred.
        """
        return ensureDeferred(self._handshake_refused())

    async def _handshake_refused(self) -> None:
        sim = await self.simulator()
        d: Deferred[Any] = connector().connect(
            sim.gateway_url + "?v=10&encoding=json&compress=nonsense", Listener()
        )
        await self.assertFailure(d, HandshakeFailed)


class CompressionTests(TestCase):
    """
    ``compress=zlib-stream`` and ``zstd-stream``: one decompression context
    per connection.
    """

    async def three_dispatches_through(self, compression: str) -> None:
        """
        IDENTIFY over a ``compression`` connection to the simulator, then
        three dispatches arrive as the exact JSON bytes the simulator sent.
        """
        sim = tls_simulator()
        await sim.listen(LOOPBACK)
        self.addCleanup(sim.stop)
        bot = sim.add_bot(token="TOKEN", user_id="1")
        listener = Listener()
        connection = await connector(compression=compression).connect(
            gateway_url(sim.gateway_url), listener
        )
        self.assertIn(("connect", "gateway"), sim.events)
        await wait_for(lambda: listener.frames, what="HELLO")
        connection.send({"op": 2, "d": {"token": "TOKEN", "intents": 513,
                                        "properties": {"os": "x", "browser": "y", "device": "z"}}})
        await bot.wait_for_ready()
        sent = [bot.message(f"message {i}") for i in range(3)]
        await wait_for(lambda: len(listener.frames) >= 5, what="three dispatches")
        self.assertEqual(listener.frames[2:], sent)
        connection.close(4000)
        await bot.wait_for_disconnect()

    def test_zlib_stream(self) -> None:
        """
        With zlib-stream the listener gets the same JSON bytes as without,
        payload after payload from one stream.
        """
        return ensureDeferred(self._zlib())

    async def _zlib(self) -> None:
        await self.three_dispatches_through("zlib-stream")

    def test_split_frames(self) -> None:
        """
        A payload cut over several binary frames is inflated once whole.
        """
        import zlib

        from dccrelay.gateway.connection import GatewayProtocol

        compressor = zlib.compressobj()
        data = compressor.compress(b'{"op":11}') + compressor.flush(zlib.Z_SYNC_FLUSH)
        protocol = GatewayProtocol()
        protocol.listener = listener = Listener()  # type: ignore[assignment]
        protocol.inflater = zlib.decompressobj()
        protocol.onMessage(data[:3], True)
        self.assertEqual(listener.frames, [])
        protocol.onMessage(data[3:], True)
        self.assertEqual(listener.frames, [b'{"op":11}'])

    def test_zstd_stream(self) -> None:
        """
        With zstd-stream the listener gets the same JSON bytes as without,
        each binary message decompressed by the connection's one zstd
        stream, which no message ends.
        """
        return ensureDeferred(self._zstd())

    async def _zstd(self) -> None:
        await self.three_dispatches_through("zstd-stream")

    def test_corrupt_zstd_stream(self) -> None:
        """
        Bytes that are not zstd abort the connection rather than reach the
        shard.
        """
        import zstandard

        from dccrelay.gateway.connection import GatewayProtocol

        protocol = GatewayProtocol()
        protocol.listener = listener = Listener()  # type: ignore[assignment]
        protocol.zstd = zstandard.ZstdDecompressor().decompressobj()
        aborted = []
        protocol.abort = lambda: aborted.append(True)  # type: ignore[method-assign]
        protocol.onMessage(b"not zstd at all", True)
        self.assertEqual((listener.frames, aborted), ([], [True]))

    def test_unknown_compression(self) -> None:
        """
        Only zlib-stream and zstd-stream are spoken.
        """
        self.assertRaises(ValueError, GatewayConnector, reactor, compression="gzip")
