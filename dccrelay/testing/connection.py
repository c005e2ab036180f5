"""
The server side of one simulated Discord gateway connection.

The wire protocol (Discord API v10, JSON encoding), as enforced here:

- on open the server sends HELLO (op 10, ``{"heartbeat_interval": ms}``);
- the client sends op 1 heartbeats (``d`` = last sequence or null) at least
  every interval; the server answers each with op 11. A heartbeat later than
  the heartbeat timeout (default 1.5 x interval) since HELLO or the previous
  heartbeat closes the connection with 4009 and ends the session;
- the client sends IDENTIFY (op 2) or RESUME (op 6) before anything else but
  heartbeats (4003), and only once (4005);
- IDENTIFY is answered by the READY dispatch (``s`` 1), or by op 9
  ``d: false`` when the identify concurrency bucket or the daily session start
  limit is exhausted; RESUME by a replay of every buffered dispatch after
  ``seq`` and a RESUMED dispatch, or by op 9 ``d: false`` when the session is
  unknown, expired, invalidated or the connection did not come in through
  ``resume_gateway_url``;
- every client payload counts towards 120 per 60 s (4008) and must be JSON
  (4002) of at most 4096 bytes (4002) with a known opcode (4001);
- Update Presence (op 3) and Request Guild Members (op 8) are checked and
  answered as :mod:`dccrelay.testing.members` says.

:class:`SimulatedConnection` holds that logic and talks to the network only
through a :class:`GatewayWire`, so it can be driven without sockets; the
Autobahn protocol in :mod:`dccrelay.testing.gateway_server` is one such wire.
It reads payloads, sends frames and closes; IDENTIFY and RESUME are in
:mod:`dccrelay.testing.handshake`, the commands in
:mod:`dccrelay.testing.client_commands`, the heartbeat deadline and payload
rate in :mod:`dccrelay.testing.connection_rules`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import orjson
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from dccrelay.testing import codes
from dccrelay.testing.client_commands import ClientCommands
from dccrelay.testing.connection_rules import HeartbeatDeadline, PayloadRate
from dccrelay.testing.handshake import TRACE, Handshake

if TYPE_CHECKING:
    from dccrelay.testing.session import SimulatedSession
    from dccrelay.testing.simulator import DiscordSimulator, SimulatedBot

class GatewayWire(Protocol):
    """What a :class:`SimulatedConnection` needs from its transport."""

    def send_frame(self, data: bytes) -> None:
        """Send one gateway payload (JSON text) to the client."""

    def send_close(self, code: int, reason: str) -> None:
        """Start the websocket closing handshake with ``code``."""

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""


class SimulatedConnection:
    """
    One gateway websocket session as the simulated Discord sees it.

    Attributes tests read:

    :ivar url_kind: ``"gateway"`` or ``"resume"``: which URL the client used.
    :ivar received: every payload the client sent that parsed as JSON.
    :ivar sent: every payload sent to the client, as bytes, in order.
    :ivar heartbeats: the ``d`` of every heartbeat received.
    :ivar ack_heartbeats: set to False to stop answering heartbeats.
    :ivar bot: the bot whose token the client presented, once it did.
    :ivar shard_id: the shard, once IDENTIFY or RESUME named one.
    :ivar session: the attached session while identified or resumed.
    :ivar close_code: the code the simulator closed with, if it did.
    :ivar client_close_code: the code of the client's close frame, if any.
    :ivar lost: True once the TCP connection is gone.
    """

    _log = Logger()

    def __init__(
        self, simulator: DiscordSimulator, wire: GatewayWire, url_kind: str, number: int
    ) -> None:
        self._sim = simulator
        self._wire = wire
        self.url_kind = url_kind
        self.number = number
        self.received: list[Any] = []
        self.sent: list[bytes] = []
        self.heartbeats: list[int | None] = []
        self.ack_heartbeats = True
        self.bot: SimulatedBot | None = None
        self.shard_id: int | None = None
        self.session: SimulatedSession | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.client_close_code: int | None = None
        self.closing = False
        self.lost = False
        self._payloads = PayloadRate(simulator)
        self._heartbeat_deadline = HeartbeatDeadline(simulator, self._heartbeat_missed)
        self._handshake = Handshake(self, simulator)
        self._commands = ClientCommands(self, simulator)
        self._lost_waiters: list[Deferred[None]] = []

    def __repr__(self) -> str:
        return (
            f"<SimulatedConnection #{self.number} {self.url_kind}"
            f" shard={self.shard_id} ready={self.ready} lost={self.lost}>"
        )

    @property
    def ready(self) -> bool:
        """True while identified or resumed and not closing."""
        return self.session is not None and not self.closing

    # -- driven by the wire ------------------------------------------------

    def start(self, refusal: str | None = None) -> None:
        """
        The websocket is open: send HELLO, or close with 4012 when the URL's
        query asked for another API version or encoding.
        """
        self._sim.record("connect", self.url_kind)
        if refusal is not None:
            self.close(codes.INVALID_API_VERSION, refusal)
            return
        self.send(
            codes.payload(
                codes.HELLO,
                {"heartbeat_interval": self._sim.heartbeat_interval, "_trace": TRACE},
            )
        )
        self._heartbeat_deadline.arm()

    def frame_received(self, data: bytes) -> None:
        """Handle one complete websocket message from the client."""
        if self.closing:
            return
        if not self._payloads.count():
            self.close(codes.RATE_LIMITED, "rate limited: too many payloads")
            return
        if len(data) > codes.MAX_CLIENT_PAYLOAD:
            self.close(codes.DECODE_ERROR, "payload larger than 4096 bytes")
            return
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.close(codes.DECODE_ERROR, "payload is not valid JSON")
            return
        if self._sim.keep_frames:
            self.received.append(message)
        if not isinstance(message, dict) or type(message.get("op")) is not int:
            self.close(codes.DECODE_ERROR, "payload must be an object with an integer op")
            return
        op = message["op"]
        d = message.get("d")
        if op not in codes.CLIENT_OPCODES:
            self.close(codes.UNKNOWN_OPCODE, f"unknown opcode {op}")
        elif self.session is None and op not in codes.UNAUTHENTICATED_OPCODES:
            self.close(codes.NOT_AUTHENTICATED, f"opcode {op} sent before identifying")
        elif op == codes.HEARTBEAT:
            self._heartbeat(d)
        elif op == codes.IDENTIFY:
            self._handshake.identify(d)
        elif op == codes.RESUME:
            self._handshake.resume(d)
        elif not isinstance(d, dict):
            self.close(codes.DECODE_ERROR, f"opcode {op} needs an object in d")
        elif op == codes.PRESENCE_UPDATE:
            self._commands.presence_update(d)
        elif op == codes.REQUEST_GUILD_MEMBERS:
            self._commands.request_guild_members(d)

    def client_closing(self, code: int | None) -> None:
        """The client sent a close frame first."""
        if self.closing:
            return
        self.closing = True
        self.client_close_code = code
        self._sim.record("client_close", code)
        self._heartbeat_deadline.cancel()
        if self.session is not None and code in codes.SESSION_ENDING_CLIENT_CODES:
            self.session.invalidate(f"client closed with {code}")
        self._leave_session()

    def connection_lost(self) -> None:
        """The TCP connection is gone, whoever ended it."""
        if self.lost:
            return
        self.lost = True
        self.closing = True
        self._heartbeat_deadline.cancel()
        self._leave_session()
        self._sim.connection_ended(self)
        waiters, self._lost_waiters = self._lost_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    # -- what tests do to the connection ------------------------------------

    def close(self, code: int, reason: str = "") -> None:
        """
        Close the websocket with ``code``, as Discord would. 4007 and 4009
        end the session; other codes leave it resumable.
        """
        if self.closing:
            return
        self.closing = True
        self.close_code = code
        self.close_reason = reason
        self._sim.record("close", code)
        self._log.debug(
            "connection {number} closing with {code} ({reason})",
            number=self.number,
            code=code,
            reason=reason,
        )
        self._heartbeat_deadline.cancel()
        if self.session is not None and code in codes.SESSION_ENDING_CLOSE_CODES:
            self.session.invalidate(f"closed with {code}")
        self._leave_session()
        self._wire.send_close(code, reason)

    def drop(self) -> None:
        """Abort the TCP connection without a close frame."""
        if self.lost:
            return
        self.closing = True
        self._sim.record("drop", self.shard_id)
        self._heartbeat_deadline.cancel()
        self._leave_session()
        self._wire.abort()

    def send_reconnect(self) -> None:
        """Send op 7: the client should reconnect and resume."""
        self._sim.record("reconnect", self.shard_id)
        self.send(codes.payload(codes.RECONNECT, None))

    def send_invalid_session(self, resumable: bool) -> None:
        """
        Send op 9. With ``resumable`` False the session ends; either way the
        connection is no longer identified, so the client may IDENTIFY again.
        """
        self._send_invalid_session(resumable)
        if self.session is not None and not resumable:
            self.session.invalidate("invalid session sent")
        self._leave_session()

    def request_heartbeat(self) -> None:
        """Send op 1: the client should heartbeat at once."""
        self._sim.record("heartbeat_request", self.shard_id)
        self.send(codes.payload(codes.HEARTBEAT, None))

    def wait_closed(self) -> Deferred[None]:
        """A Deferred that fires once the TCP connection is gone."""
        if self.lost:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._lost_waiters.append(waiter)
        return waiter

    def send_dispatch(self, frame: bytes) -> None:
        """Send a dispatch already numbered by this connection's session."""
        self.send(frame)

    # -- the protocol ----------------------------------------------------------

    def _heartbeat(self, d: Any) -> None:
        if d is not None and type(d) is not int:
            self.close(codes.DECODE_ERROR, "heartbeat d must be a sequence number or null")
            return
        self.heartbeats.append(d)
        self._heartbeat_deadline.arm()
        if self.ack_heartbeats:
            self.send(codes.payload(codes.HEARTBEAT_ACK, None))

    def _send_invalid_session(self, resumable: bool) -> None:
        self._sim.record("invalid_session", resumable)
        self.send(codes.payload(codes.INVALID_SESSION, resumable))

    def send(self, frame: bytes) -> None:
        """
        Send one payload to the client, unless closing; kept in :attr:`sent`
        when the simulator keeps frames.
        """
        if self.closing:
            return
        if self._sim.keep_frames:
            self.sent.append(frame)
        self._wire.send_frame(frame)

    def _leave_session(self) -> None:
        if self.session is not None:
            self.session.detach(self)
            self.session = None

    def _heartbeat_missed(self) -> None:
        if self.session is not None:
            self.session.invalidate("heartbeat timeout")
        self.close(codes.SESSION_TIMED_OUT, "session timed out: heartbeat overdue")

