"""
A strict Discord simulator: gateway websockets and the REST calls a relay
makes, on one port, for tests and local demos.

Usage::

    sim = DiscordSimulator(reactor, heartbeat_interval=41250, random=random.Random())
    port = await sim.listen("tcp:0:interface=127.0.0.1")
    bot = sim.add_bot(token="token", user_id="1111")
    # point the relay at sim.api_url; GET /gateway/bot gives sim.gateway_url
    await bot.wait_for_ready()
    frame = bot.message("hello")
    ...
    await sim.stop()

Paths: ``/api/v10/...`` (see :mod:`dccrelay.testing.rest`), ``/gateway`` and
``/resume`` (websockets; see :mod:`dccrelay.testing.connection`), and, with
``control_api=True``, ``/_sim/...`` (see :mod:`dccrelay.testing.control`).

``sim.events`` records what happened as ``(kind, detail)`` tuples:

=========================  ==================================================
kind                       detail
=========================  ==================================================
``connect``                ``"gateway"`` or ``"resume"``: the URL used
``identify``               shard id of an accepted IDENTIFY
``identify_refused``       ``"max_concurrency"`` or ``"session_start_limit"``
``ready``                  shard id
``resume``                 shard id of an accepted RESUME
``resume_refused``         ``"unknown_session"``, ``"wrong_url"``, ``"expired"``,
                           ``"replay_unavailable"`` or why the session ended
``resumed``                shard id
``invalid_session``        the ``d`` of an op 9 sent
``reconnect``              shard id (op 7 sent)
``heartbeat_request``      shard id (op 1 sent)
``close``                  close code the simulator sent
``client_close``           close code the client sent (None without one)
``drop``                   shard id (TCP aborted by the simulator)
``superseded``             shard id (an old connection dropped by a RESUME)
``disconnect``             shard id, or None if it never identified
``session_expired``        shard id
``typing``                 channel id (REST)
``message``                channel id (REST)
``rate_limited``           route name, or ``"global"`` (REST, answered 429)
``presence``               shard id of an accepted Update Presence (op 3)
``member_request``         the nonce of a Request Guild Members (op 8), or None
``interaction``            id of an INTERACTION_CREATE made
``interaction_answered``   ``(id, response type)`` of its first answer
``interaction_failed``     id of one not answered within 3 s
``interaction_edited``     id, original response edited
``interaction_followup``   id, follow-up message sent
=========================  ==================================================
"""

from __future__ import annotations

import random as _random
from collections import Counter
from collections.abc import Iterable
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IAddress, IListeningPort
from twisted.internet.protocol import connectionDone
from twisted.internet.ssl import CertificateOptions
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from twisted.web.server import Site

from dccrelay.testing import codes, objects
from dccrelay.testing._http import Root
from dccrelay.testing.connection import GatewayWire, SimulatedConnection
from dccrelay.testing.gateway_server import GatewayServerFactory
from dccrelay.testing.interactions import Interactions
from dccrelay.testing.members import CHUNK_SIZE, add_members
from dccrelay.testing.ratelimits import SimulatedRateLimits
from dccrelay.testing.rest import DiscordAPI
from dccrelay.testing.session import SimulatedSession
from dccrelay.testing.tls import serve_tls

#: One day, in seconds: the session start limit window.
_DAY = 86400.0


