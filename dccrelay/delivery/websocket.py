"""
Websocket v1 delivery: the prototype's way of reaching a bot.

The wire protocol, as C1 (the Node.js prototype) spoke it:

- the relay opens a websocket (RFC 6455) to the bot's ``dst`` (``ws://`` or
  ``wss://``), sending ``Authorization: Basic base64(clientSecret)`` and
  ``User-Agent: dccrelay/<version>``; no subprotocol, no extension;
- each matching gateway payload goes as one text frame whose bytes are
  exactly the bytes Discord sent;
- the bot sends nothing back (whatever it sends is ignored) and there are no
  acknowledgements, so what was written to a connection that then drops is
  lost; what was never written stays queued;
- after ``idle_timeout`` seconds with nothing to send, the relay closes the
  connection with code 1000 so the bot's host can sleep; the next dispatch
  opens a new one.
"""

from __future__ import annotations

from base64 import b64encode
from typing import Callable, Iterable, cast

import txaio
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from autobahn.websocket.util import parse_url
from twisted.application.internet import backoffPolicy
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IReactorTime,
    IStreamClientEndpoint,
    ITCPTransport,
)
from twisted.internet.protocol import connectionDone
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from dccrelay import __version__
from dccrelay.delivery import Annotate, IDeliveryChannel, OnDelivered
from dccrelay.delivery.errors import (
    CONNECTION_LOST,
    describe_connect_failure,
    describe_tls_failure,
)
from dccrelay.delivery.queue import Backlog
from dccrelay.delivery.timers import Deadline, IdleTimer, RetryTimer
from dccrelay.websocket import AUTOBAHN_TIMERS_OFF, client_endpoint

#: seconds the bot gets to finish a close handshake before the TCP
#: connection is cut (Autobahn's own timers for this are switched off)
CLOSE_TIMEOUT = 5.0

# Channel states.  CLOSING (our idle close under way) is internal: status()
# shows it as what comes next.
IDLE = "idle"
CONNECTING = "connecting"
CONNECTED = "connected"
CLOSING = "closing"
WAITING = "waiting to retry"
STOPPED = "stopped"


