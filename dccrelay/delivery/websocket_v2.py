"""
Websocket v2 delivery: acknowledged, durable, in order.

The wire protocol (websocket subprotocol ``dcc.v2``):

- the relay opens a websocket to ``dst`` as in v1 (``Authorization: Basic
  base64(clientSecret)``, ``User-Agent: dccrelay/<version>``) and offers the
  subprotocol ``dcc.v2``; a bot that does not select it is not spoken to
  (it is reported in the bot's status and retried with backoff);
- the relay sends each dispatch as one text frame::

      {"op":"dispatch","id":N,"d":<the gateway payload, byte for byte>}

  exactly those bytes: the frame is the payload with a fixed prefix and a
  closing brace, so a bot may slice the payload out instead of
  re-serialising it;
- the bot answers ``{"op":"ack","id":N}`` once it has handled dispatch ``N``
  *and every one before it* (acks are cumulative; one ack may cover many);
- the bot may send gateway commands, ``{"op":"command","ref":R,"d":{"op":3
  or 8,"d":{...}}}`` (``ref``, optional, a string of at most 64 characters or
  an integer, is echoed back); the relay answers each, in order, with
  ``{"op":"command_result","ref":R,"status":202,"result":{...}}`` or
  ``{"op":"command_result","ref":R,"status":S,"error":...,"field":...,
  "retryAfter":...}``: the status and body ``POST /relays/{alias}/commands``
  would answer (see :mod:`dccrelay.commands`);
- ids come from the relay's durable outbox: they increase (not necessarily
  by one) and never repeat for a bot, so a bot that remembers the highest id
  it handled can drop a redelivered one;
- everything not acknowledged is sent again, in order, on the next
  connection: after the bot reconnects, or the relay restarts
  (at-least-once);
- the relay pings every :data:`PING_INTERVAL` seconds and drops a
  connection whose pong does not come within :data:`PING_TIMEOUT`: a dead
  bot host is noticed and its dispatches redelivered;
- as in v1, the relay closes the connection (1000) after ``idle_timeout``
  seconds with nothing to send and nothing unacknowledged.  A bot that
  leaves a dispatch unacknowledged for that long is disconnected and
  retried with backoff.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import orjson
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from dccrelay.delivery import IDurableChannel
from dccrelay.delivery.outbox import BotOutbox, OutboxWriter
from dccrelay.delivery.timers import Deadline
from dccrelay.delivery.websocket import (
    CLOSE_TIMEOUT,
    CLOSING,
    CONNECTED,
    IDLE,
    WebSocketDelivery,
    _abort,
    _BotConnection,
)
from dccrelay.store import IRelayStore, OutboxCheckpoint

SUBPROTOCOL = "dcc.v2"

#: seconds between pings on an open connection
PING_INTERVAL = 20.0

#: seconds a pong may take before the connection counts as dead
PING_TIMEOUT = 10.0

_FRAME_START = b'{"op":"dispatch","id":%d,"d":'

#: characters of a command's ``ref``, at most
MAX_REF = 64


def dispatch_frame(entry_id: int, payload: bytes) -> bytes:
    """
    The v2 frame for one dispatch: the payload's bytes untouched inside.
    """
    return _FRAME_START % entry_id + payload + b"}"


@implementer(IDurableChannel)
class WebSocketV2Delivery(WebSocketDelivery):
    """
    Delivers one bot's dispatches over websocket v2 from its durable
    outbox.

    Takes :class:`~dccrelay.delivery.websocket.WebSocketDelivery`'s
    arguments, and:

    :param store: the node's store (the outbox lives there).
    :param writer: the node's :class:`OutboxWriter`.
    :param queue_max_age: seconds a dispatch waits at most, or None.
    :param ping_interval: seconds between pings.
    :param ping_timeout: seconds a pong may take.
    :param on_command: given the ``d`` of a command frame from the bot,
        answers ``(status, body)`` (:func:`dccrelay.commands.command_answer`);
        without it commands are refused with 501.
    """

    subprotocols = [SUBPROTOCOL]

    def __init__(
        self,
        reactor: IReactorTime,
        *,
        store: IRelayStore,
        writer: OutboxWriter,
        queue_limit: int = 1000,
        queue_max_age: float | None = None,
        ping_interval: float = PING_INTERVAL,
        ping_timeout: float = PING_TIMEOUT,
        initial: Iterable[bytes] = (),
        on_command: Callable[[Any], tuple[int, dict[str, Any]]] | None = None,
        **kwargs: Any,
    ) -> None:
        self._on_command = on_command
        # the highest id written on the current connection
        self._sent_up_to = 0
        self._acked = 0
        self._ack_overdue = False
        self._next_problem: str | None = None
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._pinger = Deadline(reactor, self._ping)
        self._pong_deadline = Deadline(reactor, self._pong_missed)
        self._outbox: BotOutbox | None = None
        self._idle_timeout = float(kwargs.get("idle_timeout", 60.0))
        super().__init__(reactor, queue_limit=queue_limit, **kwargs)
        self._outbox = BotOutbox(
            alias=self._alias,
            store=store,
            writer=writer,
            clock=reactor,
            limit=queue_limit,
            max_age=queue_max_age,
            on_ready=self._entries_ready,
            initial=initial,
        )

    # IDurableChannel

    def deliver(self, payload: bytes, checkpoint: OutboxCheckpoint | None = None) -> None:
        """
        Append ``payload`` to the outbox; start connecting meanwhile, so the
        connection is likely open by the time it is stored.
        """
        try:
            assert self._outbox is not None
            self._outbox.append(payload, checkpoint)
            if self._state == IDLE:
                self._connect()
        except Exception:
            self.log.failure("Could not deliver a dispatch to {alias}", alias=self._alias)

    def stop(self) -> Deferred[None]:
        """
        Close the connection (1000) and cancel every timer; fires once the
        connection is gone and the outbox writes made so far are stored.
        """
        self._pinger.cancel()
        self._pong_deadline.cancel()
        assert self._outbox is not None
        closed = super().stop()
        stored = self._outbox.stop()
        return gatherResults([closed, stored], consumeErrors=True).addCallback(lambda _: None)

    def unstored(self) -> int:
        """
        :return: dispatches given to :meth:`deliver` not in the store yet.
        """
        return 0 if self._outbox is None else self._outbox.appending

    def pending(self) -> list[bytes]:
        """
        :return: nothing: what waits is in the outbox, where the next
            channel for this bot finds it.
        """
        return []

    def status(self) -> dict[str, object]:
        status = super().status()
        assert self._outbox is not None
        status["queued"] = self._outbox.backlog
        status["dropped"] = self._outbox.dropped
        status["delivered"] = self._acked
        return status

    # the queue

    def _has_work(self) -> bool:
        return self._outbox is not None and self._outbox.has_work()

    def _queued(self) -> int:
        return 0 if self._outbox is None else self._outbox.backlog

    def _entries_ready(self) -> None:
        if self._state == CONNECTED:
            self._flush()
        elif self._state == IDLE:
            self._connect()

    def _flush(self) -> None:
        connection = self._connection
        assert connection is not None and self._outbox is not None
        sent = 0
        try:
            for entry_id, payload in self._outbox.entries_after(self._sent_up_to):
                if connection.state != WebSocketProtocol.STATE_OPEN:
                    break
                connection.sendMessage(
                    dispatch_frame(entry_id, self._as_sent(payload)), isBinary=False
                )
                self._sent_up_to = entry_id
                sent += 1
        except Exception:
            self.log.failure("Could not send to {alias}'s bot", alias=self._alias)
            _abort(connection)
        if sent:
            self._idle.touch()

    # the connection

    def _accepts(self, connection: _BotConnection) -> str | None:
        if connection.websocket_protocol_in_use != SUBPROTOCOL:
            return (
                "the bot did not accept the dcc.v2 websocket subprotocol: update its "
                "receiver, or register with delivery protocol 1"
            )
        # a new connection: everything unacknowledged goes again
        self._sent_up_to = 0
        self._ack_overdue = False
        self._pinger.start(self._ping_interval)
        return None

    def _message(self, connection: _BotConnection, payload: bytes, isBinary: bool) -> None:
        if connection is not self._connection or self._outbox is None:
            return
        try:
            message = orjson.loads(payload)
            op = message.get("op")
            up_to = message.get("id")
        except (orjson.JSONDecodeError, AttributeError):
            op, up_to = None, None
        if op == "command":
            self._command(connection, message)
            return
        if op != "ack" or type(up_to) is not int:
            self.log.debug("Ignoring a frame from {alias}'s bot that is not an ack", alias=self._alias)
            return
        # an ack can only cover what was sent on this connection
        up_to = min(up_to, self._sent_up_to)
        taken: list[bytes] = []
        self._acked += self._outbox.ack(up_to, taken)
        if taken:
            self._report_delivered(taken)

    def _command(self, connection: _BotConnection, message: dict[str, Any]) -> None:
        ref = message.get("ref")
        if not (
            (isinstance(ref, str) and len(ref) <= MAX_REF) or type(ref) is int
        ):
            ref = None
        if self._on_command is None:
            status, answer = 501, {"error": "this relay does not take commands from bots"}
        else:
            try:
                status, answer = self._on_command(message.get("d"))
            except Exception:
                self.log.failure("{alias}: a command from the bot failed", alias=self._alias)
                status, answer = 500, {"error": "the relay failed to handle the command"}
        frame: dict[str, Any] = {"op": "command_result", "ref": ref, "status": status}
        if status == 202:
            frame["result"] = answer
        else:
            frame.update(answer)
        if connection.state == WebSocketProtocol.STATE_OPEN:
            connection.sendMessage(orjson.dumps(frame), isBinary=False)

    def _ping(self) -> None:
        connection = self._connection
        if self._state != CONNECTED or connection is None:
            return
        connection.sendPing()
        self._pong_deadline.start(self._ping_timeout)
        self._pinger.start(self._ping_interval)

    def _pong(self, connection: _BotConnection, payload: bytes) -> None:
        if connection is self._connection:
            self._pong_deadline.cancel()

    def _pong_missed(self) -> None:
        connection = self._connection
        if connection is None:
            return
        self.log.warn(
            "{alias}'s bot did not answer a ping within {timeout:g} s: dropping the connection",
            alias=self._alias,
            timeout=self._ping_timeout,
        )
        self._next_problem = f"the bot did not answer a ping within {self._ping_timeout:g} s"
        self._pinger.cancel()
        _abort(connection)

    def _idle_close(self) -> None:
        assert self._outbox is not None
        connection = self._connection
        if self._state != CONNECTED or connection is None:
            return
        unacked = self._outbox.entries_after(0)
        if not unacked and self._has_work():
            # entries are still being stored or paged in: not idle
            self._idle.touch()
            return
        self._pinger.cancel()
        self._pong_deadline.cancel()
        if not unacked:
            super()._idle_close()
            return
        self._ack_overdue = True
        self.log.warn(
            "{alias}'s bot has not acknowledged {count} dispatches for {timeout:g} s:"
            " reconnecting to send them again",
            alias=self._alias,
            count=len(unacked),
            timeout=self._idle_timeout,
        )
        self._state = CLOSING
        connection.sendClose(code=1000)
        self._deadline.start(CLOSE_TIMEOUT)

    def _lost(self, connection: _BotConnection, problem: str | None) -> None:
        if connection is not self._connection:
            return
        self._pinger.cancel()
        self._pong_deadline.cancel()
        if self._next_problem is not None:
            problem, self._next_problem = self._next_problem, None
        if self._ack_overdue and self._state == CLOSING:
            # Not a plain idle close: wait before trying again, so a bot that
            # never acks is not flooded with the same dispatches.
            self._ack_overdue = False
            self._connection = None
            self._idle.cancel()
            self._deadline.cancel()
            self._failed(
                "the bot did not acknowledge its dispatches within"
                f" {self._idle_timeout:g} s"
            )
            return
        super()._lost(connection, problem)

