"""
The bot's end of websocket v1 delivery: what a bot author mounts at ``dst``.

The relay connects with ``Authorization: Basic base64(clientSecret)`` and
then sends each matching gateway payload as one text frame, byte for byte
what Discord sent; it expects nothing back and closes the connection (code
1000) when it has had nothing to send for a while.  A connection without the
right ``Authorization`` is refused with HTTP 401 in the handshake.

Mount it in a twisted.web tree::

    root.putChild(b"dcc", receiver_resource(secret, on_dispatch))
"""

from __future__ import annotations

import hmac
from base64 import b64encode
from typing import Callable, cast

import txaio
from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet.defer import maybeDeferred
from twisted.internet.interfaces import IReactorTime, ITCPTransport
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import IResource

from dccrelay.delivery.timers import Deadline

#: seconds a connection may take to complete the websocket handshake (when
#: the factory listens by itself; behind twisted.web it is already done)
HANDSHAKE_TIMEOUT = 10.0

_UNAUTHORIZED = 401


def authorization_matches(header: str | None, client_secret: str) -> bool:
    """
    Whether an ``Authorization`` header value is ``Basic
    base64(client_secret)``.

    The scheme is matched without regard to case (RFC 9110); the credentials
    are compared in constant time.
    """
    if header is None:
        return False
    scheme, _, credentials = header.strip().partition(" ")
    expected = b64encode(client_secret.encode("utf-8"))
    # "replace" cannot forge a match: "?" is not in the base64 alphabet
    given = credentials.strip().encode("ascii", "replace")
    same = hmac.compare_digest(given, expected)
    return same and scheme.lower() == "basic"


class DispatchReceiverProtocol(WebSocketServerProtocol):
    """
    One connection from the relay: checks its Authorization, then hands each
    text frame to the factory's ``on_dispatch``.
    """

    factory: DispatchReceiverFactory
    _log = Logger()
    # Autobahn logs the whole handshake request, Authorization included, at
    # debug level; pin this class's Autobahn logger above debug.
    log = txaio.make_logger(level="info")  # type: ignore[attr-defined]
    _handshake_deadline: Deadline | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self._handshake_deadline = Deadline(self.factory.reactor, self._handshake_timed_out)
        self._handshake_deadline.start(HANDSHAKE_TIMEOUT)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_handshake_deadline()
        super().connectionLost(reason)

    def onConnect(self, request: ConnectionRequest) -> None:
        if not self.factory.authorizes(request.headers.get("authorization")):
            self._log.warn(
                "Refused a websocket connection from {peer}: missing or wrong Authorization",
                peer=request.peer,
            )
            raise ConnectionDeny(_UNAUTHORIZED, "Unauthorized")

    def onOpen(self) -> None:
        self._cancel_handshake_deadline()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if isBinary:
            self._log.warn("Ignoring a binary frame: the relay sends dispatches as text")
            return
        handled = maybeDeferred(self.factory.on_dispatch, payload)
        # a failing handler loses that dispatch, never the connection
        handled.addErrback(
            lambda failure: self._log.failure("The dispatch handler failed", failure=failure)
        )

    def _cancel_handshake_deadline(self) -> None:
        if self._handshake_deadline is not None:
            self._handshake_deadline.cancel()
            self._handshake_deadline = None

    def _handshake_timed_out(self) -> None:
        self._handshake_deadline = None
        if self.transport is not None:
            cast(ITCPTransport, self.transport).abortConnection()


class DispatchReceiverFactory(WebSocketServerFactory):
    """
    Accepts websocket v1 connections from the relay.

    :param client_secret: the ``clientSecret`` the bot registered.
    :param on_dispatch: called with each dispatch's raw bytes (a JSON gateway
        payload); may return a Deferred.  Its errors are logged.
    :param reactor: for the handshake deadline; the global reactor if None.
    """

    protocol = DispatchReceiverProtocol  # type: ignore[assignment]

    def __init__(
        self,
        client_secret: str,
        on_dispatch: Callable[[bytes], object],
        reactor: IReactorTime | None = None,
    ) -> None:
        super().__init__(reactor=reactor)
        # Autobahn would run these on txaio's (global) reactor; the handshake
        # deadline above replaces them, and a relay closing the connection is
        # answered at once.
        self.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=0)
        self._client_secret = client_secret
        self.on_dispatch = on_dispatch

    def authorizes(self, header: str | None) -> bool:
        """
        Whether an ``Authorization`` header value is the relay's.
        """
        return authorization_matches(header, self._client_secret)


def receiver_resource(
    client_secret: str,
    on_dispatch: Callable[[bytes], object],
    reactor: IReactorTime | None = None,
) -> IResource:
    """
    A twisted.web resource that receives the relay's v1 dispatches.

    See :class:`DispatchReceiverFactory` for the arguments.
    """
    return WebSocketResource(DispatchReceiverFactory(client_secret, on_dispatch, reactor=reactor))
