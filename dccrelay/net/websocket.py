"""
What the relay's two websocket clients (to Discord's gateway and to bots)
share: how a connection is opened, and Autobahn's timers switched off.

Autobahn runs its own handshake, close and ping timers on txaio's reactor,
the global one, not on the reactor the relay was given; the relay keeps
those deadlines itself, on its injected clock, where tests can drive them.
"""

from __future__ import annotations

from typing import Any, Callable

from autobahn.twisted.websocket import WebSocketClientFactory
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IStreamClientEndpoint

AUTOBAHN_TIMERS_OFF: dict[str, Any] = {
    "openHandshakeTimeout": 0,
    "closeHandshakeTimeout": 0,
    "serverConnectionDropTimeout": 0,
    "autoPingInterval": 0,
    "autoPingTimeout": 0,
}


def client_endpoint(
    reactor: Any,
    factory: WebSocketClientFactory,
    tls_options_for: Callable[[str], IOpenSSLClientConnectionCreator],
    timeout: float,
) -> IStreamClientEndpoint:
    """
    An endpoint to the host of ``factory``'s URL; for ``wss`` it verifies
    the server's certificate for that host name.
    """
    endpoint: IStreamClientEndpoint = HostnameEndpoint(
        reactor, factory.host, factory.port, timeout=timeout
    )
    if factory.isSecure:
        endpoint = wrapClientTLS(tls_options_for(factory.host), endpoint)
    return endpoint
