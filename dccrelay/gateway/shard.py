"""
One Discord gateway shard of one bot, as an explicit state machine.

A shard connects, waits for HELLO, then IDENTIFYs (after the bot's identify
limiter grants a slot) or RESUMEs a stored session, and relays every
dispatch it receives.  Whatever happens to the connection, the machine
decides whether to resume, identify afresh, wait, or give up and disable the
bot.  It talks to the network only through ``connect`` and the
:class:`IGatewayConnection` it returns, and to time only through ``clock``,
so it is tested without sockets.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from random import Random
from typing import Any, Callable, Protocol

import orjson
from automat import MethodicalMachine, NoTransition
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface

from dccrelay.gateway import codes
from dccrelay.gateway.heartbeat import Heartbeat
from dccrelay.gateway.limiter import IdentifyLimiter, IdentifySlot
from dccrelay.gateway.ratelimit import CommandLimiter
from dccrelay.gateway.sieve import EventSieve
from dccrelay.net.tls import discord_tls_failure
from dccrelay.store import SessionState

GATEWAY_QUERY = "?v=10&encoding=json"

# Seconds allowed to open the websocket (TCP, TLS and handshake), then for
# HELLO, and for the other side to finish a close handshake before the
# connection is cut.
CONNECT_TIMEOUT = 30.0
HELLO_TIMEOUT = 30.0
CLOSE_TIMEOUT = 5.0


class IGatewayConnection(Protocol):
    """
    One open websocket to the gateway, as the shard sees it.
    """

    def send(self, payload: dict[str, Any]) -> None:
        """Send one JSON payload as a text frame."""

    def close(self, code: int) -> None:
        """Start a close handshake with ``code``."""

    def abort(self) -> None:
        """Cut the connection now, without a close handshake."""


class IGatewayListener(Protocol):
    """
    What a gateway connection reports to its shard.
    """

    def frame_received(self, data: bytes) -> None:
        """One text frame, as received."""

    def connection_closed(self, code: int | None, reason: str) -> None:
        """The connection is gone; ``code`` is None without a close frame."""


Connect = Callable[[str, IGatewayListener], "Deferred[IGatewayConnection]"]


def gateway_url(base: str) -> str:
    """
    The websocket URL to open for a gateway base URL (v10, JSON).
    """
    return base.split("?", 1)[0].rstrip("/") + "/" + GATEWAY_QUERY


class IShardOwner(Interface):
    """
    What a shard reports to the bot's gateway session.
    """

    def dispatch_received(shard_id: int, data: bytes, payload: dict[str, Any]) -> None:
        """A dispatch: its original bytes and its parse (not READY or RESUMED)."""

    def dispatch_passed_over(shard_id: int) -> None:
        """A dispatch of a type the shard's sieve does not want, not parsed."""

    def session_changed(shard_id: int, state: SessionState | None) -> None:
        """The new session after READY, or None when it can no longer resume."""

    def ready_user(user: Any) -> None:
        """The bot's user, as a READY named it (its ``d.user``)."""

    def refused(reason: str) -> None:
        """Discord refused the bot for good (a fatal close code), in words a person can act on."""

    def needs_more_shards() -> None:
        """Discord closed with 4011: the bot must run with more shards."""

    def status_changed() -> None:
        """
        The shard's state or ``last_close`` may have changed (they are
        shown in the bot's status).
        """


@dataclass(frozen=True)
class ShardIdentity:
    """Which bot and shard a connection speaks for."""

    alias: str
    token: str
    intents: int
    shard_id: int
    shard_count: int


@dataclass(frozen=True)
class GatewayTools:
    """
    What every shard of a node is given: time, randomness, a way to open a
    websocket and the reconnect policy.

    :ivar connect: opens a websocket to a URL, reporting to a listener.
    :ivar retry_policy: seconds to wait before reconnect attempt ``n``.
    """

    clock: IReactorTime
    random: Random
    connect: Connect
    retry_policy: Callable[[int], float]


