"""
The Autobahn websocket client that carries one shard's gateway connection.

The protocol knows nothing of Discord's meaning: it hands each payload's
JSON bytes to its listener (a :class:`~dccrelay.gateway.shard.Shard`) and
reports how the connection ended.  All decisions, deadlines included, are
the shard's.

With ``compress=zlib-stream`` Discord sends binary frames cut from one zlib
stream per connection; a payload is complete when the bytes received end with
the sync-flush suffix ``00 00 ff ff``.  The inflated JSON is what the shard
sees and what the bot eventually gets.

With ``compress=zstd-stream`` each binary frame is one payload, cut from one
zstd stream per connection; a payload does not end the zstd frame (Discord
flushes a block and goes on), so one streaming decompressor lives as long as
the connection.  Its window, chosen by the sender, bounds its memory: up to
2 MiB with zstd's defaults, against zlib's fixed 32 KiB.
"""

from __future__ import annotations

import weakref
import zlib
from typing import Any, Callable

import orjson
import txaio
import zstandard
from autobahn.twisted.websocket import WebSocketClientFactory
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.protocol import connectionDone
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import Logger
from twisted.python.failure import Failure

from dccrelay import __version__
from dccrelay.gateway.frames import split_whole_frames
from dccrelay.gateway.shard import IGatewayConnection, IGatewayListener
from dccrelay.net.websocket import AUTOBAHN_TIMERS_OFF, RelayClientProtocol, client_endpoint

USER_AGENT = f"dccrelay/{__version__}"

#: Transport compressions the connector speaks; None is plain JSON text.
COMPRESSIONS = (None, "zlib-stream", "zstd-stream")
ZLIB_SUFFIX = b"\x00\x00\xff\xff"


class HandshakeFailed(Exception):
    """
    The websocket closed before it opened.

    :ivar reasons: why the connection was lost (e.g. a TLS certificate
        refused), as Twisted's HTTP client keeps them.
    """

    def __init__(self, message: str, reasons: list[Failure] | None = None) -> None:
        super().__init__(message)
        self.reasons = reasons or []


_OPEN = WebSocketProtocol.STATE_OPEN


class GatewayProtocol(RelayClientProtocol):
    """
    Frames in, frames out, for one shard.
    """

    _log = Logger()
    # Autobahn logs handshakes and frames at debug level, and IDENTIFY holds
    # the bot's token: keep this class's Autobahn logger above debug.
    log = txaio.make_logger(level="info")  # type: ignore[attr-defined]
    listener: IGatewayListener
    opened: Deferred[IGatewayConnection] | None
    inflater: Any = None
    #: with zstd-stream: this connection's ``ZstdDecompressor().decompressobj()``
    zstd: Any = None
    _compressed: bytes = b""
    _lost: Failure | None = None
    #: the attempt was cancelled: its end is not reported
    abandoned = False

    def onOpen(self) -> None:
        opened, self.opened = self.opened, None
        if opened is not None and not opened.called:
            opened.callback(self)

    def dataReceived(self, data: bytes) -> None:
        # Autobahn's own dataReceived first formats a debug line (with
        # click's styling) that the logger then drops: ~3% of the relay's
        # CPU per dispatch (py-spy).
        if (
            self.state == _OPEN
            and not self.data
            and self.current_frame is None
            and not self.inside_message
            and not self.maxFramePayloadSize
            and not self.maxMessagePayloadSize
        ):
            # Whole data frames, the usual case: the short path
            # (dccrelay.gateway.frames); what it leaves goes to Autobahn.
            taken = split_whole_frames(data, self._whole_message, self.utf8validateIncoming)
            self.trafficStats.incomingOctetsWireLevel += taken
            if taken == len(data):
                return
            data = data[taken:]
        self._dataReceived(data)

    def _whole_message(self, payload: bytes, is_binary: bool) -> bool:
        self.onMessage(payload, is_binary)
        return self.state == _OPEN

    def onMessageEnd(self) -> None:
        # Autobahn's own onMessageEnd also fires its observable "message"
        # event, a Deferred and a callback chain per frame that nothing here
        # observes: about a tenth of the relay's CPU per dispatch (py-spy).
        if not self.failedByMe:
            self._onMessage(b"".join(self.message_data), self.message_is_binary)
        self.message_data = None  # type: ignore[assignment]

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.zstd is not None and isBinary:
            try:
                data = self.zstd.decompress(payload)
            except zstandard.ZstdError:
                self._log.warn("the gateway's zstd stream is corrupt; reconnecting")
                self.abort()
                return
            self.listener.frame_received(data)
            return
        if self.inflater is None or not isBinary:
            self.listener.frame_received(payload)
            return
        if not payload.endswith(ZLIB_SUFFIX):
            # Discord may split one payload over several frames.
            self._compressed += payload
            return
        if self._compressed:
            payload, self._compressed = self._compressed + payload, b""
        try:
            data = self.inflater.decompress(payload)
        except zlib.error:
            self._log.warn("the gateway's zlib stream is corrupt; reconnecting")
            self.abort()
            return
        self.listener.frame_received(data)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        opened, self.opened = self.opened, None
        if opened is not None:
            # Closed before it opened: the shard hears a failed connect.
            if not opened.called and not self.abandoned:
                reasons = [self._lost] if self._lost is not None else []
                failed = HandshakeFailed(reason or "websocket handshake failed", reasons)
                opened.errback(Failure(failed))
            return
        self.listener.connection_closed(code, reason or "")

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        # Kept for onClose: Autobahn passes it on only as text.
        self._lost = reason
        super().connectionLost(reason)
        self._let_go()

    def _let_go(self) -> None:
        """
        Drop what ties this ended connection into reference cycles, so that
        reference counting frees it (and its inflate context) at once: the
        relay freezes what lives at start-up out of the collector's sight
        (dccrelay.ops.collector), and a frozen connection left in a cycle
        would never be freed.
        """
        self.inflater = self.zstd = None
        if isinstance(self.factory, _GatewayFactory):
            self.factory.setup = None
        self.factory = None
        self.is_open = self.is_closed = None

    # IGatewayConnection

    def send(self, payload: dict[str, Any]) -> None:
        self.sendMessage(orjson.dumps(payload), isBinary=False)

    def close(self, code: int) -> None:
        self.sendClose(code)

    def abort(self) -> None:
        transport: Any = self.transport
        if transport is not None:
            transport.abortConnection()


