"""
A bound on the API's connections at once.

Each connection holds a file descriptor for as long as the client keeps it
(up to the idle timeout of :mod:`dccrelay.web.channel`): one client that
opened ~1,000 idle connections took every descriptor the node had, so the
bots' own connections failed and ``/healthz`` stopped answering.  Past
``--max-api-connections`` a new connection is answered ``503`` with
``Retry-After`` and closed at once; the node's descriptors are counted with
this bound (:mod:`dccrelay.ops.descriptors`).
"""

from __future__ import annotations

from typing import Any

import orjson
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import WrappingFactory

#: connections to the API at once, by default
MAX_API_CONNECTIONS = 256

#: seconds a refused client is told to wait
RETRY_AFTER = 5


class _Busy(Protocol):
    """
    Answers ``503`` before any request is read, and closes.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit

    def connectionMade(self) -> None:
        body = orjson.dumps(
            {"error": f"the relay serves at most {self._limit} API connections at once; "
                      "try again shortly"}
        )
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 503 Service Unavailable\r\n"
            b"Content-Type: application/json\r\n"
            b"Retry-After: %d\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
            % (RETRY_AFTER, len(body), body)
        )
        self.transport.loseConnection()


class APIConnectionLimit(WrappingFactory):
    """
    The API's ``Site``, with at most ``limit`` connections at once.

    :ivar refused: connections answered ``503`` so far.
    """

    noisy = False
    _log = Logger()

    def __init__(self, site: Any, limit: int = MAX_API_CONNECTIONS) -> None:
        super().__init__(site)
        self.limit = limit
        self.refused = 0

    def logPrefix(self) -> str:
        # "Site starting on N", as without the limit
        return str(self.wrappedFactory.logPrefix())

    def buildProtocol(self, addr: IAddress | None) -> Any:
        if len(self.protocols) < self.limit:
            return super().buildProtocol(addr)
        if not self.refused % 1000:
            # once per thousand: a flood must not flood the log too
            self._log.warn(
                "The API has {limit} connections open (--max-api-connections): new ones "
                "are answered 503 ({refused} so far)",
                limit=self.limit,
                refused=self.refused + 1,
            )
        self.refused += 1
        return _Busy(self.limit)
