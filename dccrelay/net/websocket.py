"""
What the relay's two websocket clients (to Discord's gateway and to bots)
share: how a connection is opened, Autobahn's timers switched off, and the
handshake's answer read within a cap.

Autobahn runs its own handshake, close and ping timers on txaio's reactor,
the global one, not on the reactor the relay was given; the relay keeps
those deadlines itself, on its injected clock, where tests can drive them.

Autobahn also keeps the whole answer to its handshake, without bound, and
searches all of it for the blank line on every read: an answer of endless
header lines grew the relay's memory and pegged a core (quadratic) until
the connect timeout.  :class:`CappedHandshakeProtocol` gathers the answer itself,
searches only what is new, and gives up past the caps.

And Autobahn's ``sendData`` formats a debug line for every frame it writes
(three ``click`` stylings, ~4 µs) that the logger then drops; a bot
connection writes one frame per delivered dispatch, a gateway connection
one per heartbeat or command.
"""

from __future__ import annotations

from typing import Any, Callable

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IStreamClientEndpoint

from dccrelay.net.answer_caps import AnswerCaps, head_problem

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


class RelayClientProtocol(WebSocketClientProtocol):
    """
    Autobahn's client protocol, less two costs of its own.  On opening, for
    WAMP's authentication, it reads the TLS channel binding and parses the
    server's whole certificate into a dict of details (with
    ``cryptography``), which nothing here reads: ~6 % of the relay's py-spy
    samples while 3,000 bots reconnected (issue 15).  The certificate is
    still verified during the TLS handshake, as before.  And it writes
    frames without the debug line Autobahn formats for each (see above).
    """

    def _onOpen(self) -> None:
        self.onOpen()

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        if sync or chopsize or self.send_queue:
            super().sendData(data, sync, chopsize)
            return
        # Autobahn's own branch for this case, without its debug line.
        self.transport.write(data)  # type: ignore[union-attr]


_END_OF_HEAD = b"\r\n\r\n"


class CappedHandshakeProtocol(RelayClientProtocol):
    """
    An Autobahn client protocol whose answer to the opening handshake is
    gathered here and handed to Autobahn whole, once its end came, if it is within the factory's
    ``handshake_caps`` (an :class:`~dccrelay.net.answer_caps.AnswerCaps`:
    ``head_bytes``, ``header_lines``).  Past them the handshake fails, the
    connection is cut, and :attr:`handshake_problem` says why.
    """

    #: what was over the caps, once the handshake failed for it
    handshake_problem: str | None = None
    _head: list[bytes] | None = None
    _head_size = 0
    # the end of what came so far, in case the blank line is split across reads
    _head_tail = b""

    def dataReceived(self, data: bytes) -> None:
        if self.handshake_problem is not None:
            return
        if self.state != WebSocketProtocol.STATE_CONNECTING:
            super().dataReceived(data)
            return
        caps: AnswerCaps = getattr(self.factory, "handshake_caps", None) or AnswerCaps()
        if self._head is None:
            self._head = []
        self._head.append(data)
        self._head_size += len(data)
        window = self._head_tail + data
        found = window.find(_END_OF_HEAD)
        if found < 0:
            problem = head_problem(caps, self._head_size, 0)
            if problem is None:
                self._head_tail = window[-(len(_END_OF_HEAD) - 1):]
                return
        else:
            answer = b"".join(self._head)
            end = self._head_size - len(window) + found + len(_END_OF_HEAD)
            problem = head_problem(caps, end, answer.count(b"\n", 0, end))
            if problem is None:
                self._head = None
                super().dataReceived(answer)
                return
        self._head = None
        self.handshake_problem = problem
        self.failHandshake(problem)