class SimulatedBot:
    """
    A bot application the simulator knows, by its token.

    :ivar identifies: IDENTIFY payloads received with this token.
    :ivar resumes: RESUME payloads received with this token.
    :ivar identify_urls: IDENTIFYs per URL kind (``"gateway"``, ``"resume"``).
    :ivar resume_urls: RESUMEs per URL kind.
    :ivar sessions: every session started, oldest first.
    :ivar remaining: identifies left in the current day.
    """

    def __init__(
        self,
        simulator: DiscordSimulator,
        *,
        token: str,
        user_id: str,
        username: str,
        shards: int | None,
        max_concurrency: int,
        total: int,
        remaining: int,
        reset_after: int,
        privileged_intents: int,
    ) -> None:
        self._sim = simulator
        self.token = token
        self.user_id = user_id
        self.username = username
        self.shards = shards
        self.max_concurrency = max_concurrency
        self.total = total
        self.remaining = remaining
        self.privileged_intents = privileged_intents
        self.identifies = 0
        self.resumes = 0
        self.identify_urls: Counter[str] = Counter()
        self.resume_urls: Counter[str] = Counter()
        self.sessions: list[SimulatedSession] = []
        #: the latest presence (op 3 ``d``) set on each shard
        self.presences: dict[int, dict[str, Any]] = {}
        #: every Request Guild Members received: ``(shard_id, d)``
        self.member_requests: list[tuple[int | None, dict[str, Any]]] = []
        #: guild id -> member objects, for op 8 (see :meth:`add_members`)
        self.guild_members: dict[str, list[dict[str, Any]]] = {}
        #: guild id -> when its whole member list was last asked for
        self.all_members_asked: dict[str, float] = {}
        self._reset_at = simulator.clock.seconds() + reset_after / 1000
        self._bucket_last: dict[int, float] = {}
        self._ready_waiters: dict[int, list[Deferred[SimulatedConnection]]] = {}

    def __repr__(self) -> str:
        return f"<SimulatedBot {self.user_id} shards={self.shards}>"

    @property
    def connections(self) -> list[SimulatedConnection]:
        """Live gateway connections that presented this bot's token, newest last."""
        return [c for c in self._sim.connections if c.bot is self]

    def connections_for(self, shard_id: int) -> list[SimulatedConnection]:
        """Live connections serving ``shard_id``, newest last."""
        return [c for c in self.connections if c.shard_id == shard_id]

    def session_for(self, shard_id: int) -> SimulatedSession | None:
        """The newest session started for ``shard_id``, if any."""
        for session in reversed(self.sessions):
            if session.shard_id == shard_id:
                return session
        return None

    def user_object(self) -> dict[str, Any]:
        """The bot's user, as READY carries it."""
        user = objects.user(self.user_id, self.username, bot=True)
        user.update({"verified": True, "mfa_enabled": False, "flags": 0, "email": None})
        return user

    # -- driving the gateway -------------------------------------------------

    def dispatch(self, t: str, d: Any, shard_id: int = 0) -> bytes:
        """
        Emit a dispatch (op 0) with the next sequence number of the shard's
        newest session. It is sent at once if a connection is attached, and
        always kept for RESUME to replay.

        :return: the exact payload bytes (as sent, before any transport
            compression).
        :raise LookupError: when the shard never had a session.
        """
        session = self.session_for(shard_id)
        if session is None:
            raise LookupError(
                f"bot {self.user_id} has no session for shard {shard_id}:"
                " nothing has identified for it yet"
            )
        frame = session.next_dispatch(t, d)
        if session.connection is not None:
            session.connection.send_dispatch(frame)
        return frame

    def message(
        self,
        content: str,
        *,
        author_bot: bool = False,
        guild_id: str | None = "2222",
        channel_id: str = "3333",
        mentions: Iterable[str | dict[str, Any]] = (),
        author_id: str | None = None,
        shard_id: int | None = None,
    ) -> bytes:
        """
        Dispatch a realistic MESSAGE_CREATE.

        :param author_bot: whether the author is a bot (``author.bot``).
        :param guild_id: None for a direct message.
        :param mentions: user ids (this bot's own id gives its user) or
            complete user objects.
        :param shard_id: default: the shard the guild maps to
            (``(guild_id >> 22) % shards``), 0 for direct messages.
        :return: the exact payload bytes.
        """
        if author_id is None:
            author_id = "5555" if author_bot else "4444"
        author = objects.user(
            author_id, "another-bot" if author_bot else "someone", bot=author_bot
        )
        d = objects.message(
            message_id=self._sim.snowflake(),
            channel_id=channel_id,
            guild_id=guild_id,
            author=author,
            content=content,
            now=self._sim.clock.seconds(),
            mentions=[self._mentioned(m) for m in mentions],
        )
        if shard_id is None:
            shard_id = self.shard_for_guild(guild_id)
        session = self.session_for(shard_id)
        if (
            self._sim.blank_content
            and session is not None
            and not session.intents & codes.MESSAGE_CONTENT
            and not objects.content_exempt(d, self.user_id)
        ):
            objects.blank_content(d)
        return self.dispatch("MESSAGE_CREATE", d, shard_id)

    def add_members(self, guild_id: str, count: int) -> list[dict[str, Any]]:
        """
        Give a guild ``count`` more members (users ``member0``, ``member1``,
        ...), for Request Guild Members to find.
        """
        return add_members(
            self.guild_members, guild_id, count, now=self._sim.clock.seconds()
        )

    def interaction(
        self,
        *,
        kind: int = 2,
        name: str = "cookout",
        custom_id: str = "bring-chips",
        guild_id: str | None = "2222",
        channel_id: str = "3333",
        shard_id: int | None = None,
    ) -> bytes:
        """
        Dispatch a realistic INTERACTION_CREATE
        (:mod:`dccrelay.testing.interactions`): a slash command (``kind`` 2,
        ``name``), a button press (3, ``custom_id``), an autocomplete (4) or
        a modal submit (5).  Discord's 3 s to answer it start now.

        :return: the exact payload bytes.
        """
        d = self._sim.interactions.create(
            self, kind=kind, name=name, custom_id=custom_id, guild_id=guild_id,
            channel_id=channel_id,
        )
        if shard_id is None:
            shard_id = self.shard_for_guild(guild_id)
        return self.dispatch("INTERACTION_CREATE", d, shard_id)

    def shard_for_guild(self, guild_id: str | None) -> int:
        """Discord's routing: ``(guild_id >> 22) % shards``; DMs go to 0."""
        if guild_id is None:
            return 0
        return (int(guild_id) >> 22) % (self.shards or 1)

    def wait_for_ready(self, shard_id: int = 0) -> Deferred[SimulatedConnection]:
        """
        Fires with the connection when ``shard_id`` next reaches READY or
        RESUMED; at once if a live, not closing connection already has.
        """
        for connection in reversed(self.connections_for(shard_id)):
            if connection.ready:
                return succeed(connection)
        waiter: Deferred[SimulatedConnection] = Deferred()
        self._ready_waiters.setdefault(shard_id, []).append(waiter)
        return waiter

    def wait_for_disconnect(self, shard_id: int = 0) -> Deferred[None]:
        """
        Fires once every connection now serving ``shard_id`` is gone; at once
        if there is none.
        """
        live = self.connections_for(shard_id)
        if not live:
            return succeed(None)
        done = gatherResults([c.wait_closed() for c in live])
        return done.addCallback(lambda _: None)

    # -- used by connections ---------------------------------------------------

    def claim_identify(self, shard_id: int) -> str | None:
        """
        Take an identify slot for ``shard_id``: one per concurrency bucket
        (``shard_id % max_concurrency``) per identify window, and one of the
        day's session starts.

        :return: None if granted, else why not.
        """
        now = self._sim.clock.seconds()
        self._refresh_limit(now)
        if self.remaining <= 0:
            return "session_start_limit"
        key = shard_id % self.max_concurrency
        last = self._bucket_last.get(key)
        if last is not None and now - last < self._sim.identify_window:
            return "max_concurrency"
        self._bucket_last[key] = now
        self.remaining -= 1
        return None

    def session_start_limit(self) -> dict[str, int]:
        """The ``session_start_limit`` object of ``GET /gateway/bot``."""
        now = self._sim.clock.seconds()
        self._refresh_limit(now)
        return {
            "total": self.total,
            "remaining": self.remaining,
            "reset_after": int(max(0.0, self._reset_at - now) * 1000),
            "max_concurrency": self.max_concurrency,
        }

    def became_ready(self, connection: SimulatedConnection) -> None:
        """Fire the waiters of the connection's shard."""
        if connection.shard_id is None:
            return
        waiters = self._ready_waiters.pop(connection.shard_id, [])
        for waiter in waiters:
            waiter.callback(connection)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary, token masked, for the control API."""
        return {
            "user_id": self.user_id,
            "token": "..." + self.token[-4:],
            "shards": self.shards,
            "identifies": self.identifies,
            "resumes": self.resumes,
            "session_start_limit": self.session_start_limit(),
            "sessions": [s.describe() for s in self.sessions],
            "connections": [
                {"number": c.number, "url": c.url_kind, "shard": c.shard_id, "ready": c.ready}
                for c in self.connections
            ],
        }

    def _refresh_limit(self, now: float) -> None:
        if now >= self._reset_at:
            self.remaining = self.total
            self._reset_at = now + _DAY

    def _mentioned(self, mention: str | dict[str, Any]) -> dict[str, Any]:
        if isinstance(mention, dict):
            return mention
        if mention == self.user_id:
            return objects.user(self.user_id, self.username, bot=True)
        return objects.user(mention, f"user{mention}")


class _TrackedConnection(ProtocolWrapper):
    """Leaves the tracker only after the wrapped protocol has seen the loss."""

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        try:
            self.wrappedProtocol.connectionLost(reason)
        finally:
            self.factory.unregisterProtocol(self)


class _ConnectionTracker(WrappingFactory):
    """Keeps every accepted TCP connection so stop() can end them all."""

    protocol = _TrackedConnection

    def __init__(self, wrapped: Any) -> None:
        super().__init__(wrapped)
        self._idle: list[Deferred[None]] = []

    def unregisterProtocol(self, p: Any) -> None:
        super().unregisterProtocol(p)
        if not self.protocols:
            idle, self._idle = self._idle, []
            for waiter in idle:
                waiter.callback(None)

    def abort_all(self) -> Deferred[None]:
        """Abort every connection; fires once all are gone."""
        if not self.protocols:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._idle.append(waiter)
        for wrapper in list(self.protocols):
            if wrapper.transport is not None:
                wrapper.transport.abortConnection()
        return waiter


class DiscordSimulator:
    """
    Discord's gateway and REST API as far as a relay needs them, strict where
    Discord is strict.

    :param reactor: provides time (``callLater``, ``seconds``) and whatever
        the ``listen`` endpoint needs; also kept as :attr:`clock`.
    :param heartbeat_interval: milliseconds, sent in HELLO.
    :param random: source of session ids.
    :param session_timeout: seconds a disconnected session stays resumable.
    :param heartbeat_timeout: seconds without a heartbeat before closing
        with 4009; default 1.5 x ``heartbeat_interval``.
    :param identify_window: seconds one concurrency bucket stays taken.
    :param payload_limit: payloads a client may send per ``payload_window``
        seconds on one connection before 4008.
    :param replay_limit: dispatches a session keeps for RESUME (None: all).
    :param control_api: serve ``/_sim/`` (see :mod:`dccrelay.testing.control`).
    :param lean: for benchmarks with thousands of connections: keep no
        :attr:`events`, no per-connection ``sent``/``received`` lists, and
        log no event.
    :param zstd_level: the zstd level of ``compress=zstd-stream``
        connections (3, zstd's default, gives a 2 MiB window).
    :param tls: TLS server options (e.g. from
        :class:`dccrelay.testing.tls.ThrowAwayCA`): serve ``https`` and
        ``wss``, as Discord does; None serves plain ``http`` and ``ws``.
    """

    _log = Logger()

    def __init__(
        self,
        reactor: Any,
        heartbeat_interval: int = 41250,
        random: _random.Random | None = None,
        *,
        session_timeout: float = 60.0,
        heartbeat_timeout: float | None = None,
        identify_window: float = 5.0,
        payload_limit: int = 120,
        payload_window: float = 60.0,
        replay_limit: int | None = None,
        control_api: bool = False,
        lean: bool = False,
        zstd_level: int = 3,
        tls: CertificateOptions | None = None,
        blank_content: bool = True,
    ) -> None:
        self._reactor = reactor
        self._tls = tls
        #: as Discord: guild messages reach a session without the privileged
        #: MESSAGE_CONTENT intent with their content, embeds, attachments and
        #: components empty (see :func:`objects.content_exempt` for the
        #: exceptions)
        self.blank_content = blank_content
        self.keep_frames = not lean
        self.zstd_level = zstd_level
        #: the load generator of ``POST /_sim/load``, once one was started
        self.load: Any = None
        self.clock = reactor
        self.heartbeat_interval = heartbeat_interval
        self.random = random if random is not None else _random.Random()
        self.session_timeout = session_timeout
        self._heartbeat_timeout = heartbeat_timeout
        self.identify_window = identify_window
        self.payload_limit = payload_limit
        self.payload_window = payload_window
        self.replay_limit = replay_limit
        self.control_api = control_api
        self.bots: dict[str, SimulatedBot] = {}
        self.sessions: dict[str, SimulatedSession] = {}
        self.connections: list[SimulatedConnection] = []
        self.events: list[tuple[str, Any]] = []
        self.typing: list[tuple[str, str]] = []
        self.messages: list[tuple[str, str, dict[str, Any]]] = []
        #: REST rate limits, and the invalid requests and 429s answered
        self.rate_limits = SimulatedRateLimits(reactor)
        #: members per GUILD_MEMBERS_CHUNK, at most
        self.member_chunk_size = CHUNK_SIZE
        #: every interaction made, and its answers
        self.interactions = Interactions(self)
        self._snowflakes = objects.SnowflakeMaker()
        self._connection_count = 0
        self._port: IListeningPort | None = None
        self._tracker: _ConnectionTracker | None = None
        self._base: str | None = None

    @property
    def heartbeat_timeout(self) -> float:
        """
        Seconds a client may go without heartbeating (after HELLO or its last
        heartbeat) before 4009: as configured, else 1.5 x the interval.
        """
        if self._heartbeat_timeout is not None:
            return self._heartbeat_timeout
        return self.heartbeat_interval * 1.5 / 1000

    @heartbeat_timeout.setter
    def heartbeat_timeout(self, seconds: float | None) -> None:
        self._heartbeat_timeout = seconds

    # -- addresses -------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """``http(s)://host:port/api/v10``: what the relay's ``--discord-api`` takes."""
        return f"{self._scheme('http')}://{self._where()}/api/v10"

    @property
    def gateway_url(self) -> str:
        """``ws(s)://host:port/gateway``, as ``GET /gateway/bot`` gives it."""
        return f"{self._scheme('ws')}://{self._where()}/gateway"

    @property
    def resume_url(self) -> str:
        """``ws(s)://host:port/resume``, READY's ``resume_gateway_url``."""
        return f"{self._scheme('ws')}://{self._where()}/resume"

    @property
    def control_url(self) -> str:
        """``http(s)://host:port/_sim``, when ``control_api`` is on."""
        return f"{self._scheme('http')}://{self._where()}/_sim"

    def _scheme(self, plain: str) -> str:
        return plain + "s" if self._tls is not None else plain

    def _where(self) -> str:
        if self._base is None:
            raise RuntimeError("the simulator is not listening: call listen() first")
        return self._base

    # -- lifecycle ---------------------------------------------------------------

    def listen(self, description: str = "tcp:0:interface=127.0.0.1") -> Deferred[IListeningPort]:
        """
        Serve REST and websockets on one port.

        :param description: a Twisted server endpoint description.
        :return: fires with the listening port.
        """
        root = Root()
        root.putChild(b"api", DiscordAPI(self))
        root.putChild(
            b"gateway", WebSocketResource(GatewayServerFactory(self, "gateway", self._reactor))
        )
        root.putChild(
            b"resume", WebSocketResource(GatewayServerFactory(self, "resume", self._reactor))
        )
        if self.control_api:
            from dccrelay.testing.control import ControlAPI

            root.putChild(b"_sim", ControlAPI(self))
        site: Any = Site(root, reactor=self._reactor, timeout=None)
        if self._tls is not None:
            # TLS inside the tracker: the site's connections see the TLS
            # transport (Autobahn asks it for the channel id).
            site = serve_tls(self._tls, site)
        self._tracker = _ConnectionTracker(site)
        endpoint = serverFromString(self._reactor, description)

        def listening(port: IListeningPort) -> IListeningPort:
            self._port = port
            self._base = _host_port(port.getHost())
            self._log.info("Discord simulator listening at {url}", url=self.api_url)
            return port

        listened: Deferred[IListeningPort] = endpoint.listen(self._tracker)
        return listened.addCallback(listening)

    def stop(self) -> Deferred[None]:
        """Stop listening, abort every connection and cancel every timer."""
        port, self._port = self._port, None
        waits: list[Deferred[Any]] = []
        if port is not None:
            waits.append(maybeDeferred(port.stopListening))
        if self._tracker is not None:
            waits.append(self._tracker.abort_all())

        def cancel_timers(_: object) -> None:
            for session in self.sessions.values():
                session.stop()
            self.interactions.stop()

        return gatherResults(waits).addCallback(cancel_timers)

    # -- bots ----------------------------------------------------------------------

    def add_bot(
        self,
        token: str,
        user_id: str = "1111",
        shards: int | None = 1,
        max_concurrency: int = 1,
        remaining: int = 1000,
        privileged_intents: int = 0,
        *,
        username: str | None = None,
        total: int = 1000,
        reset_after: int = 86_400_000,
    ) -> SimulatedBot:
        """
        Register a valid bot token.

        :param shards: the shard count IDENTIFY must use and ``/gateway/bot``
            recommends; None accepts any count.
        :param max_concurrency: identify concurrency buckets.
        :param remaining: identifies left today (``session_start_limit``).
        :param privileged_intents: privileged intent bits enabled "in the
            developer portal".
        :param reset_after: milliseconds until ``remaining`` resets to ``total``.
        """
        if token in self.bots:
            raise ValueError("a bot with that token already exists")
        bot = SimulatedBot(
            self,
            token=token,
            user_id=user_id,
            username=username or f"bot{user_id}",
            shards=shards,
            max_concurrency=max_concurrency,
            total=total,
            remaining=remaining,
            reset_after=reset_after,
            privileged_intents=privileged_intents,
        )
        self.bots[token] = bot
        return bot

    def bots_by_user_id(self) -> dict[str, SimulatedBot]:
        """Every bot, by its user id (its application id)."""
        return {bot.user_id: bot for bot in self.bots.values()}

    def bot_for_token(self, token: str) -> SimulatedBot | None:
        """The bot with this token, or None."""
        return self.bots.get(token)

    # -- used by connections and resources --------------------------------------

    def accept(self, wire: GatewayWire, url_kind: str) -> SimulatedConnection:
        """Make the simulated side of a newly opened gateway websocket."""
        self._connection_count += 1
        connection = SimulatedConnection(self, wire, url_kind, self._connection_count)
        self.connections.append(connection)
        return connection

    def connection_ended(self, connection: SimulatedConnection) -> None:
        """Forget a connection whose TCP connection is gone."""
        if connection in self.connections:
            self.connections.remove(connection)
        self.record("disconnect", connection.shard_id)

    def start_session(
        self, bot: SimulatedBot, shard_id: int, shard_count: int, intents: int
    ) -> SimulatedSession:
        """A new session for an accepted IDENTIFY."""
        session = SimulatedSession(
            bot=bot,
            session_id=f"{self.random.getrandbits(128):032x}",
            shard_id=shard_id,
            shard_count=shard_count,
            intents=intents,
            clock=self.clock,
            timeout=self.session_timeout,
            replay_limit=self.replay_limit,
            on_expired=self._session_expired,
        )
        self.sessions[session.session_id] = session
        bot.sessions.append(session)
        return session

    def record(self, kind: str, detail: Any) -> None:
        """Append to :attr:`events` and log it (unless lean)."""
        if not self.keep_frames:
            return
        self.events.append((kind, detail))
        self._log.info("simulated Discord: {kind} {detail}", kind=kind, detail=detail)

    def snowflake(self) -> str:
        """A new snowflake for the current time."""
        return self._snowflakes.make(self.clock.seconds())

    def summary(self) -> dict[str, int]:
        """
        Counts only, cheap enough to poll with thousands of bots: what the
        control API's ``GET /_sim/summary`` shows.
        """
        return {
            "bots": len(self.bots),
            "connections": len(self.connections),
            "ready": sum(1 for c in self.connections if c.ready),
            "identifies": sum(bot.identifies for bot in self.bots.values()),
            "resumes": sum(bot.resumes for bot in self.bots.values()),
        }

    def describe(self) -> dict[str, Any]:
        """Everything the control API's ``GET /_sim/state`` shows."""
        return {
            "api_url": self.api_url,
            "gateway_url": self.gateway_url,
            "resume_url": self.resume_url,
            "bots": [bot.describe() for bot in self.bots.values()],
            "events": [[kind, detail] for kind, detail in self.events[-200:]],
            "typing": [channel for _, channel in self.typing],
            "messages": [
                {"channel_id": channel, "body": body} for _, channel, body in self.messages
            ],
        }

    def _session_expired(self, session: SimulatedSession) -> None:
        self.record("session_expired", session.shard_id)


def _host_port(address: IAddress) -> str:
    """``host:port`` for URLs; wildcard interfaces become loopback."""
    host = getattr(address, "host", "127.0.0.1")
    port = getattr(address, "port", 0)
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"
