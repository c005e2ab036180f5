"""
Gateway commands a bot sends through its relay: what is accepted, and on
which shard it goes.

A bot behind the relay holds no gateway connection, so it sends its
commands to the relay (``POST /relays/{alias}/commands``, or a websocket v2
frame), which forwards them on the bot's own connection, paced within
Discord's 120 payloads per 60 s shared with heartbeats.  Two commands are
accepted (discord/discord-api-docs, ``developers/events/gateway-events.mdx``):

- **op 3, Update Presence** ``{"since", "activities", "status", "afk"}``,
  sent on every shard (presence is per connection).  Of an activity Discord
  takes from a bot only ``name``, ``type``, ``state`` and ``url``; the other
  fields bots' libraries build (discord.py's ``assets``, ``platform``,
  ``timestamps``, ``buttons``, ``flags``...) are accepted and dropped, as
  Discord would ignore them;
- **op 8, Request Guild Members** ``{"guild_id", "query" | "user_ids",
  "limit", "presences", "nonce"}``, sent on the shard of the guild
  (``(guild_id >> 22) % shards``).  Discord answers with
  ``GUILD_MEMBERS_CHUNK`` dispatches carrying the request's ``nonce`` (or a
  ``RATE_LIMITED`` dispatch); the relay delivers those to the bot whatever
  its criteria say.  Without a ``nonce`` the relay gives the request one,
  so that its answers can be told apart.

Each command is checked against its schema and against what Discord would
refuse or silently ignore: ``presences`` needs the GUILD_PRESENCES intent,
the whole member list (``query: ""``) needs GUILD_MEMBERS, a nonce is at
most 32 bytes, a payload at most 4096 bytes.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Callable

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

PRESENCE_UPDATE = 3
REQUEST_GUILD_MEMBERS = 8

GUILD_MEMBERS = 1 << 1
GUILD_PRESENCES = 1 << 8

#: the most a client may send in one gateway payload
MAX_PAYLOAD = 4096

#: bytes in a member request's nonce, at most (Discord ignores longer ones)
MAX_NONCE = 32

_SNOWFLAKE = {"type": "string", "pattern": r"^[0-9]{1,20}$"}

PRESENCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Update Presence (op 3): shown on every shard of the bot.",
    "required": ["since", "activities", "status", "afk"],
    "additionalProperties": False,
    "properties": {
        "since": {
            "type": ["integer", "null"],
            "minimum": 0,
            "description": "Unix time (ms) the bot went idle, or null",
        },
        "activities": {
            "type": "array",
            "maxItems": 10,
            "items": {
                "type": "object",
                "required": ["name", "type"],
                "description": (
                    "An activity; fields other than name, type, state and url are "
                    "accepted and dropped (Discord ignores them from bots)."
                ),
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 128},
                    "type": {"type": "integer", "enum": [0, 1, 2, 3, 4, 5]},
                    "state": {"type": ["string", "null"], "maxLength": 128},
                    "url": {"type": ["string", "null"], "maxLength": 512},
                },
            },
        },
        "status": {"enum": ["online", "dnd", "idle", "invisible", "offline"]},
        "afk": {"type": "boolean"},
    },
}

REQUEST_MEMBERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        "Request Guild Members (op 8): answered with GUILD_MEMBERS_CHUNK dispatches "
        "carrying the nonce."
    ),
    "required": ["guild_id"],
    "additionalProperties": False,
    "anyOf": [{"required": ["query"]}, {"required": ["user_ids"]}],
    "dependentRequired": {"query": ["limit"]},
    "properties": {
        "guild_id": _SNOWFLAKE,
        "query": {"type": "string", "maxLength": 100},
        "limit": {"type": "integer", "minimum": 0, "maximum": 1000},
        "presences": {"type": "boolean"},
        "user_ids": {
            "oneOf": [
                _SNOWFLAKE,
                {"type": "array", "items": _SNOWFLAKE, "minItems": 1, "maxItems": 100},
            ]
        },
        "nonce": {"type": "string", "minLength": 1, "maxLength": MAX_NONCE},
    },
}

COMMAND_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["op", "d"],
    "additionalProperties": False,
    "properties": {
        "op": {"enum": [PRESENCE_UPDATE, REQUEST_GUILD_MEMBERS]},
        "d": {"type": "object"},
    },
    "oneOf": [
        {"properties": {"op": {"const": PRESENCE_UPDATE}, "d": PRESENCE_SCHEMA}},
        {"properties": {"op": {"const": REQUEST_GUILD_MEMBERS}, "d": REQUEST_MEMBERS_SCHEMA}},
    ],
}

#: the fields of an activity Discord takes from a bot
BOT_ACTIVITY_FIELDS = ("name", "type", "state", "url")

_ENVELOPE = Draft202012Validator(
    {k: v for k, v in COMMAND_SCHEMA.items() if k != "oneOf"}
)
_BY_OP = {
    PRESENCE_UPDATE: Draft202012Validator(PRESENCE_SCHEMA),
    REQUEST_GUILD_MEMBERS: Draft202012Validator(REQUEST_MEMBERS_SCHEMA),
}


class CommandError(ValueError):
    """
    A command the relay will not forward.

    :ivar status: the HTTP status that says so (400, 409, 429, 503).
    :ivar message: what is wrong, for a person.
    :ivar pointer: JSON pointer to the offending field, for a 400.
    :ivar retry_after: seconds after which trying again may work.
    """

    def __init__(
        self,
        message: str,
        pointer: str | None = None,
        *,
        status: int = 400,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.pointer = pointer
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class GatewayCommand:
    """
    A command checked and ready to send.

    :ivar nonce: op 8's nonce (given by the bot, or by the relay).
    """

    op: int
    d: dict[str, Any]
    nonce: str | None = None

    def payload(self) -> dict[str, Any]:
        """
        The gateway payload to send.
        """
        return {"op": self.op, "d": self.d}


def _pointer(error: ValidationError, prefix: str) -> str:
    return prefix + "".join(
        "/" + str(part).replace("~", "~0").replace("/", "~1") for part in error.absolute_path
    )


def _first_error(validator: Draft202012Validator, value: Any) -> ValidationError | None:
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    return errors[0] if errors else None


def _message(error: ValidationError, where: str) -> str:
    if error.validator == "additionalProperties":
        return f"{where or 'the command'}: unknown field: {error.message}"
    if error.validator == "anyOf" and not error.absolute_path:
        return f"{where}: one of query or user_ids is required"
    return f"{where}: {error.message}" if where else error.message


def parse_command(body: Any, intents: int) -> GatewayCommand:
    """
    Check a command from a bot.

    :param intents: the bot's registered intents.
    :raise CommandError: (400) naming the first problem.
    """
    error = _first_error(_ENVELOPE, body)
    if error is not None:
        pointer = _pointer(error, "")
        raise CommandError(_message(error, pointer.lstrip("/")), pointer)
    op = body["op"]
    d = body["d"]
    error = _first_error(_BY_OP[op], d)
    if error is not None:
        pointer = _pointer(error, "/d")
        raise CommandError(_message(error, pointer.lstrip("/")), pointer)
    nonce = None
    if op == PRESENCE_UPDATE:
        d = _presence_for_discord(d)
    if op == REQUEST_GUILD_MEMBERS:
        d = dict(d)
        if d.get("presences") and not intents & GUILD_PRESENCES:
            raise CommandError(
                "d/presences: the bot's intents lack GUILD_PRESENCES (1 << 8), without "
                "which Discord sends no presences",
                "/d/presences",
            )
        if d.get("query") == "" and not intents & GUILD_MEMBERS:
            raise CommandError(
                'd/query: the whole member list (query "") needs the GUILD_MEMBERS '
                "intent (1 << 1) in the registration: switch it on in Discord's developer "
                f"portal (it is privileged) and register with intents {intents | GUILD_MEMBERS}"
                ', or ask for members by name ("query": "abc", "limit": 10)',
                "/d/query",
            )
        nonce = d.get("nonce")
        if nonce is None:
            nonce = d["nonce"] = "dcc" + secrets.token_hex(8)
        elif len(nonce.encode("utf-8")) > MAX_NONCE:
            raise CommandError(
                f"d/nonce: at most {MAX_NONCE} bytes (Discord ignores a longer one)",
                "/d/nonce",
            )
    command = GatewayCommand(op, d, nonce)
    size = len(orjson.dumps(command.payload()))
    if size > MAX_PAYLOAD:
        raise CommandError(
            f"the command is {size} bytes; Discord takes at most {MAX_PAYLOAD}", ""
        )
    return command


def _presence_for_discord(d: dict[str, Any]) -> dict[str, Any]:
    # Libraries send what their activity objects hold; Discord ignores all
    # but these from a bot, so they are dropped rather than refused.
    activities = [
        {key: activity[key] for key in BOT_ACTIVITY_FIELDS if key in activity}
        for activity in d["activities"]
    ]
    return {**d, "activities": activities}


def shards_for(command: GatewayCommand, shard_count: int) -> list[int]:
    """
    The shards a command goes on: every one for a presence, the guild's
    for a member request (DMs have no members to request).
    """
    if command.op == REQUEST_GUILD_MEMBERS:
        return [(int(command.d["guild_id"]) >> 22) % max(shard_count, 1)]
    return list(range(shard_count))


def answers_request(payload: dict[str, Any], nonces: dict[str, Any]) -> str | None:
    """
    The nonce of an outstanding member request that ``payload`` (a
    dispatch) answers, if any: a ``GUILD_MEMBERS_CHUNK`` with its nonce, or
    a ``RATE_LIMITED`` for opcode 8 with it in ``meta``.
    """
    t = payload.get("t")
    d = payload.get("d")
    if not isinstance(d, dict):
        return None
    if t == "GUILD_MEMBERS_CHUNK":
        nonce = d.get("nonce")
    elif t == "RATE_LIMITED" and d.get("opcode") == REQUEST_GUILD_MEMBERS:
        meta = d.get("meta")
        nonce = meta.get("nonce") if isinstance(meta, dict) else None
    else:
        return None
    if isinstance(nonce, str) and nonce in nonces:
        return nonce
    return None


def command_answer(
    send: Callable[[Any], dict[str, Any]], body: Any
) -> tuple[int, dict[str, Any]]:
    """
    Send a command and say how it went, as ``POST /relays/{alias}/commands``
    answers: ``(202, result)``, or ``(status, {"error", "field"?,
    "retryAfter"?})``.

    :param send: :meth:`dccrelay.relay.relay.Relay.send_command`.
    """
    try:
        return 202, send(body)
    except CommandError as e:
        answer: dict[str, Any] = {"error": e.message}
        if e.pointer is not None:
            answer["field"] = e.pointer
        if e.retry_after is not None:
            answer["retryAfter"] = e.retry_after
        return e.status, answer
