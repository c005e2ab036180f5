"""
One websocket to a bot, as Autobahn sees it, and the dialer that opens it.

:class:`BotConnection` only turns the connection's events into calls on an
:class:`IBotLinkListener` (the channel): opened, closing, a message, a
pong, and lost, with what went wrong in words for ``lastError``.
:class:`BotDialer` builds the Autobahn factory and the endpoint on the first
connection, so that an idle bot costs a few hundred bytes, not the 6 KiB of
an Autobahn factory.
"""

from __future__ import annotations

from base64 import b64encode
from typing import Callable, cast

import txaio
from autobahn.twisted.websocket import WebSocketClientFactory
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IReactorTime,
    IStreamClientEndpoint,
    ITCPTransport,
)
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from zope.interface import Interface

from dccrelay.delivery.config import DeliveryConfig
from dccrelay.delivery.errors import CONNECTION_LOST, describe_tls_failure
from dccrelay.net.answer_caps import AnswerCaps
from dccrelay.net.websocket import AUTOBAHN_TIMERS_OFF, CappedHandshakeProtocol, client_endpoint


class IBotLinkListener(Interface):
    """
    What hears about a :class:`BotConnection` (the channel).  Each call
    names the connection, so that news of one the listener abandoned can
    be ignored.
    """

    def bot_opened(connection: BotConnection) -> None:
        "The websocket handshake succeeded."

    def bot_closing(connection: BotConnection) -> None:
        "A close frame came: the bot's, or its answer to ours."

    def bot_lost(connection: BotConnection, problem: str | None) -> None:
        "The connection is gone; ``problem`` is None for a clean close."

    def bot_message(connection: BotConnection, data: bytes) -> None:
        "The bot sent a whole message."

    def bot_pong(connection: BotConnection) -> None:
        "The bot answered a ping."


class BotConnection(CappedHandshakeProtocol):
    """
    One websocket to the bot.  It only reports to its listener.
    """

    factory: BotConnectionFactory
    # Autobahn logs the whole handshake request, Authorization included, at
    # debug level; pin this class's Autobahn logger above debug so that a
    # global debug setting cannot print the secret.
    log = txaio.make_logger(level="info")  # type: ignore[attr-defined]
    _was_open = False

    def onOpen(self) -> None:
        self._was_open = True
        self.factory.listener.bot_opened(self)

    def onMessageFrameBegin(self, length: int) -> None:
        super().onMessageFrameBegin(length)
        # A message of many frames, each under the frame limit, is cut off
        # as soon as its total passes the limit too.
        if not self.failedByMe and self.message_data_total_length > self.factory.max_message:
            self.wasMaxMessagePayloadSizeExceeded = True
            self.dropConnection(abort=True)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.listener.bot_message(self, payload)

    def onPong(self, payload: bytes) -> None:
        self.factory.listener.bot_pong(self)

    def onCloseFrame(self, code: int, reasonRaw: bytes) -> bool | None:
        result = super().onCloseFrame(code, reasonRaw)
        self.factory.listener.bot_closing(self)
        return result

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        self.factory.listener.bot_lost(self, self._problem(reason))
        self._let_go()

    def _let_go(self) -> None:
        """
        Drop what ties this ended connection into reference cycles, so that
        reference counting frees it at once: what lives at start-up is
        frozen out of the collector's sight (:mod:`dccrelay.ops.collector`),
        and a frozen connection left in a cycle would never be freed.
        """
        self.factory = None  # type: ignore[assignment]
        self.is_open = self.is_closed = None

    def _problem(self, reason: Failure) -> str | None:
        """
        :return: what went wrong, or None for a clean close.
        """
        if self._was_open:
            if self.wasMaxFramePayloadSizeExceeded or self.wasMaxMessagePayloadSizeExceeded:
                return (
                    f"the bot sent a websocket message over {self.factory.max_message} bytes "
                    "(a bot sends only acknowledgements and commands)"
                )
            return None if self.wasClean else CONNECTION_LOST
        if self.handshake_problem is not None:
            return f"the bot's answer to the websocket handshake was cut off: {self.handshake_problem}"
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


def abort(connection: BotConnection) -> None:
    """
    Cut a connection at once, without a close handshake.
    """
    if connection.transport is not None:
        cast(ITCPTransport, connection.transport).abortConnection()


class BotConnectionFactory(WebSocketClientFactory):
    """
    Builds :class:`BotConnection` for one listener, with its URL and
    headers.
    """

    protocol = BotConnection  # type: ignore[assignment]
    # Not a "Starting factory" log line each time a bot is dialled.
    noisy = False

    def __init__(
        self,
        url: str,
        *,
        listener: IBotLinkListener,
        reactor: IReactorTime,
        useragent: str,
        headers: dict[str, str],
        protocols: list[str] | None,
        max_message: int,
        handshake_caps: AnswerCaps,
    ) -> None:
        super().__init__(
            url=url, reactor=reactor, useragent=useragent, headers=headers, protocols=protocols
        )
        # Autobahn runs its timers on txaio's reactor, the global one, not on
        # ours: switch them all off.  The channel keeps its own handshake and
        # close deadlines on the injected reactor.  Autobahn buffers a whole
        # frame unless told a limit (0 is none): a bot's frame header over
        # the limit now drops the connection.  (Its message limit would cap
        # what the relay sends too: BotConnection counts messages itself.)
        self.setProtocolOptions(**AUTOBAHN_TIMERS_OFF, maxFramePayloadSize=max_message)
        self.max_message = max_message
        # read by CappedHandshakeProtocol
        self.handshake_caps = handshake_caps
        self.listener = listener


class BotDialer:
    """
    Opens websockets to one bot's ``dst``, building what that needs on the
    first call.

    :param subprotocols: offered in the handshake (the framing's).
    :param tls_options_for: TLS client options for a host name (``wss``).
    """

    def __init__(
        self,
        reactor: IReactorTime,
        *,
        dst: str,
        client_secret: str,
        subprotocols: list[str] | None,
        config: DeliveryConfig,
        listener: IBotLinkListener,
        tls_options_for: Callable[[str], IOpenSSLClientConnectionCreator],
    ) -> None:
        self._reactor = reactor
        self._dst = dst
        self._client_secret = client_secret
        self._subprotocols = subprotocols
        self._config = config
        self._listener = listener
        self._tls_options_for = tls_options_for
        self._endpoint: IStreamClientEndpoint | None = None
        self._factory: BotConnectionFactory | None = None

    def dial(self) -> Deferred[BotConnection]:
        """
        :return: fires with the connection once TCP (and TLS) is up; the
            websocket handshake follows, reported to the listener.
        """
        if self._endpoint is None or self._factory is None:
            credentials = b64encode(self._client_secret.encode("utf-8")).decode("ascii")
            factory = BotConnectionFactory(
                self._dst,
                listener=self._listener,
                reactor=self._reactor,
                useragent=self._config.user_agent,
                headers={"Authorization": f"Basic {credentials}"},
                protocols=self._subprotocols,
                max_message=self._config.max_bot_message,
                handshake_caps=self._config.answer_caps,
            )
            self._endpoint = client_endpoint(
                self._reactor, factory, self._tls_options_for, self._config.connect_timeout
            )
            self._factory = factory
        return cast("Deferred[BotConnection]", self._endpoint.connect(self._factory))
