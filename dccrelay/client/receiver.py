"""
The bot's end of websocket delivery (v1 and v2): what a bot author mounts at
``dst``.

The relay connects with ``Authorization: Basic base64(clientSecret)``; a
connection without the right ``Authorization`` is refused with HTTP 401 in
the handshake.

- v1 (no subprotocol): the relay sends each matching gateway payload as one
  text frame, byte for byte what Discord sent; it expects nothing back.
- v2 (the relay offers subprotocol ``dcc.v2``, and this receiver accepts
  it): each frame is ``{"op":"dispatch","id":N,"d":<payload>}``; the
  handler gets the payload's bytes, sliced out untouched, and once its
  Deferred fires (for this dispatch and every earlier one) the receiver
  answers ``{"op":"ack","id":N}``.  A redelivered id (the relay sends
  everything unacknowledged again after a reconnect) is acknowledged
  without calling the handler a second time, as long as this factory lives.
  Mount one receiver per bot: ids are per bot, so a receiver shared by
  several bots would take one bot's new dispatches for redeliveries and
  acknowledge them without handling them.
  A handler that fails is logged and its dispatch acknowledged all the same:
  one bad dispatch must not hold back every later one.

In both, the relay closes the connection (code 1000) when it has had
nothing to send for a while.

Over v2 the bot can also talk back: :meth:`DispatchReceiverFactory.send_command`
sends a gateway command (presence update, member request) on the open
connection and fires with the relay's answer (``{"op", "shards",
"nonce"?}``), or fails with :class:`~dccrelay.client.register.RegistrationError`
(the relay's status and message) or :class:`NotConnected` when no v2
connection is open (then :func:`dccrelay.client.send_command` does the same
over HTTP).

Mount it in a twisted.web tree::

    root.putChild(b"dcc", receiver_resource(secret, on_dispatch))
"""

from __future__ import annotations

import hmac
from base64 import b64encode
from collections import deque
from typing import Any, Callable, cast

import orjson
import txaio
from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.internet.interfaces import IReactorTime, ITCPTransport
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import IResource

from dccrelay.client.register import RegistrationError
from dccrelay.delivery.timers import Deadline
from dccrelay_client.frames import SUBPROTOCOL_V2, parse_v2_frame

#: seconds a connection may take to complete the websocket handshake (when
#: the factory listens by itself; behind twisted.web it is already done)
HANDSHAKE_TIMEOUT = 10.0

_UNAUTHORIZED = 401


class NotConnected(Exception):
    """
    No websocket v2 connection from the relay is open to send a command on.
    """


