"""
Websocket delivery: one state machine for the link to a bot, for v1 and v2.

How the relay reaches a bot over a websocket, whatever the protocol
version:

- the relay opens a websocket (RFC 6455) to the bot's ``dst`` (``ws://`` or
  ``wss://``) when something waits for the bot, sending ``Authorization:
  Basic base64(clientSecret)`` and ``User-Agent: dccrelay/<version>``;
- it sends what waits, in order, framed by the protocol version
  (:mod:`dccrelay.delivery.framing`: v1 the payload as is, v2 with an id the
  bot acknowledges);
- after ``idle_timeout`` seconds with nothing to send (and, in v2, nothing
  unacknowledged) it closes the connection with code 1000 so the bot's host
  can sleep; the next dispatch opens a new one;
- a bot that cannot be reached is retried with backoff while dispatches
  wait.

:class:`WebSocketChannel` is that link, as an automat machine; it is given
what varies: where dispatches wait (a :class:`~dccrelay.delivery.feed.IFeed`)
and how they are framed (a :class:`~dccrelay.delivery.framing.IFraming`).
Autobahn's protocol only turns the connection's events into calls on it.
"""

from __future__ import annotations

from typing import Callable

from autobahn.websocket.util import parse_url
from automat import MethodicalMachine
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IReactorTime
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import alsoProvides, implementer

from dccrelay.delivery import (
    ChannelSnapshot,
    IChannelOwner,
    IDeliveryChannel,
    IDurableChannel,
    NoOwner,
)
from dccrelay.delivery.bot_link import BotConnection, BotDialer, IBotLinkListener, abort
from dccrelay.delivery.bot_writer import BotWriter
from dccrelay.delivery.config import DEFAULTS, DeliveryConfig
from dccrelay.delivery.errors import describe_connect_failure
from dccrelay.delivery.feed import IFeed
from dccrelay.delivery.framing import IFraming
from dccrelay.delivery.timers import Deadline, IdleTimer, RetryTimer
from dccrelay.store import OutboxCheckpoint

#: seconds the bot gets to finish a close handshake (the default of
#: :attr:`DeliveryConfig.close_timeout`)
CLOSE_TIMEOUT = DEFAULTS.close_timeout

#: lastError while the bot does not read what was written (flow control)
STALLED = (
    "the bot is not reading what the relay sends: its dispatches wait in its queue,"
    " and what passes the queue's limit is dropped"
)

# What status() shows for each state of the machine; None: "connecting" if
# something waits (it reconnects once the closing connection is gone), else
# "idle".
_SHOWN: dict[str, str | None] = {
    "new": "idle",
    "idle": "idle",
    "connecting": "connecting",
    "handshaking": "connecting",
    "open": "connected",
    "dropping": "connected",
    "closing": None,
    "recycling": None,
    "backoff": "waiting to retry",
    "stopping": "stopped",
    "stopped": "stopped",
}


