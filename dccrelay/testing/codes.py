"""
Discord gateway numbers the simulator enforces, and the one way it writes a
gateway payload.

Sources: discord/discord-api-docs, ``developers/topics/opcodes-and-status-codes.mdx``
(opcodes, close codes) and ``developers/events/gateway.mdx`` (intents, limits).
"""

from __future__ import annotations

# These repeat dccrelay.gateway.codes on purpose: the simulator stands in for
# Discord, so a wrong number in the relay must not be copied into its test
# double, where it would pass unnoticed.
from typing import Any

import orjson

# Opcodes.
DISPATCH = 0
HEARTBEAT = 1
IDENTIFY = 2
PRESENCE_UPDATE = 3
VOICE_STATE_UPDATE = 4
RESUME = 6
RECONNECT = 7
REQUEST_GUILD_MEMBERS = 8
INVALID_SESSION = 9
HELLO = 10
HEARTBEAT_ACK = 11
REQUEST_SOUNDBOARD_SOUNDS = 31
REQUEST_CHANNEL_INFO = 43

#: Opcodes a client may send; anything else closes with 4001.
CLIENT_OPCODES = frozenset(
    {
        HEARTBEAT,
        IDENTIFY,
        PRESENCE_UPDATE,
        VOICE_STATE_UPDATE,
        RESUME,
        REQUEST_GUILD_MEMBERS,
        REQUEST_SOUNDBOARD_SOUNDS,
        REQUEST_CHANNEL_INFO,
    }
)

#: Opcodes a client may send before it has identified or resumed.
UNAUTHENTICATED_OPCODES = frozenset({HEARTBEAT, IDENTIFY, RESUME})

# Close codes.
UNKNOWN_ERROR = 4000
UNKNOWN_OPCODE = 4001
DECODE_ERROR = 4002
NOT_AUTHENTICATED = 4003
AUTHENTICATION_FAILED = 4004
ALREADY_AUTHENTICATED = 4005
INVALID_SEQ = 4007
RATE_LIMITED = 4008
SESSION_TIMED_OUT = 4009
INVALID_SHARD = 4010
SHARDING_REQUIRED = 4011
INVALID_API_VERSION = 4012
INVALID_INTENTS = 4013
DISALLOWED_INTENTS = 4014

#: Close codes after which Discord says "start a new session".
SESSION_ENDING_CLOSE_CODES = frozenset({INVALID_SEQ, SESSION_TIMED_OUT})

#: A client closing with these ends its session (the bot shows offline).
SESSION_ENDING_CLIENT_CODES = frozenset({1000, 1001})

# Intents.
GUILD_MEMBERS = 1 << 1
GUILD_PRESENCES = 1 << 8
GUILD_MESSAGES = 1 << 9
DIRECT_MESSAGES = 1 << 12
MESSAGE_CONTENT = 1 << 15

PRIVILEGED_INTENTS = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT

#: Every documented intent bit: 0-16, 20, 21, 24, 25.
KNOWN_INTENTS = (
    sum(1 << bit for bit in range(17)) | 1 << 20 | 1 << 21 | 1 << 24 | 1 << 25
)

API_VERSION = 10

#: Largest payload a client may send, in bytes.
MAX_CLIENT_PAYLOAD = 4096


def payload(op: int, d: Any, s: int | None = None, t: str | None = None) -> bytes:
    """
    Serialise one gateway payload as Discord orders its keys.

    :param op: the opcode.
    :param d: the event data.
    :param s: the sequence number (dispatches only).
    :param t: the event name (dispatches only).
    :return: the JSON text, as sent on the wire.
    """
    return orjson.dumps({"t": t, "s": s, "op": op, "d": d})