class _Handling:
    """
    One v2 dispatch being handled: done once its handler's Deferred fired.
    """

    __slots__ = ("id", "done", "waiters")

    def __init__(self, entry_id: int, done: bool = False) -> None:
        self.id = entry_id
        self.done = done
        self.waiters: list[Callable[[], object]] = []

    def finish(self) -> None:
        self.done = True
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            waiter()


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

    _v2 = False

    def connectionMade(self) -> None:
        super().connectionMade()
        # v2 dispatches of this connection not acknowledged yet, in order
        self._unacked: deque[_Handling] = deque()
        self._handshake_deadline = Deadline(self.factory.reactor, self._handshake_timed_out)
        self._handshake_deadline.start(HANDSHAKE_TIMEOUT)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_handshake_deadline()
        super().connectionLost(reason)
        if self._v2:
            self.factory.closed(self)

    def onConnect(self, request: ConnectionRequest) -> str | None:
        if not self.factory.authorizes(request.headers.get("authorization")):
            self._log.warn(
                "Refused a websocket connection from {peer}: missing or wrong Authorization",
                peer=request.peer,
            )
            raise ConnectionDeny(_UNAUTHORIZED, "Unauthorized")
        if self.factory.v2 and SUBPROTOCOL_V2 in request.protocols:
            return SUBPROTOCOL_V2
        return None

    def onOpen(self) -> None:
        self._cancel_handshake_deadline()
        self._v2 = self.websocket_protocol_in_use == SUBPROTOCOL_V2
        if self._v2:
            self.factory.opened(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if isBinary:
            self._log.warn("Ignoring a binary frame: the relay sends dispatches as text")
            return
        if self._v2:
            self._v2_frame(payload)
            return
        self._handle(payload)

    def _handle(self, payload: bytes) -> Deferred[None]:
        handled = maybeDeferred(self.factory.on_dispatch, payload)
        # a failing handler loses that dispatch, never the connection
        handled.addErrback(
            lambda failure: self._log.failure("The dispatch handler failed", failure=failure)
        )
        return handled.addCallback(lambda _: None)

    def _v2_frame(self, frame: bytes) -> None:
        parsed = parse_v2_frame(frame)
        if parsed is None:
            if not self.factory.command_result(self, frame):
                self._log.warn("Ignoring a v2 frame: neither a dispatch nor a command result")
            return
        entry_id, payload = parsed
        handling = self.factory.handling(entry_id)
        if handling is None:
            handling = self.factory.start_handling(entry_id)
            self._handle(payload).addCallback(lambda _: handling.finish())
        self._unacked.append(handling)
        if handling.done:
            self._ack_ready()
        else:
            handling.waiters.append(self._ack_ready)

    def _ack_ready(self) -> None:
        # Acks are cumulative: acknowledge up to the first dispatch still
        # being handled.
        unacked = self._unacked
        last = None
        while unacked and unacked[0].done:
            last = unacked.popleft().id
        if last is not None and self.state == WebSocketServerProtocol.STATE_OPEN:
            self.sendMessage(b'{"op":"ack","id":%d}' % last, isBinary=False)

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
    Accepts websocket v1 and v2 connections from the relay.

    :param client_secret: the ``clientSecret`` the bot registered.
    :param on_dispatch: called with each dispatch's raw bytes (a JSON gateway
        payload); may return a Deferred, which v2 waits for before it
        acknowledges.  Its errors are logged.
    :param reactor: for the handshake deadline; the global reactor if None.
    :param v2: whether to accept the ``dcc.v2`` subprotocol when the relay
        offers it.
    """

    protocol = DispatchReceiverProtocol  # type: ignore[assignment]

    def __init__(
        self,
        client_secret: str,
        on_dispatch: Callable[[bytes], object],
        reactor: IReactorTime | None = None,
        v2: bool = True,
    ) -> None:
        super().__init__(reactor=reactor)
        self.v2 = v2
        # v2: every id up to this was seen; those still being handled
        self._seen_up_to = 0
        self._in_progress: dict[int, _Handling] = {}
        # Autobahn would run these on txaio's (global) reactor; the handshake
        # deadline above replaces them, and a relay closing the connection is
        # answered at once.
        self.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=0)
        self._client_secret = client_secret
        self.on_dispatch = on_dispatch
        # open v2 connections, oldest first; commands go on the newest
        self._open: list[DispatchReceiverProtocol] = []
        # ref -> (connection, answer) of each command sent, not answered yet
        self._commands: dict[str, tuple[DispatchReceiverProtocol, Deferred[dict[str, Any]]]] = {}
        self._refs = 0

    def authorizes(self, header: str | None) -> bool:
        """
        Whether an ``Authorization`` header value is the relay's.
        """
        return authorization_matches(header, self._client_secret)

    def handling(self, entry_id: int) -> _Handling | None:
        """
        :return: how far a v2 dispatch already seen is (on this or an
            earlier connection), or None for a new one.
        """
        if entry_id in self._in_progress:
            return self._in_progress[entry_id]
        if entry_id <= self._seen_up_to:
            return _Handling(entry_id, done=True)
        return None

    def opened(self, connection: DispatchReceiverProtocol) -> None:
        """
        A v2 connection from the relay is open.
        """
        self._open.append(connection)

    def closed(self, connection: DispatchReceiverProtocol) -> None:
        """
        A v2 connection is gone: the commands sent on it get no answer.
        """
        if connection in self._open:
            self._open.remove(connection)
        for ref, (sent_on, answer) in list(self._commands.items()):
            if sent_on is connection:
                del self._commands[ref]
                answer.errback(NotConnected("the connection closed before the relay answered"))

    def send_command(self, op: int, d: dict[str, Any]) -> Deferred[dict[str, Any]]:
        """
        Send a gateway command (op 3 Update Presence, op 8 Request Guild
        Members) to the relay on the newest open v2 connection.

        :return: fires with the relay's answer ``{"op", "shards", "nonce"?}``,
            or fails with :class:`RegistrationError` (the relay refused it:
            its status, message and field) or :class:`NotConnected`.
        """
        if not self._open:
            return fail(NotConnected("no websocket v2 connection from the relay is open"))
        connection = self._open[-1]
        self._refs += 1
        ref = f"c{self._refs}"
        answer: Deferred[dict[str, Any]] = Deferred()
        self._commands[ref] = (connection, answer)
        connection.sendMessage(
            orjson.dumps({"op": "command", "ref": ref, "d": {"op": op, "d": d}}), isBinary=False
        )
        return answer

    def command_result(self, connection: DispatchReceiverProtocol, frame: bytes) -> bool:
        """
        Take a ``command_result`` frame from the relay.

        :return: whether ``frame`` was one.
        """
        try:
            message = orjson.loads(frame)
        except orjson.JSONDecodeError:
            return False
        if not isinstance(message, dict) or message.get("op") != "command_result":
            return False
        waiting = self._commands.pop(str(message.get("ref")), None)
        if waiting is None:
            return True
        _, answer = waiting
        status = message.get("status")
        if status == 202 and isinstance(message.get("result"), dict):
            answer.callback(message["result"])
        else:
            field = message.get("field")
            answer.errback(
                RegistrationError(
                    status if type(status) is int else 0,
                    str(message.get("error", "the relay refused the command")),
                    field if isinstance(field, str) else None,
                )
            )
        return True

    def start_handling(self, entry_id: int) -> _Handling:
        """
        Record that a new v2 dispatch is being handled.
        """
        self._seen_up_to = max(self._seen_up_to, entry_id)
        handling = _Handling(entry_id)
        self._in_progress[entry_id] = handling
        handling.waiters.append(lambda: self._in_progress.pop(entry_id, None))
        return handling


def receiver_resource(
    client_secret: str,
    on_dispatch: Callable[[bytes], object],
    reactor: IReactorTime | None = None,
) -> IResource:
    """
    A twisted.web resource that receives the relay's v1 and v2 dispatches.

    See :class:`DispatchReceiverFactory` for the arguments.
    """
    return WebSocketResource(DispatchReceiverFactory(client_secret, on_dispatch, reactor=reactor))
