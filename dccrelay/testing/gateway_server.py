"""
The simulator's gateway websocket endpoints, on Autobahn.

The protocol only checks the URL's query (``v=10``, ``encoding=json``,
optional ``compress=zlib-stream`` or ``zstd-stream``), turns websocket
messages into calls on a
:class:`~dccrelay.testing.connection.SimulatedConnection`, and serves as that
connection's :class:`~dccrelay.testing.connection.GatewayWire`.
"""

from __future__ import annotations

import struct
import zlib
from typing import TYPE_CHECKING, Any

import zstandard
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.logger import Logger

from dccrelay.testing import codes

if TYPE_CHECKING:
    from dccrelay.testing.connection import SimulatedConnection
    from dccrelay.testing.simulator import DiscordSimulator


def query_problem(params: dict[str, list[str]]) -> str | None:
    """
    Why Discord would close a connection opened with these query parameters
    with 4012, or None.
    """
    version = params.get("v", [None])[-1]
    if version != str(codes.API_VERSION):
        return f"invalid API version {version!r}: use v=10"
    encoding = params.get("encoding", ["json"])[-1]
    if encoding != "json":
        return f"encoding {encoding!r} is not supported here: use encoding=json"
    return None


class GatewayServerProtocol(WebSocketServerProtocol):
    """One client connection to ``/gateway`` or ``/resume``."""

    _log = Logger()
    factory: GatewayServerFactory

    def __init__(self) -> None:
        super().__init__()
        self._conn: SimulatedConnection | None = None
        self._refusal: str | None = None
        self._compressor: Any = None
        self._zstd: Any = None

    def onConnect(self, request: ConnectionRequest) -> None:
        """Read the query; refuse transport compression we do not speak."""
        params: dict[str, list[str]] = request.params
        compress = params.get("compress", [None])[-1]
        if compress not in (None, "zlib-stream", "zstd-stream"):
            raise ConnectionDeny(
                ConnectionDeny.BAD_REQUEST,
                "the simulator supports compress=zlib-stream or zstd-stream only",
            )
        if compress == "zlib-stream":
            # The fastest level: the load generator compresses every frame,
            # and the relay's inflating costs the same at any level.
            self._compressor = zlib.compressobj(1)
        elif compress == "zstd-stream":
            # One compressor per connection (a compressobj shares its
            # ZstdCompressor's context), zstd's default level and window.
            self._zstd = zstandard.ZstdCompressor(
                level=self.factory.simulator.zstd_level
            ).compressobj()
        self._refusal = query_problem(params)

    def onOpen(self) -> None:
        """Hand the connection to the simulator, which sends HELLO."""
        self._conn = self.factory.simulator.accept(self, self.factory.url_kind)
        self._conn.start(self._refusal)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """Each websocket message is one gateway payload."""
        if self._conn is not None:
            self._conn.frame_received(payload)

    def onCloseFrame(self, code: int, reasonRaw: bytes) -> bool | None:
        """Note a close the client started, before Autobahn answers it."""
        if self._conn is not None and self.state == WebSocketProtocol.STATE_OPEN:
            self._conn.client_closing(code)
        return super().onCloseFrame(code, reasonRaw)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        """The TCP connection is gone."""
        # Autobahn leaves its close-handshake timer running when the peer
        # drops TCP instead of answering our close frame; it would outlive us.
        timer = getattr(self, "closeHandshakeTimeoutCall", None)
        if timer is not None:
            timer.cancel()
            self.closeHandshakeTimeoutCall = None
        if self._conn is not None:
            self._conn.connection_lost()

    # GatewayWire

    def send_frame(self, data: bytes) -> None:
        """
        Send a payload, through the connection's zlib or zstd stream if
        asked for.  A zstd payload ends with a flushed block, never with the
        end of the zstd frame, as Discord sends it.
        """
        if self._zstd is not None:
            zstd = self._zstd
            data = zstd.compress(data) + zstd.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
            self._write_message(data, True)
        elif self._compressor is not None:
            data = self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
            self._write_message(data, True)
        else:
            self._write_message(data, False)

    def _write_message(self, data: bytes, binary: bool) -> None:
        """
        What ``sendMessage`` writes for one unfragmented, unmasked server
        frame, without its per-frame debug-log formatting, which was a
        seventh of the load generator's CPU.
        """
        if self.state != WebSocketProtocol.STATE_OPEN or self.send_queue or self.transport is None:
            self.sendMessage(data, isBinary=binary)
            return
        first = 0x82 if binary else 0x81
        size = len(data)
        if size < 126:
            header = bytes((first, size))
        elif size < 0x10000:
            header = struct.pack("!BBH", first, 126, size)
        else:
            header = struct.pack("!BBQ", first, 127, size)
        self.transport.write(header + data)

    def send_close(self, code: int, reason: str) -> None:
        """Start the closing handshake."""
        self.sendClose(code, reason or None)

    def abort(self) -> None:
        """Drop TCP at once, no close frame."""
        self.dropConnection(abort=True)


class GatewayServerFactory(WebSocketServerFactory):
    """Builds protocols for one gateway URL (``gateway`` or ``resume``)."""

    protocol = GatewayServerProtocol  # type: ignore[assignment]

    def __init__(self, simulator: DiscordSimulator, url_kind: str, reactor: Any) -> None:
        super().__init__(reactor=reactor, server="dccrelay-simulator")
        self.simulator = simulator
        self.url_kind = url_kind