class _GatewayFactory(WebSocketClientFactory):
    """
    One connection attempt's factory: ``setup`` gives each protocol it
    builds its listener and decompression (a method, not a closure holding
    the factory, so that no cycle outlives the connection).
    """

    setup: Callable[[GatewayProtocol], None] | None = None

    def buildProtocol(self, addr: object) -> GatewayProtocol:
        protocol = GatewayProtocol()
        protocol.factory = self
        if self.setup is not None:
            self.setup(protocol)
        return protocol


class GatewayConnector:
    """
    Opens gateway websockets for shards.
    """

    def __init__(
        self,
        reactor: Any,
        tls_options_for: Callable[[str], IOpenSSLClientConnectionCreator] = optionsForClientTLS,
        tcp_timeout: float = 30.0,
        compression: str | None = None,
    ) -> None:
        if compression not in COMPRESSIONS:
            raise ValueError(f"unknown gateway compression {compression!r}")
        self._reactor = reactor
        self._tls_options_for = tls_options_for
        self._tcp_timeout = tcp_timeout
        self._compression = compression

    def connect(self, url: str, listener: IGatewayListener) -> Deferred[IGatewayConnection]:
        """
        Open ``url``; fires once the websocket handshake is complete.
        Cancelling it abandons the attempt.
        """
        if self._compression is not None:
            url += ("&" if "?" in url else "?") + "compress=" + self._compression
        factory = _GatewayFactory(url, reactor=self._reactor, useragent=USER_AGENT)
        factory.setProtocolOptions(**AUTOBAHN_TIMERS_OFF)
        # Not a "Starting factory" log line per connection: 10,000 at start-up.
        factory.noisy = False
        # Weak: the factory holds setup, and a strong list would tie every
        # protocol it built into a cycle with it.
        protocols: weakref.WeakSet[GatewayProtocol] = weakref.WeakSet()

        cancelled = False

        def cancel(_: Deferred[IGatewayConnection]) -> None:
            # What the cancelled attempt reports from here on is not news:
            # the caller gets CancelledError alone.
            nonlocal cancelled
            cancelled = True
            connecting.cancel()
            for protocol in list(protocols):
                protocol.abandoned = True
                protocol.abort()

        opened: Deferred[IGatewayConnection] = Deferred(cancel)

        def setup(protocol: GatewayProtocol) -> None:
            protocol.listener = listener
            protocol.opened = opened
            if self._compression == "zlib-stream":
                protocol.inflater = zlib.decompressobj()
            elif self._compression == "zstd-stream":
                # One decompressor per connection: a decompressobj shares
                # its ZstdDecompressor's context.
                protocol.zstd = zstandard.ZstdDecompressor().decompressobj()
            protocols.add(protocol)

        factory.setup = setup
        endpoint = client_endpoint(
            self._reactor, factory, self._tls_options_for, self._tcp_timeout
        )
        connecting = endpoint.connect(factory)

        def failed(failure: Failure) -> None:
            if not opened.called and not cancelled:
                opened.errback(failure)

        connecting.addErrback(failed)
        # Keep no protocol as the attempt's result: Twisted's endpoint keeps
        # this Deferred in a reference cycle, which would hold the protocol
        # after its connection ended.
        connecting.addCallback(lambda _: None)
        return opened