@implementer(IDeliveryChannel, IBotLinkListener)
class WebSocketChannel:
    """
    Delivers one bot's dispatches over a websocket, opening the connection
    on demand and closing it when idle.  Building it does no I/O:
    :meth:`start` does.

    :param reactor: for timers, name resolution and TCP.
    :param alias: the bot's alias, for logs.
    :param dst: ``ws://`` or ``wss://`` URL of the bot's receiver.
    :param client_secret: sent as ``Basic base64(client_secret)``.
    :param feed: where the bot's dispatches wait (it provides
        :class:`IDurableChannel` too if the feed is durable).
    :param framing: v1 or v2.
    :param config: timeouts and the retry policy.
    :param owner: told what the bot took; answers the bot's commands.
    :param tls_options_for: TLS client options for a host name (``wss``);
        the default verifies the certificate and the name.
    :raise ValueError: if ``dst`` is not a ``ws://`` or ``wss://`` URL.
    """

    _machine = MethodicalMachine()
    log = Logger()

    def __init__(
        self,
        reactor: IReactorTime,
        *,
        alias: str,
        dst: str,
        client_secret: str,
        feed: IFeed,
        framing: IFraming,
        config: DeliveryConfig = DEFAULTS,
        owner: IChannelOwner | None = None,
        tls_options_for: Callable[[str], IOpenSSLClientConnectionCreator] = optionsForClientTLS,
    ) -> None:
        parse_url(dst)  # a ValueError now, not at the first delivery
        self._alias = alias
        self._feed = feed
        self._framing = framing
        self._config = config
        if feed.durable:
            alsoProvides(self, IDurableChannel)
        self._dialer = BotDialer(
            reactor,
            dst=dst,
            client_secret=client_secret,
            subprotocols=framing.subprotocols,
            config=config,
            listener=self,
            tls_options_for=tls_options_for,
        )
        # Timers and the feed call plain methods, never inputs: automat
        # builds a new function each time an input is looked up (about 3 µs
        # and 700 bytes), so a stored input would cost every idle bot that.
        self._retry = RetryTimer(reactor, config.retry_policy, self._retry_passed)
        self._idle = IdleTimer(reactor, config.idle_timeout, self._idle_passed)
        self._owner: IChannelOwner = owner if owner is not None else NoOwner()
        self._writer = BotWriter(
            alias=alias,
            feed=feed,
            framing=framing,
            owner=self._owner,
            idle=self._idle,
        )
        # TCP, TLS and the websocket handshake together
        self._connect_deadline = Deadline(reactor, self._connect_timed_out)
        # the end of a close handshake, once either side has started it
        self._close_deadline = Deadline(reactor, self._close_timed_out)
        self._pinger: Deadline | None = None
        self._pong_deadline: Deadline | None = None
        if framing.pings:
            self._pinger = Deadline(reactor, self._ping_passed)
            self._pong_deadline = Deadline(reactor, self._pong_not_come)
        self._attempt: Deferred[BotConnection] | None = None
        self._connection: BotConnection | None = None
        self._last_error: str | None = None
        self._stop_waiters: list[Deferred[None]] = []

    # -- states -----------------------------------------------------------------

    @_machine.state(initial=True, serialized="new")
    def _new(self) -> None:
        "Built; start() not called yet."

    @_machine.state(serialized="idle")
    def _idle_state(self) -> None:
        "No connection, and none needed until something waits."

    @_machine.state(serialized="connecting")
    def _connecting(self) -> None:
        "Opening TCP (and TLS) to the bot."

    @_machine.state(serialized="handshaking")
    def _handshaking(self) -> None:
        "Connected; the websocket handshake is under way."

    @_machine.state(serialized="open")
    def _open(self) -> None:
        "The websocket is open: what waits is written as it comes."

    @_machine.state(serialized="closing")
    def _closing(self) -> None:
        "Closing an idle connection; reconnecting afterwards if work came."

    @_machine.state(serialized="recycling")
    def _recycling(self) -> None:
        "Closing a connection whose bot left dispatches unacknowledged (v2)."

    @_machine.state(serialized="dropping")
    def _dropping(self) -> None:
        "Cut a connection whose bot did not answer a ping (v2)."

    @_machine.state(serialized="backoff")
    def _backoff(self) -> None:
        "The bot could not be reached; waiting to try again."

    @_machine.state(serialized="stopping")
    def _stopping(self) -> None:
        "Stopped; waiting for the connection to go."

    @_machine.state(serialized="stopped")
    def _stopped(self) -> None:
        "Nothing more will happen."

    @_machine.serializer()
    def _state_name(self, state: str) -> str:
        return state

    # -- inputs -----------------------------------------------------------------

    @_machine.input()
    def _begin(self) -> None:
        "start()."

    @_machine.input()
    def _work(self) -> None:
        "Something waits for the bot (sendable now, or once stored)."

    @_machine.input()
    def _tcp_connected(self, connection: BotConnection) -> None:
        "TCP (and TLS) is up; the websocket handshake begins."

    @_machine.input()
    def _handshake_done(self) -> None:
        "The bot accepted the websocket, in the protocol we speak."

    @_machine.input()
    def _failed(self, problem: str) -> None:
        "The bot could not be reached or used, and dispatches wait."

    @_machine.input()
    def _failed_idle(self, problem: str) -> None:
        "The bot could not be reached or used, and nothing waits."

    @_machine.input()
    def _lost(self, problem: str | None) -> None:
        "The connection is gone, and dispatches wait."

    @_machine.input()
    def _lost_idle(self, problem: str | None) -> None:
        "The connection is gone, and nothing waits."

    @_machine.input()
    def _idle_close(self) -> None:
        "idle_timeout passed with nothing to send and nothing unacknowledged."

    @_machine.input()
    def _ack_overdue(self) -> None:
        "idle_timeout passed with dispatches unacknowledged (v2)."

    @_machine.input()
    def _ping_due(self) -> None:
        "Time to ping (v2)."

    @_machine.input()
    def _pong_missed(self) -> None:
        "No pong within ping_timeout (v2)."

    @_machine.input()
    def _retry_due(self) -> None:
        "The backoff is over."

    @_machine.input()
    def _stop(self) -> None:
        "stop()."

    # -- outputs ----------------------------------------------------------------

    @_machine.output()
    def _connect(self) -> None:
        self._connect_deadline.start(self._config.connect_timeout)
        attempt = self._dialer.dial()
        self._attempt = attempt

        def connected(connection: BotConnection) -> None:
            if self._attempt is attempt:
                self._attempt = None
                self._owner.status_changed()
                self._tcp_connected(connection)

        def failed(reason: Failure) -> None:
            # an attempt we cancelled (deadline, stop) was already dealt with
            if self._attempt is attempt:
                self._attempt = None
                self._fail(describe_connect_failure(reason))

        attempt.addCallbacks(connected, failed)

    @_machine.output()
    def _keep_connection(self, connection: BotConnection) -> None:
        self._connection = connection

    @_machine.output()
    def _opened(self) -> None:
        self._connect_deadline.cancel()
        self._retry.succeeded()
        self._last_error = None
        assert self._connection is not None
        self._writer.attach(self._connection)
        if self._pinger is not None:
            self._pinger.start(self._config.ping_interval)
        self.log.info("Connected to {alias}'s bot", alias=self._alias)

    @_machine.output()
    def _start_idle_clock(self) -> None:
        if not self._idle.active:
            self._idle.touch()

    @_machine.output()
    def _flush(self) -> None:
        self._writer.write_waiting()

    @_machine.output()
    def _abandon(self) -> None:
        # whatever attempt is under way, forgotten first so that its late
        # news is ignored
        self._connect_deadline.cancel()
        attempt, self._attempt = self._attempt, None
        if attempt is not None:
            attempt.cancel()
        connection, self._connection = self._connection, None
        if connection is not None:
            abort(connection)

    @_machine.output()
    def _note_failure(self, problem: str) -> None:
        self._last_error = problem

    @_machine.output()
    def _note_handshake_lost(self, problem: str | None) -> None:
        self._last_error = problem or "the bot closed the connection during the websocket handshake"

    @_machine.output()
    def _note_unacknowledged(self) -> None:
        self._last_error = (
            "the bot did not acknowledge its dispatches within"
            f" {self._config.idle_timeout:g} s"
        )

    @_machine.output()
    def _schedule_retry(self) -> None:
        delay = self._retry.failed()
        self.log.warn(
            "Could not reach {alias}'s bot ({problem}); {queued} dispatches wait,"
            " next attempt in {delay:.1f} s",
            alias=self._alias,
            problem=self._last_error,
            queued=self._feed.queued,
            delay=delay,
        )

    @_machine.output()
    def _report_lost(self, problem: str | None) -> None:
        if problem is None:
            self.log.info("{alias}'s bot closed the connection", alias=self._alias)
        else:
            self._connection_problem(problem)

    @_machine.output()
    def _report_unanswered_ping(self) -> None:
        self._connection_problem(
            f"the bot did not answer a ping within {self._config.ping_timeout:g} s"
        )

    @_machine.output()
    def _stop_pinging(self) -> None:
        self._cancel_pings()

    @_machine.output()
    def _log_idle_close(self) -> None:
        self.log.info("Closing the idle connection to {alias}'s bot", alias=self._alias)

    @_machine.output()
    def _warn_overdue(self) -> None:
        self.log.warn(
            "{alias}'s bot has not acknowledged {count} dispatches for {timeout:g} s:"
            " reconnecting to send them again",
            alias=self._alias,
            count=len(self._feed.entries_after(0)),
            timeout=self._config.idle_timeout,
        )

    @_machine.output()
    def _send_close(self) -> None:
        assert self._connection is not None
        self._connection.sendClose(code=1000)
        self._close_deadline.start(self._config.close_timeout)

    @_machine.output()
    def _ping(self) -> None:
        assert self._connection is not None
        assert self._pinger is not None and self._pong_deadline is not None
        self._connection.sendPing()
        self._pong_deadline.start(self._config.ping_timeout)
        self._pinger.start(self._config.ping_interval)

    @_machine.output()
    def _drop_unanswered(self) -> None:
        self.log.warn(
            "{alias}'s bot did not answer a ping within {timeout:g} s: dropping the connection",
            alias=self._alias,
            timeout=self._config.ping_timeout,
        )
        self._idle.cancel()
        assert self._connection is not None
        abort(self._connection)

    @_machine.output()
    def _cancel_timers(self) -> None:
        self._retry.cancel()
        self._idle.cancel()
        self._connect_deadline.cancel()
        self._close_deadline.cancel()
        self._cancel_pings()

    @_machine.output()
    def _abort_connection(self) -> None:
        # nothing was sent on it yet: no close handshake to wait for
        assert self._connection is not None
        abort(self._connection)

    @_machine.output()
    def _finish_stop(self) -> None:
        waiters, self._stop_waiters = self._stop_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    # -- transitions ------------------------------------------------------------

    _new.upon(_begin, enter=_idle_state, outputs=[])
    _new.upon(_work, enter=_new, outputs=[])
    _new.upon(_stop, enter=_stopped, outputs=[_finish_stop])

    _idle_state.upon(_work, enter=_connecting, outputs=[_connect])
    _idle_state.upon(_stop, enter=_stopped, outputs=[_cancel_timers, _finish_stop])

    _connecting.upon(_tcp_connected, enter=_handshaking, outputs=[_keep_connection])
    _handshaking.upon(
        _handshake_done, enter=_open, outputs=[_opened, _flush, _start_idle_clock]
    )
    for _trying in (_connecting, _handshaking):
        # what comes while connecting is written once the connection opens
        _trying.upon(_work, enter=_trying, outputs=[])
        _trying.upon(
            _failed, enter=_backoff, outputs=[_abandon, _note_failure, _schedule_retry]
        )
        _trying.upon(_failed_idle, enter=_idle_state, outputs=[_abandon, _note_failure])
    del _trying
    _connecting.upon(_stop, enter=_stopped, outputs=[_cancel_timers, _abandon, _finish_stop])
    _handshaking.upon(_lost, enter=_backoff, outputs=[_note_handshake_lost, _schedule_retry])
    _handshaking.upon(_lost_idle, enter=_idle_state, outputs=[_note_handshake_lost])
    _handshaking.upon(_stop, enter=_stopping, outputs=[_cancel_timers, _abort_connection])

    _open.upon(_work, enter=_open, outputs=[_flush])
    _open.upon(_ping_due, enter=_open, outputs=[_ping])
    _open.upon(_pong_missed, enter=_dropping, outputs=[_stop_pinging, _drop_unanswered])
    _open.upon(_idle_close, enter=_closing, outputs=[_stop_pinging, _log_idle_close, _send_close])
    _open.upon(
        _ack_overdue, enter=_recycling, outputs=[_stop_pinging, _warn_overdue, _send_close]
    )
    # a connection lost while dispatches wait is replaced at once
    _open.upon(_lost, enter=_connecting, outputs=[_report_lost, _connect])
    _open.upon(_lost_idle, enter=_idle_state, outputs=[_report_lost])
    _open.upon(_stop, enter=_stopping, outputs=[_cancel_timers, _send_close])

    _dropping.upon(_lost, enter=_connecting, outputs=[_report_unanswered_ping, _connect])
    _dropping.upon(_lost_idle, enter=_idle_state, outputs=[_report_unanswered_ping])
    _closing.upon(_lost, enter=_connecting, outputs=[_connect])
    _closing.upon(_lost_idle, enter=_idle_state, outputs=[])
    # Not a plain idle close: wait before trying again, so that a bot that
    # never acks is not flooded with the same dispatches.
    _recycling.upon(_lost, enter=_backoff, outputs=[_note_unacknowledged, _schedule_retry])
    _recycling.upon(_lost_idle, enter=_idle_state, outputs=[_note_unacknowledged])
    for _leaving in (_dropping, _closing, _recycling):
        # what comes now goes on the next connection
        _leaving.upon(_work, enter=_leaving, outputs=[])
        _leaving.upon(_stop, enter=_stopping, outputs=[_cancel_timers, _send_close])
    del _leaving

    _backoff.upon(_retry_due, enter=_connecting, outputs=[_connect])
    _backoff.upon(_work, enter=_backoff, outputs=[])
    _backoff.upon(_stop, enter=_stopped, outputs=[_cancel_timers, _finish_stop])

    _stopping.upon(_lost, enter=_stopped, outputs=[_finish_stop])
    _stopping.upon(_lost_idle, enter=_stopped, outputs=[_finish_stop])
    # late news of the connection being stopped changes nothing
    for _late in (_work, _handshake_done, _stop):
        _stopping.upon(_late, enter=_stopping, outputs=[])
    _stopping.upon(_failed, enter=_stopping, outputs=[])
    _stopping.upon(_failed_idle, enter=_stopping, outputs=[])
    del _late
    _stopped.upon(_work, enter=_stopped, outputs=[])
    _stopped.upon(_stop, enter=_stopped, outputs=[_finish_stop])

    # -- IDeliveryChannel ---------------------------------------------------------

    def start(self) -> None:
        """
        Begin: the feed loads what waits, and the bot is dialled when
        something does.
        """
        # Each way in that may change what snapshot() shows tells the owner
        # (on the same reactor turn); deliver() does not: the owner calls it.
        self._owner.status_changed()
        self._begin()
        self._feed.start(self._entries_ready)

    def deliver(self, payload: bytes, checkpoint: OutboxCheckpoint | None = None) -> None:
        """
        Queue ``payload`` for the bot, sending it at once if connected.  A
        durable feed stores it first; the connection opens meanwhile, so it
        is likely open by the time the payload is stored.

        :param checkpoint: the shard's seq to store with it (durable feeds).
        """
        try:
            sendable = self._feed.append(payload, checkpoint)
            # The dispatch path: an input costs about 10 µs (see __init__),
            # so this does what the table says _work does, calling the
            # machine only to leave idle.  Not sendable yet (being stored):
            # _entries_ready writes it once it is.
            state = self._state_name()
            if state == "open":
                if sendable:
                    self._writer.write_waiting()
            elif state == "idle":
                self._work()
        except Exception:
            self.log.failure("Could not deliver a dispatch to {alias}", alias=self._alias)

    def stop(self) -> Deferred[None]:
        """
        Close any connection with code 1000 and cancel every timer.

        :return: fires once the connection is gone and the feed's writes
            made so far are done.
        """
        closed: Deferred[None] = Deferred()
        self._stop_waiters.append(closed)
        self._owner.status_changed()
        self._stop()
        stored = self._feed.stop()
        return gatherResults([closed, stored], consumeErrors=True).addCallback(lambda _: None)

    def pending(self) -> list[bytes]:
        """
        :return: the payloads a channel built after this one must be given
            (a durable feed's are in the store).
        """
        return self._feed.pending()

    def unstored(self) -> int:
        """
        :return: dispatches given to :meth:`deliver` not durable yet.
        """
        return self._feed.unstored()

    @property
    def connected(self) -> bool:
        """
        Whether the websocket to the bot is open.
        """
        return _SHOWN[self._state_name()] == "connected"

    def snapshot(self) -> ChannelSnapshot:
        """
        :return: state, counters and the last problem reaching the bot.
        """
        feed = self._feed
        state = _SHOWN[self._state_name()]
        if state is None:
            state = "connecting" if feed.has_work() else "idle"
        problem = self._last_error
        if problem is None and self._writer.stalled:
            problem = STALLED
        return ChannelSnapshot(state, feed.queued, feed.dropped, self._writer.delivered, problem)

    # -- what the connection reports (BotConnection) -------------------------------

    def bot_opened(self, connection: BotConnection) -> None:
        if connection is not self._connection:
            return
        self._owner.status_changed()
        problem = self._framing.refusal(connection.websocket_protocol_in_use)
        if problem is None:
            self._handshake_done()
        else:
            self._fail(problem)

    def bot_closing(self, connection: BotConnection) -> None:
        # A close frame came (the bot's, or its answer to ours).  The server
        # is the one to drop TCP; give it close_timeout seconds to.
        if connection is self._connection and not self._close_deadline.active:
            self._close_deadline.start(self._config.close_timeout)

    def bot_lost(self, connection: BotConnection, problem: str | None) -> None:
        if connection is not self._connection:
            # one we abandoned after its deadline
            return
        self._owner.status_changed()
        self._connection = None
        self._writer.detach()
        self._idle.cancel()
        self._connect_deadline.cancel()
        self._close_deadline.cancel()
        self._cancel_pings()
        if self._feed.has_work():
            self._lost(problem)
        else:
            self._lost_idle(problem)

    def bot_message(self, connection: BotConnection, data: bytes) -> None:
        if connection is not self._connection:
            return
        if not self._framing.received(data, self._writer):
            self.log.debug("Ignoring a frame from {alias}'s bot", alias=self._alias)

    def bot_pong(self, connection: BotConnection) -> None:
        if connection is self._connection and self._pong_deadline is not None:
            self._pong_deadline.cancel()

    # -- helpers ----------------------------------------------------------------------

    def _entries_ready(self) -> None:
        # the feed has entries to send (stored, paged in): _work, as in
        # deliver()
        self._owner.status_changed()
        state = self._state_name()
        if state == "open":
            self._writer.write_waiting()
        elif state == "idle":
            self._work()

    def _retry_passed(self) -> None:
        self._owner.status_changed()
        self._retry_due()

    def _ping_passed(self) -> None:
        self._ping_due()

    def _pong_not_come(self) -> None:
        self._owner.status_changed()
        self._pong_missed()

    def _cancel_pings(self) -> None:
        if self._pinger is not None and self._pong_deadline is not None:
            self._pinger.cancel()
            self._pong_deadline.cancel()

    def _connection_problem(self, problem: str) -> None:
        self._last_error = problem
        self.log.warn("Connection to {alias}'s bot: {problem}", alias=self._alias, problem=problem)

    def _fail(self, problem: str) -> None:
        self._owner.status_changed()
        if self._feed.has_work():
            self._failed(problem)
        else:
            self._failed_idle(problem)

    def _connect_timed_out(self) -> None:
        timeout = self._config.connect_timeout
        if self._connection is not None:
            self._fail(f"the bot did not answer the websocket handshake within {timeout:g} s")
        else:
            self._fail(f"could not connect to the bot within {timeout:g} s")

    def _close_timed_out(self) -> None:
        # the bot did not finish the close handshake
        if self._connection is not None:
            abort(self._connection)

    def _idle_passed(self) -> None:
        # With acknowledgements, what is in memory was sent and not acked
        # (everything in memory is written while the connection is open);
        # without, what is written is taken at once.
        self._owner.status_changed()
        unacked = not self._framing.delivered_when_written and bool(
            self._feed.entries_after(0, 1)
        )
        if unacked:
            self._ack_overdue()
        elif self._feed.has_work():
            # entries are still being stored or paged in: not idle
            self._idle.touch()
        else:
            self._idle_close()
