"""
Byte caps on HTTP answers from URLs a bot named (its webhook ``dst``, its
``wakeUrl``): the relay needs only the status, so it never keeps more of an
answer than these caps, whatever the other end sends.

- The head (status line and header lines) is counted line by line before
  Twisted's parser sees it: that parser keeps every header line, without
  bound, until the blank line (an answer of endless header lines took the
  relay to 2 GB).  Past ``head_bytes`` bytes or ``header_lines`` lines the
  connection is cut.
- The body is read as it streams and dropped, never buffered (treq keeps a
  copy of every body unless asked not to); past ``body_bytes`` bytes the
  connection is cut.

Either way the request fails with :class:`AnswerTooLarge`, whose text names
the cap (for the bot's ``lastDeliveryError``), and the connection is not
reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.components import proxyForInterface
from twisted.python.failure import Failure
from twisted.web._newclient import HEADER, STATUS, HTTP11ClientProtocol, ResponseFailed
from twisted.web.client import HTTPConnectionPool
from twisted.web.iweb import IPolicyForHTTPS, IResponse

from dccrelay.net.guard import NoRedirectHTTPClient, outbound_agent

_HEAD = (STATUS, HEADER)


@dataclass(frozen=True)
class AnswerCaps:
    """
    How much of an answer from a bot's URL the relay reads at most.
    """

    #: bytes of the status line and headers together (``--max-answer-head``);
    #: also the cap on the answer to a websocket handshake
    head_bytes: int = 16 * 1024

    #: header lines (``--max-answer-headers``)
    header_lines: int = 100

    #: bytes of the body, read and dropped (``--max-answer-body``)
    body_bytes: int = 1024 * 1024


class AnswerTooLarge(Exception):
    """
    An answer passed one of the :class:`AnswerCaps`; the text says which,
    and the option that sets it, e.g. ``"its headers were over 16384 bytes
    (--max-answer-head)"``.
    """

    def __str__(self) -> str:
        return str(self.args[0])


def head_problem(caps: AnswerCaps, head_bytes: int, lines: int) -> str | None:
    """
    What is wrong with a head of ``head_bytes`` bytes and ``lines`` lines
    (the status line and the blank line included), or None if it is within
    ``caps``.
    """
    if head_bytes > caps.head_bytes:
        return f"its headers were over {caps.head_bytes} bytes (--max-answer-head)"
    if lines > caps.header_lines + 2:
        return f"it had over {caps.header_lines} header lines (--max-answer-headers)"
    return None


class _CappedClientProtocol(HTTP11ClientProtocol):
    """
    An HTTP/1.1 client connection that hands an answer's head to Twisted's
    parser one line at a time, each counted first, and cuts the connection
    once the head passes its caps.
    """

    def __init__(self, quiescentCallback: Callable[[Any], object], caps: AnswerCaps) -> None:
        super().__init__(quiescentCallback)
        self._caps = caps
        self._head_bytes = 0
        self._lines = 0
        self._cut = False

    def request(self, request: Any) -> Deferred[Any]:
        self._head_bytes = self._lines = 0
        finished = super().request(request)
        if self._parser is not None:
            # the parser's own line limit (16 KiB, then a slow TLS close)
            # never comes before ours
            self._parser.MAX_LENGTH = self._caps.head_bytes + 1
        return finished

    def dataReceived(self, data: bytes) -> None:
        start = 0
        while start < len(data) and not self._cut:
            parser = self._parser
            if parser is None or parser.state not in _HEAD:
                # the body, or nothing asked: Twisted's own handling
                super().dataReceived(data[start:] if start else data)
                return
            if self._within_caps_whole(data, start):
                # the usual answer: all of it could be head and still be
                # within the caps, so no need to go line by line
                super().dataReceived(data[start:] if start else data)
                return
            end = data.find(b"\n", start)
            stop = len(data) if end < 0 else end + 1
            self._head_bytes += stop - start
            self._lines += end >= 0
            problem = head_problem(self._caps, self._head_bytes, self._lines)
            if problem is not None:
                self._cut_off(problem)
                return
            super().dataReceived(data[start:stop])
            start = stop

    def _within_caps_whole(self, data: bytes, start: int) -> bool:
        size = self._head_bytes + len(data) - start
        if size > self._caps.head_bytes:
            return False
        lines = self._lines + data.count(b"\n", start)
        if head_problem(self._caps, size, lines) is not None:
            return False
        self._head_bytes, self._lines = size, lines
        return True

    def _cut_off(self, problem: str) -> None:
        self._cut = True
        self.transport.abortConnection()  # type: ignore[union-attr]
        # fails the request with ResponseFailed([AnswerTooLarge])
        self._giveUp(Failure(AnswerTooLarge(problem)))


class _CappedClientFactory(Factory):
    """
    Builds :class:`_CappedClientProtocol` for :class:`AnswerCappedPool`.
    """

    noisy = False

    def __init__(self, caps: AnswerCaps, quiescentCallback: Callable[[Any], object], metadata: Any) -> None:
        self._caps = caps
        self._quiescentCallback = quiescentCallback
        self._metadata = metadata

    def buildProtocol(self, addr: IAddress | None) -> HTTP11ClientProtocol:
        return _CappedClientProtocol(self._quiescentCallback, self._caps)


class AnswerCappedPool(HTTPConnectionPool):
    """
    A connection pool whose connections cap the heads of answers.

    :ivar caps: the caps; :class:`AnswerCappedHTTPClient` reads the body cap
        from here.
    """

    def __init__(self, reactor: Any, caps: AnswerCaps, persistent: bool = True) -> None:
        super().__init__(reactor, persistent)
        self.caps = caps
        # the pool builds each connection's factory with this (a private
        # hook, kept by every Twisted release so far: the tests fail if not)
        self._factory = partial(_CappedClientFactory, caps)  # type: ignore[assignment]


class _CappedBody(Protocol):
    """
    Passes a body on to ``inner`` until ``limit`` bytes; past it, cuts the
    connection and ends ``inner`` with :class:`AnswerTooLarge`.
    """

    def __init__(self, inner: Protocol, limit: int) -> None:
        self._inner = inner
        self._limit = limit
        self._received = 0
        self._cut = False

    def makeConnection(self, transport: Any) -> None:
        super().makeConnection(transport)
        self._inner.makeConnection(transport)

    def dataReceived(self, data: bytes) -> None:
        if self._cut:
            return
        self._received += len(data)
        if self._received > self._limit:
            self._cut = True
            # the transport's stopProducing closes the connection at once
            # (stops reading), where loseConnection would wait for TLS
            self.transport.stopProducing()  # type: ignore[union-attr]
            self._inner.connectionLost(
                Failure(AnswerTooLarge(f"its body was over {self._limit} bytes (--max-answer-body)"))
            )
            return
        self._inner.dataReceived(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self._cut:
            self._inner.connectionLost(reason)


class _CappedResponse(proxyForInterface(IResponse)):  # type: ignore[misc]
    """
    A response whose body is cut at ``limit`` bytes.
    """

    def __init__(self, original: IResponse, limit: int) -> None:
        super().__init__(original)
        self._limit = limit

    def deliverBody(self, protocol: Protocol) -> None:
        self.original.deliverBody(_CappedBody(protocol, self._limit))


def _too_large_plainly(failure: Failure) -> Failure:
    # a cut head comes as ResponseFailed([AnswerTooLarge]): give the cause
    if failure.check(ResponseFailed):
        reasons = getattr(failure.value, "reasons", None) or []
        if reasons and isinstance(reasons[0], Failure) and reasons[0].check(AnswerTooLarge):
            return reasons[0]
    return failure


class AnswerCappedHTTPClient(NoRedirectHTTPClient):
    """
    A treq client for requests to bots' URLs: no redirects, answers never
    buffered, and every answer within the caps of its pool.  An answer past
    them fails the request (or the body's reading) with
    :class:`AnswerTooLarge`.

    :param agent: an ``Agent`` on an :class:`AnswerCappedPool`.
    """

    def __init__(self, agent: Any, caps: AnswerCaps) -> None:
        super().__init__(agent)
        self.caps = caps

    def request(self, method: str, url: Any, **kwargs: Any) -> Any:
        # treq keeps a copy of every body (to read it twice) unless told not
        # to: the relay reads each body once, and drops it
        kwargs["unbuffered"] = True
        d = super().request(method, url, **kwargs)
        limit = self.caps.body_bytes
        return d.addCallbacks(lambda response: _CappedResponse(response, limit), _too_large_plainly)


def outbound_http(
    reactor: Any,
    pool: AnswerCappedPool,
    *,
    allow_private: bool,
    tls: IPolicyForHTTPS | None = None,
) -> AnswerCappedHTTPClient:
    """
    The treq client for every request to a URL a bot gave (webhooks,
    ``wakeUrl``): :func:`~dccrelay.net.guard.outbound_agent` (the
    private-address guard, verified TLS) on ``pool``, no redirects, answers
    within ``pool.caps``.
    """
    agent = outbound_agent(reactor, pool, allow_private=allow_private, tls=tls)
    return AnswerCappedHTTPClient(agent, pool.caps)