class _BotConnection(WebSocketClientProtocol):
    """
    One websocket to the bot.  It only reports to its factory: opened,
    closing, and lost (with what went wrong, in words for ``lastError``).
    """

    factory: _BotConnectionFactory
    _log = Logger()
    # Autobahn logs the whole handshake request, Authorization included, at
    # debug level; pin this class's Autobahn logger above debug so that a
    # global debug setting cannot print the secret.
    log = txaio.make_logger(level="info")  # type: ignore[attr-defined]
    _was_open = False

    def onOpen(self) -> None:
        self._was_open = True
        self.factory.on_open(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.on_message(self, payload, isBinary)

    def onPong(self, payload: bytes) -> None:
        self.factory.on_pong(self, payload)

    def onCloseFrame(self, code: int, reasonRaw: bytes) -> bool | None:
        result = super().onCloseFrame(code, reasonRaw)
        self.factory.on_closing(self)
        return result

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        self.factory.on_lost(self, self._problem(reason))

    def _problem(self, reason: Failure) -> str | None:
        """
        :return: what went wrong, or None for a clean close.
        """
        if self._was_open:
            return None if self.wasClean else CONNECTION_LOST
        status_line = getattr(self, "http_status_line", None)
        if status_line is not None:
            try:
                status = int(status_line.split()[1])
            except (IndexError, ValueError):
                return "the bot did not answer the websocket handshake with HTTP"
            if status != 101:
                return f"bot answered HTTP {status} to the websocket handshake"
            return "the bot's answer to the websocket handshake was not valid"
        tls = describe_tls_failure(reason)
        if tls is not None:
            return tls
        return "the bot closed the connection during the websocket handshake"


def _abort(connection: _BotConnection) -> None:
    """
    Cut a connection at once, without a close handshake.
    """
    if connection.transport is not None:
        cast(ITCPTransport, connection.transport).abortConnection()


class _BotConnectionFactory(WebSocketClientFactory):
    """
    Builds :class:`_BotConnection` for one channel, with its URL, headers
    and callbacks.
    """

    protocol = _BotConnection  # type: ignore[assignment]
    # Not a "Starting factory" log line each time a bot is dialled.
    noisy = False

    def __init__(
        self,
        url: str,
        *,
        alias: str,
        reactor: IReactorTime,
        useragent: str,
        headers: dict[str, str],
        on_open: Callable[[_BotConnection], None],
        on_closing: Callable[[_BotConnection], None],
        on_lost: Callable[[_BotConnection, str | None], None],
        on_message: Callable[[_BotConnection, bytes, bool], None] | None = None,
        on_pong: Callable[[_BotConnection, bytes], None] | None = None,
        protocols: list[str] | None = None,
    ) -> None:
        super().__init__(
            url=url, reactor=reactor, useragent=useragent, headers=headers, protocols=protocols
        )
        # Autobahn runs its timers on txaio's reactor, the global one, not on
        # ours: switch them all off.  The channel keeps its own handshake and
        # close deadlines on the injected reactor.
        self.setProtocolOptions(**AUTOBAHN_TIMERS_OFF)
        self.alias = alias
        self.on_open = on_open
        self.on_closing = on_closing
        self.on_lost = on_lost
        self.on_message = on_message or self._ignore_message
        self.on_pong = on_pong or (lambda connection, payload: None)

    def _ignore_message(self, connection: _BotConnection, payload: bytes, isBinary: bool) -> None:
        # v1 bots have nothing to say to the relay
        connection._log.debug("Ignoring a frame from {alias}'s bot", alias=self.alias)


@implementer(IDeliveryChannel)
class WebSocketDelivery:
    """
    Delivers one bot's dispatches over websocket v1, opening the connection
    on demand and closing it when idle.

    :param reactor: for timers, name resolution and TCP.
    :param alias: the bot's alias, for logs.
    :param dst: ``ws://`` or ``wss://`` URL of the bot's receiver.
    :param client_secret: sent as ``Basic base64(client_secret)``.
    :param idle_timeout: seconds with nothing sent before closing.
    :param queue_limit: dispatches kept while the bot is unreachable; past
        it the oldest is dropped and counted.
    :param retry_policy: seconds to wait before retrying an unreachable bot,
        given the number of consecutive failures (from 1).
    :param user_agent: the ``User-Agent`` header.
    :param connect_timeout: seconds allowed for TCP, TLS and the websocket
        handshake together.
    :param tls_options_for: TLS client options for a host name (``wss``);
        the default verifies the certificate and the name.
    :param initial: payloads an earlier channel for this bot still held;
        the connection opens at once if there are any.
    :param latency: gets the seconds each dispatch waited, from
        :meth:`deliver` (the reactor turn in which its gateway frame arrived)
        to being written to the bot's connection.
    :param on_delivered: gets the payloads written to the bot's connection
        (see :data:`dccrelay.delivery.OnDelivered`).
    :param annotate: changes each payload as it is written
        (:data:`dccrelay.delivery.Annotate`).
    :raise ValueError: if ``dst`` is not a ``ws://`` or ``wss://`` URL.
    """

    log = Logger()

    #: websocket subprotocols offered in the handshake (v1: none)
    subprotocols: list[str] | None = None

    def __init__(
        self,
        reactor: IReactorTime,
        *,
        alias: str,
        dst: str,
        client_secret: str,
        idle_timeout: float = 60.0,
        queue_limit: int = 1000,
        retry_policy: Callable[[int], float] = backoffPolicy(initialDelay=1.0, maxDelay=60.0),
        user_agent: str = f"dccrelay/{__version__}",
        connect_timeout: float = 30.0,
        tls_options_for: Callable[[str], IOpenSSLClientConnectionCreator] = optionsForClientTLS,
        initial: Iterable[bytes] = (),
        latency: Callable[[float], object] | None = None,
        on_delivered: OnDelivered | None = None,
        annotate: Annotate | None = None,
    ) -> None:
        self._alias = alias
        self._on_delivered = on_delivered
        self._annotate = annotate
        self._connect_timeout = connect_timeout
        self._backlog: Backlog[bytes] = Backlog(
            queue_limit, clock=reactor.seconds, on_taken=latency
        )
        parse_url(dst)  # a ValueError now, not at the first delivery
        self._reactor = reactor
        self._dst = dst
        self._client_secret = client_secret
        self._user_agent = user_agent
        self._tls_options_for = tls_options_for
        # Built on the first connection: an idle bot's channel is then a few
        # hundred bytes, not the 6 KiB of an Autobahn factory.
        self._factory: _BotConnectionFactory | None = None
        self._endpoint: IStreamClientEndpoint | None = None
        self._retry = RetryTimer(reactor, retry_policy, self._connect)
        self._idle = IdleTimer(reactor, idle_timeout, self._idle_close)
        # one deadline at a time: the handshake while CONNECTING, the end of
        # the close handshake once either side has started it
        self._deadline = Deadline(reactor, self._deadline_passed)
        self._state = IDLE
        self._attempt: Deferred[_BotConnection] | None = None
        self._connection: _BotConnection | None = None
        self._stop_waiters: list[Deferred[None]] = []
        self._delivered = 0
        self._last_error: str | None = None
        # so that a long outage logs one warning about dropping, not hundreds
        self._overflowing = False
        for payload in initial:
            self._enqueue(payload)
        if self._has_work():
            self._connect()

    # IDeliveryChannel

    def deliver(self, payload: bytes) -> None:
        """
        Queue ``payload`` for the bot, sending it at once if connected.
        """
        try:
            self._enqueue(payload)
            if self._state == CONNECTED:
                self._flush()
            elif self._state == IDLE:
                self._connect()
            # CONNECTING and WAITING flush when a connection opens; CLOSING
            # reconnects once the closing connection is gone; STOPPED keeps
            # it for pending().
        except Exception:
            self.log.failure("Could not deliver a dispatch to {alias}", alias=self._alias)

    def stop(self) -> Deferred[None]:
        """
        Close any connection with code 1000 and cancel every timer.
        """
        self._state = STOPPED
        self._retry.cancel()
        self._idle.cancel()
        self._deadline.cancel()
        attempt, self._attempt = self._attempt, None
        if attempt is not None:
            attempt.cancel()
        connection = self._connection
        if connection is None:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._stop_waiters.append(waiter)
        if connection.state == WebSocketProtocol.STATE_CONNECTING:
            # nothing was sent on it yet: no close handshake to wait for
            _abort(connection)
        else:
            connection.sendClose(code=1000)
            self._deadline.start(CLOSE_TIMEOUT)
        return waiter

    def pending(self) -> list[bytes]:
        """
        :return: the payloads not yet written to a connection, oldest first.
        """
        return self._backlog.items()

    def status(self) -> dict[str, object]:
        """
        :return: state, counters and the last problem reaching the bot.
        """
        state = self._state
        if state == CLOSING:
            state = CONNECTING if self._has_work() else IDLE
        return {
            "state": state,
            "queued": len(self._backlog),
            "dropped": self._backlog.dropped,
            "delivered": self._delivered,
            "lastError": self._last_error,
        }

    # the queue: what a subclass with another queue overrides

    def _has_work(self) -> bool:
        """
        Whether anything waits for the bot (so a connection is needed).
        """
        return bool(self._backlog)

    def _queued(self) -> int:
        return len(self._backlog)

    def _message(self, connection: _BotConnection, payload: bytes, isBinary: bool) -> None:
        # v1 bots have nothing to say to the relay
        self.log.debug("Ignoring a frame from {alias}'s bot", alias=self._alias)

    def _pong(self, connection: _BotConnection, payload: bytes) -> None:
        pass

    def _accepts(self, connection: _BotConnection) -> str | None:
        """
        :return: why an opened connection cannot be used, or None.
        """
        return None

    def _enqueue(self, payload: bytes) -> None:
        if not isinstance(payload, bytes):
            # a str here would be re-encoded and no longer byte-identical
            raise TypeError(f"a dispatch must be bytes, not {type(payload).__name__}")
        if self._backlog.append(payload) and not self._overflowing:
            self._overflowing = True
            self.log.warn(
                "{alias}'s bot cannot be reached and {limit} dispatches wait:"
                " dropping the oldest from now on",
                alias=self._alias,
                limit=len(self._backlog),
            )

    def _flush(self) -> None:
        connection = self._connection
        assert connection is not None
        sent: list[bytes] = []
        try:
            while self._backlog and connection.state == WebSocketProtocol.STATE_OPEN:
                payload = self._backlog.first()
                connection.sendMessage(self._as_sent(payload), isBinary=False)
                # removed only once written: a failure above leaves it queued
                self._backlog.popleft()
                sent.append(payload)
        except Exception:
            self.log.failure("Could not send to {alias}'s bot", alias=self._alias)
            _abort(connection)
        if sent:
            self._delivered += len(sent)
            self._overflowing = False
            self._idle.touch()
            self._report_delivered(sent)

    def _as_sent(self, payload: bytes) -> bytes:
        if self._annotate is None:
            return payload
        try:
            return self._annotate(payload)
        except Exception:
            self.log.failure("{alias}: annotate failed", alias=self._alias)
            return payload

    def _report_delivered(self, payloads: list[bytes]) -> None:
        if self._on_delivered is not None:
            try:
                self._on_delivered(payloads)
            except Exception:
                self.log.failure("{alias}: on_delivered failed", alias=self._alias)

    # the connection

    def _connection_factory(self) -> tuple[IStreamClientEndpoint, _BotConnectionFactory]:
        if self._factory is None or self._endpoint is None:
            credentials = b64encode(self._client_secret.encode("utf-8")).decode("ascii")
            self._factory = _BotConnectionFactory(
                self._dst,
                alias=self._alias,
                reactor=self._reactor,
                useragent=self._user_agent,
                headers={"Authorization": f"Basic {credentials}"},
                on_open=self._opened,
                on_closing=self._closing,
                on_lost=self._lost,
                on_message=self._message,
                on_pong=self._pong,
                protocols=self.subprotocols,
            )
            self._endpoint = client_endpoint(
                self._reactor, self._factory, self._tls_options_for, self._connect_timeout
            )
        return self._endpoint, self._factory

    def _connect(self) -> None:
        self._state = CONNECTING
        self._deadline.start(self._connect_timeout)
        endpoint, factory = self._connection_factory()
        attempt = cast("Deferred[_BotConnection]", endpoint.connect(factory))
        self._attempt = attempt

        def connected(connection: _BotConnection) -> None:
            if self._attempt is attempt:
                self._attempt = None
                self._connection = connection

        def failed(reason: Failure) -> None:
            # an attempt we cancelled (deadline, stop) was already dealt with
            if self._attempt is attempt:
                self._attempt = None
                self._failed(describe_connect_failure(reason))

        attempt.addCallbacks(connected, failed)

    def _opened(self, connection: _BotConnection) -> None:
        if connection is not self._connection or self._state != CONNECTING:
            return
        problem = self._accepts(connection)
        if problem is not None:
            self._connection = None
            _abort(connection)
            self._failed(problem)
            return
        self._deadline.cancel()
        self._retry.succeeded()
        self._last_error = None
        self._state = CONNECTED
        self.log.info("Connected to {alias}'s bot", alias=self._alias)
        self._flush()
        if not self._idle.active:
            self._idle.touch()

    def _closing(self, connection: _BotConnection) -> None:
        # A close frame came (the bot's, or its answer to ours).  The server
        # is the one to drop TCP; give it CLOSE_TIMEOUT seconds to.
        if connection is self._connection and not self._deadline.active:
            self._deadline.start(CLOSE_TIMEOUT)

    def _lost(self, connection: _BotConnection, problem: str | None) -> None:
        if connection is not self._connection:
            # one we abandoned after its deadline
            return
        self._connection = None
        self._idle.cancel()
        self._deadline.cancel()
        state = self._state
        if state == STOPPED:
            waiters, self._stop_waiters = self._stop_waiters, []
            for waiter in waiters:
                waiter.callback(None)
        elif state == CONNECTING:
            self._failed(problem or "the bot closed the connection during the websocket handshake")
        else:
            if state == CONNECTED:
                if problem is None:
                    self.log.info("{alias}'s bot closed the connection", alias=self._alias)
                else:
                    self._last_error = problem
                    self.log.warn(
                        "Connection to {alias}'s bot: {problem}", alias=self._alias, problem=problem
                    )
            self._state = IDLE
            if self._has_work():
                # dispatches came while it was closing
                self._connect()

    def _failed(self, problem: str) -> None:
        self._deadline.cancel()
        self._last_error = problem
        if not self._has_work():
            self._state = IDLE
            return
        self._state = WAITING
        delay = self._retry.failed()
        self.log.warn(
            "Could not reach {alias}'s bot ({problem}); {queued} dispatches wait,"
            " next attempt in {delay:.1f} s",
            alias=self._alias,
            problem=problem,
            queued=self._queued(),
            delay=delay,
        )

    def _idle_close(self) -> None:
        if self._state != CONNECTED or self._has_work():
            return
        assert self._connection is not None
        self._state = CLOSING
        self.log.info("Closing the idle connection to {alias}'s bot", alias=self._alias)
        self._connection.sendClose(code=1000)
        self._deadline.start(CLOSE_TIMEOUT)

    def _deadline_passed(self) -> None:
        if self._state == CONNECTING:
            connection, self._connection = self._connection, None
            attempt, self._attempt = self._attempt, None
            if connection is not None:
                problem = (
                    "the bot did not answer the websocket handshake within"
                    f" {self._connect_timeout:g} s"
                )
                _abort(connection)
            else:
                problem = f"could not connect to the bot within {self._connect_timeout:g} s"
                if attempt is not None:
                    attempt.cancel()
            self._failed(problem)
        elif self._connection is not None:
            # the bot did not finish the close handshake
            _abort(self._connection)
