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
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from dccrelay.testing import codes, members

if TYPE_CHECKING:
    from dccrelay.testing.session import SimulatedSession
    from dccrelay.testing.simulator import DiscordSimulator, SimulatedBot

_TRACE = ['["dccrelay-simulator",{"micros":0}]']


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
        self._clock = simulator.clock
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
        self._receive_times: deque[float] = deque()
        self._heartbeat_deadline: IDelayedCall | None = None
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
        self._send(
            codes.payload(
                codes.HELLO,
                {"heartbeat_interval": self._sim.heartbeat_interval, "_trace": _TRACE},
            )
        )
        self._arm_heartbeat_deadline()

    def frame_received(self, data: bytes) -> None:
        """Handle one complete websocket message from the client."""
        if self.closing:
            return
        if not self._count_payload():
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
            self._identify(d)
        elif op == codes.RESUME:
            self._resume(d)
        elif not isinstance(d, dict):
            self.close(codes.DECODE_ERROR, f"opcode {op} needs an object in d")
        elif op == codes.PRESENCE_UPDATE:
            self._presence_update(d)
        elif op == codes.REQUEST_GUILD_MEMBERS:
            self._request_guild_members(d)

    def client_closing(self, code: int | None) -> None:
        """The client sent a close frame first."""
        if self.closing:
            return
        self.closing = True
        self.client_close_code = code
        self._sim.record("client_close", code)
        self._cancel_heartbeat_deadline()
        if self.session is not None and code in codes.SESSION_ENDING_CLIENT_CODES:
            self.session.invalidate(f"client closed with {code}")
        self._leave_session()

    def connection_lost(self) -> None:
        """The TCP connection is gone, whoever ended it."""
        if self.lost:
            return
        self.lost = True
        self.closing = True
        self._cancel_heartbeat_deadline()
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
        self._cancel_heartbeat_deadline()
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
        self._cancel_heartbeat_deadline()
        self._leave_session()
        self._wire.abort()

    def send_reconnect(self) -> None:
        """Send op 7: the client should reconnect and resume."""
        self._sim.record("reconnect", self.shard_id)
        self._send(codes.payload(codes.RECONNECT, None))

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
        self._send(codes.payload(codes.HEARTBEAT, None))

    def wait_closed(self) -> Deferred[None]:
        """A Deferred that fires once the TCP connection is gone."""
        if self.lost:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._lost_waiters.append(waiter)
        return waiter

    def send_dispatch(self, frame: bytes) -> None:
        """Send a dispatch already numbered by this connection's session."""
        self._send(frame)

    # -- the protocol ----------------------------------------------------------

    def _presence_update(self, d: dict[str, Any]) -> None:
        problem = members.presence_problem(d)
        if problem is not None:
            self.close(codes.DECODE_ERROR, problem)
            return
        assert self.bot is not None and self.shard_id is not None
        self.bot.presences[self.shard_id] = d
        self._sim.record("presence", self.shard_id)

    def _request_guild_members(self, d: dict[str, Any]) -> None:
        problem = members.request_problem(d)
        if problem is not None:
            self.close(codes.DECODE_ERROR, problem)
            return
        assert self.bot is not None and self.session is not None
        self.bot.member_requests.append((self.shard_id, d))
        self._sim.record("member_request", d.get("nonce"))
        answers = members.answer_request(
            self,
            d,
            self.bot.guild_members,
            self.bot.all_members_asked,
            self._clock.seconds(),
            self._sim.member_chunk_size,
        )
        for t, answer in answers:
            self.send_dispatch(self.session.next_dispatch(t, answer))

    def _count_payload(self) -> bool:
        now = self._clock.seconds()
        times = self._receive_times
        times.append(now)
        while times and times[0] <= now - self._sim.payload_window:
            times.popleft()
        if len(times) > self._sim.payload_limit:
            self.close(codes.RATE_LIMITED, "rate limited: too many payloads")
            return False
        return True

    def _heartbeat(self, d: Any) -> None:
        if d is not None and type(d) is not int:
            self.close(codes.DECODE_ERROR, "heartbeat d must be a sequence number or null")
            return
        self.heartbeats.append(d)
        self._arm_heartbeat_deadline()
        if self.ack_heartbeats:
            self._send(codes.payload(codes.HEARTBEAT_ACK, None))

    def _authenticate(self, token: str) -> SimulatedBot | None:
        """
        The bot ``token`` belongs to, now this connection's; or close with
        4004.
        """
        bot = self._sim.bot_for_token(token)
        if bot is None:
            self.close(codes.AUTHENTICATION_FAILED, "authentication failed")
            return None
        self.bot = bot
        return bot

    def _identify(self, d: Any) -> None:
        if self.session is not None:
            self.close(codes.ALREADY_AUTHENTICATED, "already authenticated")
            return
        problem = _identify_shape_problem(d)
        if problem is not None:
            self.close(codes.DECODE_ERROR, problem)
            return
        bot = self._authenticate(d["token"])
        if bot is None:
            return
        bot.identifies += 1
        bot.identify_urls[self.url_kind] += 1

        intents = d.get("intents")
        if type(intents) is not int or intents < 0 or intents & ~codes.KNOWN_INTENTS:
            self.close(codes.INVALID_INTENTS, "invalid intent(s)")
            return
        if intents & codes.PRIVILEGED_INTENTS & ~bot.privileged_intents:
            self.close(codes.DISALLOWED_INTENTS, "disallowed intent(s)")
            return

        shard = d.get("shard")
        if shard is None:
            if bot.shards is not None and bot.shards > 1:
                self.close(codes.SHARDING_REQUIRED, "sharding required")
                return
            shard_id, shard_count = 0, 1
        else:
            if not _valid_shard(shard, bot.shards):
                self.close(codes.INVALID_SHARD, "invalid shard")
                return
            shard_id, shard_count = shard
        self.shard_id = shard_id

        refusal = bot.claim_identify(shard_id)
        if refusal is not None:
            self._sim.record("identify_refused", refusal)
            self._send_invalid_session(False)
            return

        session = self._sim.start_session(bot, shard_id, shard_count, intents)
        session.attach(self)
        self.session = session
        self._sim.record("identify", shard_id)
        ready: dict[str, Any] = {
            "v": codes.API_VERSION,
            "user_settings": {},
            "user": bot.user_object(),
            "session_type": "normal",
            "session_id": session.session_id,
            "resume_gateway_url": self._sim.resume_url,
            "relationships": [],
            "private_channels": [],
            "presences": [],
            "guilds": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "application": {"id": bot.user_id, "flags": 0},
            "_trace": _TRACE,
        }
        if shard is not None:
            ready["shard"] = [shard_id, shard_count]
        self._send(session.next_dispatch("READY", ready))
        self._sim.record("ready", shard_id)
        bot.became_ready(self)

    def _resume(self, d: Any) -> None:
        if self.session is not None:
            self.close(codes.ALREADY_AUTHENTICATED, "already authenticated")
            return
        if (
            not isinstance(d, dict)
            or not isinstance(d.get("token"), str)
            or not isinstance(d.get("session_id"), str)
            or not (d.get("seq") is None or type(d.get("seq")) is int)
        ):
            self.close(codes.DECODE_ERROR, "resume needs token, session_id and seq")
            return
        bot = self._authenticate(d["token"])
        if bot is None:
            return
        bot.resumes += 1
        bot.resume_urls[self.url_kind] += 1

        session = self._sim.sessions.get(d["session_id"])
        if session is None or session.bot is not bot:
            self._refuse_resume("unknown_session")
            return
        self.shard_id = session.shard_id
        if self.url_kind != "resume":
            self._refuse_resume("wrong_url")
            return
        if not session.resumable:
            self._refuse_resume(session.end_reason or "invalidated")
            return
        seq = d["seq"] or 0
        if seq > session.seq:
            session.invalidate("invalid seq")
            self.close(
                codes.INVALID_SEQ,
                f"invalid seq {seq}: the session has only reached {session.seq}",
            )
            return
        frames = session.replay_after(seq)
        if frames is None:
            self._refuse_resume("replay_unavailable")
            return

        previous = session.connection
        if previous is not None and previous is not self:
            self._sim.record("superseded", session.shard_id)
            previous.drop()
        session.attach(self)
        self.session = session
        self._sim.record("resume", session.shard_id)
        for frame in frames:
            self._send(frame)
        self._send(session.next_dispatch("RESUMED", {"_trace": _TRACE}, buffered=False))
        self._sim.record("resumed", session.shard_id)
        bot.became_ready(self)

    def _refuse_resume(self, reason: str) -> None:
        self._sim.record("resume_refused", reason)
        self._send_invalid_session(False)

    def _send_invalid_session(self, resumable: bool) -> None:
        self._sim.record("invalid_session", resumable)
        self._send(codes.payload(codes.INVALID_SESSION, resumable))

    def _send(self, frame: bytes) -> None:
        if self.closing:
            return
        if self._sim.keep_frames:
            self.sent.append(frame)
        self._wire.send_frame(frame)

    def _leave_session(self) -> None:
        if self.session is not None:
            self.session.detach(self)
            self.session = None

    def _arm_heartbeat_deadline(self) -> None:
        self._cancel_heartbeat_deadline()
        self._heartbeat_deadline = self._clock.callLater(
            self._sim.heartbeat_timeout, self._heartbeat_missed
        )

    def _cancel_heartbeat_deadline(self) -> None:
        if self._heartbeat_deadline is not None:
            if self._heartbeat_deadline.active():
                self._heartbeat_deadline.cancel()
            self._heartbeat_deadline = None

    def _heartbeat_missed(self) -> None:
        self._heartbeat_deadline = None
        if self.session is not None:
            self.session.invalidate("heartbeat timeout")
        self.close(codes.SESSION_TIMED_OUT, "session timed out: heartbeat overdue")


