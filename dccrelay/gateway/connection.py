"""
The Autobahn websocket client that carries one shard's gateway connection.

The protocol knows nothing of Discord: it hands each text frame's bytes to
its listener (a :class:`~dccrelay.gateway.shard.Shard`) and reports how the
connection ended.  All decisions are the shard's.
"""

from __future__ import annotations

from typing import Any, Callable

import orjson
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from hyperlink import URL
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IStreamClientEndpoint
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import Logger
from twisted.python.failure import Failure

from dccrelay import __version__
from dccrelay.gateway.shard import IGatewayConnection, IGatewayListener

USER_AGENT = f"dccrelay/{__version__}"


class HandshakeFailed(Exception):
    """
    The websocket closed before it opened.
    """


def websocket_endpoint(
    reactor: Any,
    url: str,
    tls_options_for: Callable[[str], IOpenSSLClientConnectionCreator] = optionsForClientTLS,
    timeout: float = 30.0,
) -> IStreamClientEndpoint:
    """
    An endpoint for a ``ws://`` or ``wss://`` URL; ``wss`` verifies the
    server's certificate for the URL's host name.
    """
    parsed = URL.from_text(url)
    secure = parsed.scheme == "wss"
    port = parsed.port or (443 if secure else 80)
    endpoint: IStreamClientEndpoint = HostnameEndpoint(
        reactor, parsed.host, port, timeout=timeout
    )
    if secure:
        endpoint = wrapClientTLS(tls_options_for(parsed.host), endpoint)
    return endpoint


class GatewayProtocol(WebSocketClientProtocol):
    """
    Frames in, frames out, for one shard.
    """

    _log = Logger()
    listener: IGatewayListener
    opened: Deferred[IGatewayConnection] | None

    def onOpen(self) -> None:
        opened, self.opened = self.opened, None
        if opened is not None and not opened.called:
            opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.listener.frame_received(payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        opened, self.opened = self.opened, None
        if opened is not None:
            # Closed before it opened: the shard hears a failed connect.
            if not opened.called:
                opened.errback(Failure(HandshakeFailed(reason or "websocket handshake failed")))
            return
        self.listener.connection_closed(code, reason or "")

    # IGatewayConnection

    def send(self, payload: dict[str, Any]) -> None:
        self.sendMessage(orjson.dumps(payload), isBinary=False)

    def close(self, code: int) -> None:
        self.sendClose(code)


class GatewayConnector:
    """
    Opens gateway websockets for shards.
    """

    def __init__(
        self,
        reactor: Any,
        tls_options_for: Callable[[str], IOpenSSLClientConnectionCreator] = optionsForClientTLS,
    ) -> None:
        self._reactor = reactor
        self._tls_options_for = tls_options_for

    def connect(self, url: str, listener: IGatewayListener) -> Deferred[IGatewayConnection]:
        """
        Open ``url``; fires once the websocket handshake is complete.
        """
        factory = WebSocketClientFactory(url, reactor=self._reactor, useragent=USER_AGENT)
        # Heartbeats are Discord's job and the shard's, not websocket pings.
        factory.setProtocolOptions(autoPingInterval=0, openHandshakeTimeout=30)
        protocols: list[GatewayProtocol] = []

        def cancel(_: Deferred[IGatewayConnection]) -> None:
            connecting.cancel()
            for protocol in protocols:
                if protocol.transport is not None:
                    protocol.transport.abortConnection()

        opened: Deferred[IGatewayConnection] = Deferred(cancel)

        def build(addr: object) -> GatewayProtocol:
            protocol = GatewayProtocol()
            protocol.factory = factory
            protocol.listener = listener
            protocol.opened = opened
            protocols.append(protocol)
            return protocol

        factory.buildProtocol = build  # type: ignore[method-assign]
        endpoint = websocket_endpoint(self._reactor, url, self._tls_options_for)
        connecting = endpoint.connect(factory)

        def failed(failure: Failure) -> None:
            if not opened.called:
                opened.errback(failure)

        connecting.addErrback(failed)
        return opened