class Shard:
    """
    One shard's connection to the Discord gateway.

    :param gateway_base: where to IDENTIFY; None if not known yet.
    :param session: a stored session to RESUME, if any.
    :param limiter: the bot's identify limiter.
    :param owner: hears dispatches, session changes and refusals.
    """

    _machine = MethodicalMachine()
    _log = Logger()

    def __init__(
        self,
        identity: ShardIdentity,
        *,
        gateway_base: str | None,
        session: SessionState | None,
        tools: GatewayTools,
        limiter: IdentifyLimiter,
        owner: IShardOwner,
        sieve: EventSieve | None = None,
    ) -> None:
        self.alias = identity.alias
        # which dispatches need not be parsed (the bot's criteria say)
        self._sieve = sieve
        self._token = identity.token
        self._intents = identity.intents
        self.shard_id = identity.shard_id
        self.shard_count = identity.shard_count
        #: where to IDENTIFY (``GET /gateway/bot``'s url); None until the
        #: relay has asked, when it started by resuming stored sessions
        self.gateway_base = gateway_base
        # the URL of the connection being opened, to name it if it fails
        self._opening_url = gateway_base or ""
        self._session = session
        self.seq: int | None = session.seq if session else None
        self._clock = tools.clock
        self._random = tools.random
        self._connect_to = tools.connect
        self._limiter = limiter
        self._owner = owner
        self._retry_policy = tools.retry_policy
        self._connection: IGatewayConnection | None = None
        self._pending: Deferred[Any] | None = None
        self._reconnect_timer: IDelayedCall | None = None
        self._deadline: IDelayedCall | None = None
        self._slot: IdentifySlot | None = None
        self._planned_delay: float | None = None
        self._stopped: Deferred[None] | None = None
        self._heartbeat = Heartbeat(tools.clock, tools.random, self._send_heartbeat, self._zombie)
        self._commands = CommandLimiter(tools.clock, self._write)
        self.attempts = 0
        self.identifies = 0
        self.resumes = 0
        self.last_close: str | None = None
        # For /metrics: connections that ended other than by stop(), by close
        # code (None: no close frame), and waits for an identify slot.
        self.close_codes: dict[int | None, int] = {}
        self.identify_waits = 0
        self.identify_wait_seconds = 0.0
        self._waiting_since: float | None = None

    # -- states ---------------------------------------------------------------

    @_machine.state(initial=True, serialized="idle")
    def idle(self) -> None:
        "Not started."

    @_machine.state(serialized="waiting for identify slot")
    def waiting_for_slot(self) -> None:
        "Waiting for the bot's identify limiter."

    @_machine.state(serialized="connecting")
    def connecting(self) -> None:
        "Opening the websocket."

    @_machine.state(serialized="connecting")
    def waiting_for_hello(self) -> None:
        "Open; HELLO not seen yet."

    @_machine.state(serialized="identifying")
    def identifying(self) -> None:
        "IDENTIFY sent; waiting for READY."

    @_machine.state(serialized="resuming")
    def resuming(self) -> None:
        "RESUME sent; Discord replays what was missed, then RESUMED."

    @_machine.state(serialized="ready")
    def ready(self) -> None:
        "Receiving dispatches."

    @_machine.state(serialized="reconnecting")
    def closing(self) -> None:
        "We closed the connection and will reconnect once it is gone."

    @_machine.state(serialized="reconnecting")
    def waiting_to_reconnect(self) -> None:
        "Disconnected; a timer will reconnect."

    @_machine.state(serialized="stopping")
    def stopping(self) -> None:
        "Closing for good (shutdown or disable)."

    @_machine.state(serialized="stopped")
    def stopped(self) -> None:
        "Stopped; the session may still be resumable later."

    @_machine.state(serialized="disabled")
    def disabled(self) -> None:
        "Discord refused the bot; nothing more will happen."

    @_machine.serializer()
    def _state_name(self, state: str) -> str:
        return state

    # -- inputs ---------------------------------------------------------------

    @_machine.input()
    def _begin_identify(self) -> None:
        "Start a new session."

    @_machine.input()
    def _begin_resume(self) -> None:
        "Go back to a stored session."

    @_machine.input()
    def _slot_granted(self) -> None:
        "The limiter lets this shard IDENTIFY."

    @_machine.input()
    def _connection_made(self, connection: IGatewayConnection) -> None:
        "The websocket is open."

    @_machine.input()
    def _connection_failed(self, why: str) -> None:
        "The websocket could not be opened."

    @_machine.input()
    def _hello_identify(self, interval: float) -> None:
        "HELLO arrived and there is no session to resume."

    @_machine.input()
    def _hello_resume(self, interval: float) -> None:
        "HELLO arrived and there is a session to resume."

    @_machine.input()
    def _ready_received(self, payload: dict[str, Any]) -> None:
        "READY: a new session."

    @_machine.input()
    def _resumed_received(self) -> None:
        "RESUMED: the replay is complete."

    @_machine.input()
    def _must_reconnect(self, why: str) -> None:
        "Zombie connection, op 7 or a resumable op 9: close, then resume."

    @_machine.input()
    def _session_invalidated(self, why: str) -> None:
        "op 9 (not resumable): close, wait 1-5 s, identify afresh."

    @_machine.input()
    def _connection_lost(self, why: str) -> None:
        "The connection is gone."

    @_machine.input()
    def _closed_fatally(self, reason: str) -> None:
        "Discord closed with a code that reconnecting cannot help."

    @_machine.input()
    def _resharding_required(self) -> None:
        "4011: the bot needs more shards; the relay starts over with more."

    @_machine.input()
    def _reconnect_due(self) -> None:
        "The reconnect timer fired."

    @_machine.input()
    def _stop(self, code: int) -> None:
        "Shut down (the relay stops, or the bot is disabled)."

    # -- outputs --------------------------------------------------------------

    @_machine.output()
    def _request_slot(self) -> None:
        self._pending = self._limiter.acquire(self.shard_id)
        if self._pending.called:
            self._waiting_since = None
        else:
            self.identify_waits += 1
            self._waiting_since = self._clock.seconds()
        self._pending.addCallbacks(self._got_slot, self._ignore_cancel)

    @_machine.output()
    def _connect_to_gateway(self) -> None:
        # A slot is granted only once the figures, and with them the URL, are in.
        assert self.gateway_base is not None
        self._open(gateway_url(self.gateway_base))

    @_machine.output()
    def _connect_to_resume_url(self) -> None:
        assert self._session is not None
        self._open(gateway_url(self._session.resume_url))

    @_machine.output()
    def _remember_connection(self, connection: IGatewayConnection) -> None:
        self._pending = None
        self._connection = connection
        self._commands.reset()
        self._set_deadline(HELLO_TIMEOUT, self._no_hello)

    @_machine.output()
    def _note_failure(self, why: str) -> None:
        self._release_slot()
        self._pending = None
        self.last_close = why
        self._log.info(
            "{alias} shard {shard}: could not connect to the gateway: {why}",
            alias=self.alias, shard=self.shard_id, why=why,
        )

    @_machine.output()
    def _send_identify(self, interval: float) -> None:
        self._clear_deadline()
        if self._slot is not None:
            self._slot.used()
            self._slot = None
        self._heartbeat.start(interval / 1000.0)
        self.identifies += 1
        self._send(
            {
                "op": codes.IDENTIFY,
                "d": {
                    "token": self._token,
                    "intents": self._intents,
                    "properties": {
                        "os": sys.platform,
                        "browser": "dccrelay",
                        "device": "dccrelay",
                    },
                    "shard": [self.shard_id, self.shard_count],
                },
            }
        )

    @_machine.output()
    def _send_resume(self, interval: float) -> None:
        assert self._session is not None
        self._clear_deadline()
        self._heartbeat.start(interval / 1000.0)
        self.resumes += 1
        self._send(
            {
                "op": codes.RESUME,
                "d": {
                    "token": self._token,
                    "session_id": self._session.session_id,
                    "seq": self.seq,
                },
            }
        )

    @_machine.output()
    def _keep_session(self, payload: dict[str, Any]) -> None:
        d = payload.get("d") or {}
        self._session = SessionState(
            shard_id=self.shard_id,
            shard_count=self.shard_count,
            session_id=str(d.get("session_id", "")),
            seq=self.seq,
            resume_url=str(d.get("resume_gateway_url") or self.gateway_base),
        )
        self._owner.session_changed(self.shard_id, self._session)

    @_machine.output()
    def _report_user(self, payload: dict[str, Any]) -> None:
        d = payload.get("d")
        if isinstance(d, dict) and "user" in d:
            self._owner.ready_user(d["user"])

    @_machine.output()
    def _connected(self) -> None:
        # last_close stays: why the shard last reconnected is worth showing
        # after it recovered (status, status page).
        self.attempts = 0
        if self.last_close is None:
            self._log.info(
                "{alias} shard {shard}: {state}",
                alias=self.alias, shard=self.shard_id, state=self.state,
            )
        else:
            self._log.info(
                "{alias} shard {shard}: {state}, with a new session, after: {why}",
                alias=self.alias, shard=self.shard_id, state=self.state, why=self.last_close,
            )

    @_machine.output()
    def _resumed(self) -> None:
        self.attempts = 0
        self._log.info(
            "{alias} shard {shard}: resumed the session, nothing missed, after: {why}",
            alias=self.alias, shard=self.shard_id,
            why=self.last_close or "the relay restarted",
        )

    @_machine.output()
    def _close_to_resume(self, why: str) -> None:
        self._release_slot()
        self._log.info(
            "{alias} shard {shard}: reconnecting to resume: {why}",
            alias=self.alias, shard=self.shard_id, why=why,
        )
        self.last_close = why
        self._planned_delay = 0.0
        self._close(codes.RESUMABLE_CLOSE)

    @_machine.output()
    def _close_to_identify(self, why: str) -> None:
        self._release_slot()
        self._log.info(
            "{alias} shard {shard}: session invalidated, identifying afresh: {why}",
            alias=self.alias, shard=self.shard_id, why=why,
        )
        self.last_close = why
        self._forget_session()
        # Discord: wait a random 1-5 s before identifying again.
        self._planned_delay = 1.0 + 4.0 * self._random.random()
        self._close(codes.RESUMABLE_CLOSE)

    @_machine.output()
    def _drop_connection(self, why: str) -> None:
        self._release_slot()
        self._clear_deadline()
        self._heartbeat.stop()
        self._connection = None
        if self._planned_delay is None:
            self.last_close = why

    @_machine.output()
    def _schedule_reconnect(self, why: str) -> None:
        if self._planned_delay is not None and self.attempts == 0:
            delay = self._planned_delay
        else:
            delay = max(self._planned_delay or 0.0, self._retry_policy(self.attempts))
        self._planned_delay = None
        self.attempts += 1
        self._reconnect_timer = self._clock.callLater(delay, self._reconnect_now)

    @_machine.output()
    def _cancel_pending(self) -> None:
        self._release_slot()
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.cancel()
        if self._reconnect_timer is not None and self._reconnect_timer.active():
            self._reconnect_timer.cancel()
        self._reconnect_timer = None

    @_machine.output()
    def _close_for_stop(self, code: int) -> None:
        self._close(code)

    @_machine.output()
    def _finish_stop(self) -> None:
        self._release_slot()
        self._clear_deadline()
        self._heartbeat.stop()
        self._connection = None
        if self._stopped is not None:
            stopped, self._stopped = self._stopped, None
            stopped.callback(None)

    @_machine.output()
    def _ask_for_resharding(self) -> None:
        self._release_slot()
        self._clear_deadline()
        self._heartbeat.stop()
        self._connection = None
        self.last_close = "Discord requires more shards (4011)"
        self._forget_session()
        self._owner.needs_more_shards()

    @_machine.output()
    def _disable(self, reason: str) -> None:
        self._release_slot()
        self._clear_deadline()
        self._heartbeat.stop()
        self._connection = None
        self.last_close = reason
        self._forget_session()
        self._log.warn(
            "{alias} shard {shard}: disabled: {reason}",
            alias=self.alias, shard=self.shard_id, reason=reason,
        )
        self._owner.refused(reason)

    # -- transitions ------------------------------------------------------------

    idle.upon(_begin_identify, enter=waiting_for_slot, outputs=[_request_slot])
    idle.upon(_begin_resume, enter=connecting, outputs=[_connect_to_resume_url])
    idle.upon(_stop, enter=stopped, outputs=[_finish_stop])

    waiting_for_slot.upon(_slot_granted, enter=connecting, outputs=[_connect_to_gateway])
    waiting_for_slot.upon(_stop, enter=stopped, outputs=[_cancel_pending, _finish_stop])

    connecting.upon(_connection_made, enter=waiting_for_hello, outputs=[_remember_connection])
    connecting.upon(
        _connection_failed, enter=waiting_to_reconnect,
        outputs=[_note_failure, _schedule_reconnect],
    )
    connecting.upon(_stop, enter=stopped, outputs=[_cancel_pending, _finish_stop])

    waiting_for_hello.upon(_hello_identify, enter=identifying, outputs=[_send_identify])
    waiting_for_hello.upon(_hello_resume, enter=resuming, outputs=[_send_resume])

    identifying.upon(
        _ready_received, enter=ready, outputs=[_keep_session, _report_user, _connected]
    )
    resuming.upon(_resumed_received, enter=ready, outputs=[_resumed])

    for _live in (waiting_for_hello, identifying, resuming, ready):
        _live.upon(_must_reconnect, enter=closing, outputs=[_close_to_resume])
        _live.upon(_session_invalidated, enter=closing, outputs=[_close_to_identify])
        _live.upon(
            _connection_lost, enter=waiting_to_reconnect,
            outputs=[_drop_connection, _schedule_reconnect],
        )
        _live.upon(_closed_fatally, enter=disabled, outputs=[_disable])
        _live.upon(_resharding_required, enter=stopped, outputs=[_ask_for_resharding])
        _live.upon(_stop, enter=stopping, outputs=[_close_for_stop])
    del _live

    closing.upon(
        _connection_lost, enter=waiting_to_reconnect,
        outputs=[_drop_connection, _schedule_reconnect],
    )
    closing.upon(_closed_fatally, enter=disabled, outputs=[_disable])
    closing.upon(_resharding_required, enter=stopped, outputs=[_ask_for_resharding])
    closing.upon(_stop, enter=stopping, outputs=[])
    # Late frames from a connection we are already leaving change nothing.
    closing.upon(_must_reconnect, enter=closing, outputs=[])
    closing.upon(_session_invalidated, enter=closing, outputs=[])

    waiting_to_reconnect.upon(_reconnect_due, enter=idle, outputs=[])
    waiting_to_reconnect.upon(_stop, enter=stopped, outputs=[_cancel_pending, _finish_stop])

    stopping.upon(_connection_lost, enter=stopped, outputs=[_finish_stop])
    stopping.upon(_closed_fatally, enter=stopped, outputs=[_finish_stop])
    stopping.upon(_resharding_required, enter=stopped, outputs=[_finish_stop])
    stopping.upon(_must_reconnect, enter=stopping, outputs=[])
    stopping.upon(_session_invalidated, enter=stopping, outputs=[])

    stopped.upon(_stop, enter=stopped, outputs=[_finish_stop])
    disabled.upon(_stop, enter=disabled, outputs=[_finish_stop])

    # -- the outside world ----------------------------------------------------------

    @property
    def state(self) -> str:
        """
        The shard's state, as shown in status.
        """
        name: str = self._state_name()
        return name

    @property
    def session(self) -> SessionState | None:
        """
        What a RESUME would need now, with the latest seq.
        """
        if self._session is None:
            return None
        return SessionState(
            shard_id=self._session.shard_id,
            shard_count=self._session.shard_count,
            session_id=self._session.session_id,
            seq=self.seq,
            resume_url=self._session.resume_url,
        )

    def start(self) -> None:
        """
        Connect: resume the stored session if there is one, else identify.
        """
        # Each way in that may move the machine says so to the owner (the
        # state and last_close are shown), before or after, on the same turn.
        self._owner.status_changed()
        if self._session is not None:
            self._begin_resume()
        else:
            self._begin_identify()

    def stop(self, code: int = codes.RESUMABLE_CLOSE) -> Deferred[None]:
        """
        Close the connection.  With the default code the session stays
        resumable; 1000 ends it.

        :return: fires once the connection is gone.
        """
        self._owner.status_changed()
        if self._stopped is None:
            self._stopped = Deferred()
        stopped = self._stopped
        if code == codes.SESSION_ENDING_CLOSE:
            self._forget_session()
        self._stop(code)
        return stopped

    # IGatewayListener

    def frame_received(self, data: bytes) -> None:
        """
        Turn one gateway frame into the machine's inputs.
        """
        sieve = self._sieve
        if sieve is not None and sieve.wanted is not None:
            seq = sieve.passed_over(data)
            if seq is not None:
                self.seq = seq
                self._owner.dispatch_passed_over(self.shard_id)
                return
        try:
            payload = orjson.loads(data)
            op = payload["op"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self._log.warn(
                "{alias} shard {shard}: ignoring a malformed gateway frame",
                alias=self.alias, shard=self.shard_id,
            )
            return
        try:
            if op == codes.DISPATCH:
                self._dispatch(data, payload)
            elif op == codes.HEARTBEAT_ACK:
                self._heartbeat.acked()
            elif op == codes.HEARTBEAT:
                self._heartbeat.beat_now()
            elif op == codes.HELLO:
                self._owner.status_changed()
                interval = float(payload["d"]["heartbeat_interval"])
                if self._session is not None:
                    self._hello_resume(interval)
                else:
                    self._hello_identify(interval)
            elif op == codes.RECONNECT:
                self._owner.status_changed()
                self._must_reconnect("Discord asked for a reconnect (op 7)")
            elif op == codes.INVALID_SESSION:
                self._owner.status_changed()
                if payload.get("d") is True and self._session is not None:
                    self._must_reconnect("invalid session, resumable (op 9)")
                else:
                    self._session_invalidated("invalid session (op 9)")
        except NoTransition:
            self._log.warn(
                "{alias} shard {shard}: unexpected op {op} while {state}",
                alias=self.alias, shard=self.shard_id, op=op, state=self.state,
            )
        except (KeyError, TypeError, ValueError):
            self._log.warn(
                "{alias} shard {shard}: malformed op {op} payload",
                alias=self.alias, shard=self.shard_id, op=op,
            )

    def connection_closed(self, code: int | None, reason: str) -> None:
        """
        Decide what the end of a connection means.
        """
        self._owner.status_changed()
        if self.state != "stopping":
            self.close_codes[code] = self.close_codes.get(code, 0) + 1
        why = f"closed with code {code}" if code else "connection lost"
        if reason:
            why += f" ({reason[:100]})"
        if code == codes.SHARDING_REQUIRED:
            self._resharding_required()
            return
        if code in codes.FATAL_CLOSE_REASONS:
            self._closed_fatally(codes.FATAL_CLOSE_REASONS[code])
            return
        if code in codes.NEW_SESSION_CODES:
            self._forget_session()
        self._connection_lost(why)

    # -- helpers --------------------------------------------------------------

    def _dispatch(self, data: bytes, payload: dict[str, Any]) -> None:
        seq = payload.get("s")
        if isinstance(seq, int):
            self.seq = seq
        kind = payload.get("t")
        # READY and RESUMED belong to the session, not to the bot: READY
        # carries the session id.
        if kind == "READY":
            self._owner.status_changed()
            self._ready_received(payload)
        elif kind == "RESUMED":
            self._owner.status_changed()
            self._resumed_received()
        else:
            self._owner.dispatch_received(self.shard_id, data, payload)

    def send_command(self, payload: dict[str, Any]) -> None:
        """
        Send a gateway command (presence update, member request...) on
        this shard's connection, paced to Discord's 120 per 60 s.
        """
        self._commands.send(payload)

    @property
    def commands_waiting(self) -> int:
        """
        Commands held back by the send limit.
        """
        return self._commands.queued

    def _send(self, payload: dict[str, Any]) -> None:
        self._commands.send_now(payload)

    def _write(self, payload: dict[str, Any]) -> None:
        if self._connection is not None:
            self._connection.send(payload)

    def _send_heartbeat(self) -> None:
        self._send({"op": codes.HEARTBEAT, "d": self.seq})

    def _zombie(self) -> None:
        self._owner.status_changed()
        self._must_reconnect("no heartbeat ACK: zombie connection")

    def _close(self, code: int) -> None:
        self._heartbeat.stop()
        if self._connection is not None:
            self._connection.close(code)
            # A zombie connection never answers the close frame.
            self._set_deadline(CLOSE_TIMEOUT, self._connection.abort)

    def _set_deadline(self, seconds: float, action: Callable[..., object], *args: object) -> None:
        self._clear_deadline()
        self._deadline = self._clock.callLater(seconds, action, *args)

    def _clear_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _forget_session(self) -> None:
        if self._session is not None:
            self._session = None
            self.seq = None
            self._owner.session_changed(self.shard_id, None)

    def _open(self, url: str) -> None:
        self._opening_url = url
        self._pending = self._connect_to(url, self)
        self._pending.addTimeout(CONNECT_TIMEOUT, self._clock)
        self._pending.addCallbacks(self._opened, self._open_failed)

    def _no_hello(self) -> None:
        self._owner.status_changed()
        self._must_reconnect("no HELLO from Discord")

    def _opened(self, connection: IGatewayConnection) -> None:
        self._owner.status_changed()
        self._connection_made(connection)

    def _open_failed(self, failure: Failure) -> None:
        self._owner.status_changed()
        if failure.check(CancelledError):
            return
        if failure.check(DeferredTimeout):
            # addTimeout's own message is a bare "(30.0, 'Deferred')".
            self._connection_failed(f"no answer within {CONNECT_TIMEOUT:g} s")
            return
        untrusted = discord_tls_failure(failure, self._opening_url)
        if untrusted is not None:
            self._log.warn(
                "{alias} shard {shard}: {why}", alias=self.alias, shard=self.shard_id,
                why=untrusted,
            )
        self._connection_failed(
            untrusted or failure.getErrorMessage() or repr(failure.value)
        )

    def _reconnect_now(self) -> None:
        self._owner.status_changed()
        self._reconnect_timer = None
        self._reconnect_due()
        self.start()

    def _got_slot(self, slot: IdentifySlot) -> None:
        self._owner.status_changed()
        self._pending = None
        if self._waiting_since is not None:
            self.identify_wait_seconds += self._clock.seconds() - self._waiting_since
            self._waiting_since = None
        self._slot = slot
        self._slot_granted()

    def _release_slot(self) -> None:
        # Whatever ends an attempt before IDENTIFY was sent frees the bucket.
        if self._slot is not None:
            self._slot.release()
            self._slot = None

    def _ignore_cancel(self, failure: Failure) -> None:
        failure.trap(CancelledError)
