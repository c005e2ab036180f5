"""
The HTTP connection of the relay's site, with deadlines against slow
clients ("slow loris").

Twisted's idle timeout (``Site(timeout=...)``) closes a connection on which
nothing arrives for a while, but a client that sends one byte now and then
never trips it and holds the connection, and its buffers, for ever.  So a
whole request (request line, headers and body) must also arrive within
:data:`REQUEST_DEADLINE` seconds of the connection opening or of the
previous response; otherwise the client gets ``408`` (or, if nothing of a
request came, nothing) and the connection is closed, and cut
:attr:`~twisted.web.http.HTTPChannel.abortTimeout` seconds later if the
client does not let go.
"""

from __future__ import annotations

from typing import Any

import orjson
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel

#: seconds with nothing received before a connection is closed
IDLE_TIMEOUT = 60

#: seconds for a whole request to arrive
REQUEST_DEADLINE = 30.0


class DeadlineChannel(HTTPChannel):
    """
    An ``HTTPChannel`` that gives each request :attr:`request_deadline`
    seconds to arrive in full.
    """

    request_deadline = REQUEST_DEADLINE
    _deadline_call: IDelayedCall | None = None
    # whether any byte of the next request came since the deadline was set
    _started = False
    _log = Logger()

    def connectionMade(self) -> None:
        super().connectionMade()
        self._arm()

    def dataReceived(self, data: bytes) -> None:
        self._started = True
        super().dataReceived(data)

    def _arm(self) -> None:
        self._disarm()
        self._started = False
        self._deadline_call = self.callLater(self.request_deadline, self._too_slow)

    def _disarm(self) -> None:
        call, self._deadline_call = self._deadline_call, None
        if call is not None and call.active():
            call.cancel()

    def allContentReceived(self) -> None:
        self._disarm()
        super().allContentReceived()

    def requestDone(self, request: Any) -> None:
        super().requestDone(request)
        transport: Any = self.transport
        if self.persistent and transport is not None and transport.connected:
            self._arm()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._disarm()
        super().connectionLost(reason)

    def _too_slow(self) -> None:
        self._deadline_call = None
        transport: Any = self.transport
        if transport is None:
            return
        # One way of closing at a time: not the idle timeout as well.  Cut
        # the connection if the client does not let go (as Twisted's own
        # idle timeout does).
        self.setTimeout(None)
        self._abortingCall = self.callLater(self.abortTimeout, self.forceAbortClient)
        if not self._started:
            # Nothing of a request came (an idle keep-alive connection):
            # there is no one to answer.
            self.loseConnection()
            return
        self._log.info(
            "Closing a connection from {peer}: no complete request within {seconds} s",
            peer=str(transport.getPeer()),
            seconds=self.request_deadline,
        )
        body = orjson.dumps(
            {"error": f"the request did not arrive within {self.request_deadline:g} seconds"}
        )
        transport.write(
            b"HTTP/1.1 408 Request Timeout\r\n"
            b"Content-Type: application/json\r\n"
            b"Connection: close\r\n"
            b"Content-Length: " + str(len(body)).encode("ascii") + b"\r\n\r\n" + body
        )
        self.loseConnection()