def _identify_shape_problem(d: Any) -> str | None:
    """
    What is wrong with an IDENTIFY's ``d`` (intents and shard aside, which
    have close codes of their own), or None.
    """
    if not isinstance(d, dict):
        return "identify needs an object in d"
    if not isinstance(d.get("token"), str):
        return "identify needs a token"
    properties = d.get("properties")
    if not isinstance(properties, dict) or not all(
        isinstance(properties.get(key), str) for key in ("os", "browser", "device")
    ):
        return "identify properties need os, browser and device strings"
    if "compress" in d and not isinstance(d["compress"], bool):
        return "identify compress must be a boolean"
    if "large_threshold" in d:
        threshold = d["large_threshold"]
        if type(threshold) is not int or not 50 <= threshold <= 250:
            return "identify large_threshold must be an integer from 50 to 250"
    if "presence" in d and not (d["presence"] is None or isinstance(d["presence"], dict)):
        return "identify presence must be an object"
    return None


def _valid_shard(shard: Any, required_count: int | None) -> bool:
    """Whether ``shard`` is ``[id, count]`` with ``0 <= id < count``."""
    if not isinstance(shard, list) or len(shard) != 2:
        return False
    shard_id, count = shard
    if type(shard_id) is not int or type(count) is not int:
        return False
    if not 0 <= shard_id < count:
        return False
    return required_count is None or count == required_count
