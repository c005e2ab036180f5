"""
IDENTIFY (op 2) and RESUME (op 6) on one simulated gateway connection, as
:mod:`dccrelay.testing.connection` describes them: the token authenticated
(4004), the intents (4013, 4014) and shard (4010, 4011) checked, an identify
slot claimed, then READY; or a session resumed through
``resume_gateway_url``, its buffered dispatches replayed, then RESUMED; or
op 9 ``d: false`` when neither can be.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dccrelay.testing import codes

if TYPE_CHECKING:
    from dccrelay.testing.connection import SimulatedConnection
    from dccrelay.testing.session import SimulatedSession
    from dccrelay.testing.simulator import DiscordSimulator, SimulatedBot

#: the ``_trace`` Discord adds to HELLO, READY and RESUMED
TRACE = ['["dccrelay-simulator",{"micros":0}]']


class Handshake:
    """
    Starts or resumes the session of one connection.

    :param connection: the connection whose ``bot``, ``shard_id`` and
        ``session`` this sets.
    """

    def __init__(self, connection: SimulatedConnection, simulator: DiscordSimulator) -> None:
        self._connection = connection
        self._sim = simulator

    def identify(self, d: Any) -> None:
        """
        Handle IDENTIFY: answer READY in a new session, op 9 when no
        identify slot is free, or close with the code of what is wrong.
        """
        connection = self._connection
        if connection.session is not None:
            connection.close(codes.ALREADY_AUTHENTICATED, "already authenticated")
            return
        problem = _identify_shape_problem(d)
        if problem is not None:
            connection.close(codes.DECODE_ERROR, problem)
            return
        bot = self._authenticate(d["token"])
        if bot is None:
            return
        bot.identifies += 1
        bot.identify_urls[connection.url_kind] += 1

        intents = d.get("intents")
        if type(intents) is not int or intents < 0 or intents & ~codes.KNOWN_INTENTS:
            connection.close(codes.INVALID_INTENTS, "invalid intent(s)")
            return
        if intents & codes.PRIVILEGED_INTENTS & ~bot.privileged_intents:
            connection.close(codes.DISALLOWED_INTENTS, "disallowed intent(s)")
            return

        shard = d.get("shard")
        if shard is None:
            if bot.shards is not None and bot.shards > 1:
                connection.close(codes.SHARDING_REQUIRED, "sharding required")
                return
            shard_id, shard_count = 0, 1
        else:
            if not _valid_shard(shard, bot.shards):
                connection.close(codes.INVALID_SHARD, "invalid shard")
                return
            shard_id, shard_count = shard
        connection.shard_id = shard_id

        refusal = bot.claim_identify(shard_id)
        if refusal is not None:
            self._sim.record("identify_refused", refusal)
            # not identified yet: this only sends op 9
            connection.send_invalid_session(False)
            return
        self._start_session(bot, shard_id, shard_count, intents, sharded=shard is not None)

    def _start_session(
        self, bot: SimulatedBot, shard_id: int, shard_count: int, intents: int, sharded: bool
    ) -> None:
        """
        Attach a new session and send READY, naming the shard if IDENTIFY
        did.
        """
        connection = self._connection
        session = self._sim.start_session(bot, shard_id, shard_count, intents)
        session.attach(connection)
        connection.session = session
        self._sim.record("identify", shard_id)
        ready = _ready_payload(bot, session, self._sim.resume_url)
        if sharded:
            ready["shard"] = [shard_id, shard_count]
        connection.send(session.next_dispatch("READY", ready))
        self._sim.record("ready", shard_id)
        bot.became_ready(connection)

    def resume(self, d: Any) -> None:
        """
        Handle RESUME: replay what the session buffered after ``seq`` and
        send RESUMED, or op 9 when the session cannot be resumed here, or
        close with the code of what is wrong.
        """
        connection = self._connection
        if connection.session is not None:
            connection.close(codes.ALREADY_AUTHENTICATED, "already authenticated")
            return
        if (
            not isinstance(d, dict)
            or not isinstance(d.get("token"), str)
            or not isinstance(d.get("session_id"), str)
            or not (d.get("seq") is None or type(d.get("seq")) is int)
        ):
            connection.close(codes.DECODE_ERROR, "resume needs token, session_id and seq")
            return
        bot = self._authenticate(d["token"])
        if bot is None:
            return
        bot.resumes += 1
        bot.resume_urls[connection.url_kind] += 1

        session = self._sim.sessions.get(d["session_id"])
        if session is None or session.bot is not bot:
            self._refuse_resume("unknown_session")
            return
        connection.shard_id = session.shard_id
        if connection.url_kind != "resume":
            self._refuse_resume("wrong_url")
            return
        if not session.resumable:
            self._refuse_resume(session.end_reason or "invalidated")
            return
        seq = d["seq"] or 0
        if seq > session.seq:
            session.invalidate("invalid seq")
            connection.close(
                codes.INVALID_SEQ,
                f"invalid seq {seq}: the session has only reached {session.seq}",
            )
            return
        frames = session.replay_after(seq)
        if frames is None:
            self._refuse_resume("replay_unavailable")
            return
        self._take_over(bot, session, frames)

    def _take_over(
        self, bot: SimulatedBot, session: SimulatedSession, frames: list[bytes]
    ) -> None:
        """
        Move ``session`` to this connection (dropping the one it was on),
        replay ``frames`` and send RESUMED.
        """
        connection = self._connection
        previous = session.connection
        if previous is not None and previous is not connection:
            self._sim.record("superseded", session.shard_id)
            previous.drop()
        session.attach(connection)
        connection.session = session
        self._sim.record("resume", session.shard_id)
        for frame in frames:
            connection.send(frame)
        connection.send(session.next_dispatch("RESUMED", {"_trace": TRACE}, buffered=False))
        self._sim.record("resumed", session.shard_id)
        bot.became_ready(connection)

    def _authenticate(self, token: str) -> SimulatedBot | None:
        """
        The bot ``token`` belongs to, now the connection's; or close with
        4004.
        """
        bot = self._sim.bot_for_token(token)
        if bot is None:
            self._connection.close(codes.AUTHENTICATION_FAILED, "authentication failed")
            return None
        self._connection.bot = bot
        return bot

    def _refuse_resume(self, reason: str) -> None:
        self._sim.record("resume_refused", reason)
        # not resumed yet: this only sends op 9
        self._connection.send_invalid_session(False)


def _ready_payload(bot: SimulatedBot, session: SimulatedSession, resume_url: str) -> dict[str, Any]:
    """
    READY's ``d`` for ``bot`` in ``session`` (its shard aside).
    """
    return {
        "v": codes.API_VERSION,
        "user_settings": {},
        "user": bot.user_object(),
        "session_type": "normal",
        "session_id": session.session_id,
        "resume_gateway_url": resume_url,
        "relationships": [],
        "private_channels": [],
        "presences": [],
        "guilds": [],
        "guild_join_requests": [],
        "geo_ordered_rtc_regions": [],
        "application": {"id": bot.user_id, "flags": 0},
        "_trace": TRACE,
    }


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
