"""
A small HTTP API for driving the simulator by hand (curl), under ``/_sim``:

- ``GET  /_sim/state``: bots, sessions, connections, recent events;
- ``POST /_sim/bots``: add a bot, ``{"token": ..., "user_id": ..., "shards": 1,
  "max_concurrency": 1, "remaining": 1000, "privileged_intents": 0}``;
- ``POST /_sim/bots/{token}/messages``: a MESSAGE_CREATE, ``{"content": ...,
  "author_bot": false, "guild_id": "2222", "channel_id": "3333",
  "mentions": [], "shard": null}``;
- ``POST /_sim/bots/{token}/dispatch``: any dispatch, ``{"t": ..., "d": {...},
  "shard": 0}``;
- ``POST /_sim/bots/{token}/close``: ``{"code": 4000, "reason": "", "shard": null}``;
- ``POST /_sim/bots/{token}/drop``, ``.../reconnect``,
  ``.../request-heartbeat``: ``{"shard": null}``;
- ``POST /_sim/bots/{token}/invalid-session``: ``{"resumable": false, "shard": null}``;
- ``POST /_sim/bots/{token}/ack-heartbeats``: ``{"ack": false, "shard": null}``.

For benchmarks:

- ``POST /_sim/bots/bulk``: add ``count`` bots at once, tokens
  ``{prefix}{n}`` and user ids from ``first_user_id``, ``{"prefix": "bench",
  "count": 1000, "first_user_id": 500000}``;
- ``GET  /_sim/summary``: counts of bots, live and ready connections,
  identifies and resumes;
- ``POST /_sim/load``: start a :class:`~dccrelay.testing.load.LoadGenerator`
  over every ready connection, ``{"rate": 2000, "count": 20000,
  "messages": 1000}`` (409 while one runs), with ``"others": 0.75`` three
  dispatches in four other events (typing, presences, reactions, member
  updates); ``GET /_sim/load``: its progress.

``"shard": null`` acts on every live connection of the bot. Errors are
``{"error": "..."}`` with 400, 404 (unknown bot or route) or 409 (no session
or no connection to act on).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import orjson
from twisted.web.resource import Resource
from twisted.web.server import Request

from dccrelay.testing._http import BodyError, read_object, respond, route
from dccrelay.testing.connection import SimulatedConnection

if TYPE_CHECKING:
    from dccrelay.testing.simulator import DiscordSimulator, SimulatedBot


class _Refusal(Exception):
    """An error answer: status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _optional_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is not None and type(value) is not int:
        raise _Refusal(400, f"{key} must be an integer or null, got {value!r}")
    return value


class ControlAPI(Resource):
    """Mounted at ``/_sim``."""

    isLeaf = True

    def __init__(self, simulator: DiscordSimulator) -> None:
        super().__init__()
        self._sim = simulator

    def render(self, request: Request) -> bytes:
        """Route, and turn refusals into JSON errors."""
        try:
            return self._route(request, route(request))
        except _Refusal as refusal:
            return respond(request, refusal.status, {"error": refusal.message})

    def _route(self, request: Request, path: list[str]) -> bytes:
        if path == ["state"]:
            self._require(request, b"GET")
            return respond(request, 200, self._sim.describe())
        if path == ["bots"]:
            self._require(request, b"POST")
            return self._add_bot(request)
        if path == ["bots", "bulk"]:
            self._require(request, b"POST")
            return respond(request, 200, self._add_bots(self._body(request)))
        if path == ["summary"]:
            self._require(request, b"GET")
            return respond(request, 200, self._sim.summary())
        if path == ["load"]:
            if request.method == b"GET":
                load = self._sim.load
                return respond(request, 200, load.status() if load is not None else None)
            self._require(request, b"POST")
            return respond(request, 200, self._start_load(self._body(request)))
        if len(path) == 3 and path[0] == "bots":
            action = self._actions().get(path[2])
            if action is None:
                raise _Refusal(404, f"unknown action {path[2]!r}")
            self._require(request, b"POST")
            bot = self._sim.bot_for_token(path[1])
            if bot is None:
                raise _Refusal(404, "no bot has that token: add it with POST /_sim/bots")
            try:
                body = read_object(request, empty_ok=True)
            except BodyError as e:
                raise _Refusal(400, str(e)) from None
            return respond(request, 200, action(bot, body))
        raise _Refusal(404, "unknown path: see GET /_sim/state")

    def _body(self, request: Request) -> dict[str, Any]:
        try:
            return read_object(request, empty_ok=True)
        except BodyError as e:
            raise _Refusal(400, str(e)) from None

    def _add_bots(self, body: dict[str, Any]) -> Any:
        prefix = body.get("prefix", "bench")
        if not isinstance(prefix, str) or not prefix:
            raise _Refusal(400, "prefix must be a non-empty string")
        count = _optional_int(body, "count") or 0
        first = _optional_int(body, "first_user_id") or 500000
        if not 1 <= count <= 100_000 or first < 1:
            raise _Refusal(400, "count must be from 1 to 100000, first_user_id positive")
        tokens = [f"{prefix}{n}" for n in range(count)]
        if any(self._sim.bot_for_token(token) is not None for token in tokens):
            raise _Refusal(409, "a bot with one of those tokens already exists")
        for n, token in enumerate(tokens):
            self._sim.add_bot(token, str(first + n))
        return {"added": count}

    def _start_load(self, body: dict[str, Any]) -> Any:
        from dccrelay.testing.load import (
            LoadGenerator,
            chatter,
            encode_bodies,
            layout,
            other_events,
        )

        current = self._sim.load
        if current is not None and not current.status()["done"]:
            raise _Refusal(409, "a load is already running: see GET /_sim/load")
        rate, count = body.get("rate"), _optional_int(body, "count")
        messages = _optional_int(body, "messages") or 1000
        if not isinstance(rate, (int, float)) or rate <= 0 or count is None or count < 1:
            raise _Refusal(400, "rate (per second) and count must be positive")
        if not 1 <= messages <= 100_000:
            raise _Refusal(400, "messages must be from 1 to 100000")
        others = body.get("others", 0)
        if not isinstance(others, (int, float)) or not 0 <= others <= 0.9:
            raise _Refusal(400, "others (the share of other events) must be from 0 to 0.9")
        slots = layout(messages, float(others))
        bodies = encode_bodies(chatter(messages), other_events(len(slots) - messages), slots)
        load = LoadGenerator(self._sim, rate=float(rate), count=count, bodies=bodies)
        try:
            connections = load.start()
        except LookupError as e:
            raise _Refusal(409, str(e)) from None
        self._sim.load = load
        return {"connections": connections}

    def _require(self, request: Request, method: bytes) -> None:
        if request.method != method:
            raise _Refusal(405, f"use {method.decode()}")

    def _actions(self) -> dict[str, Callable[[SimulatedBot, dict[str, Any]], Any]]:
        return {
            "messages": self._message,
            "dispatch": self._dispatch,
            "close": self._close,
            "drop": self._each(lambda c, body: c.drop()),
            "reconnect": self._each(lambda c, body: c.send_reconnect()),
            "request-heartbeat": self._each(lambda c, body: c.request_heartbeat()),
            "invalid-session": self._each(
                lambda c, body: c.send_invalid_session(bool(body.get("resumable", False)))
            ),
            "ack-heartbeats": self._each(
                lambda c, body: setattr(c, "ack_heartbeats", bool(body.get("ack", True)))
            ),
        }

    def _add_bot(self, request: Request) -> bytes:
        try:
            body = read_object(request)
        except BodyError as e:
            raise _Refusal(400, str(e)) from None
        token = body.get("token")
        if not isinstance(token, str) or not token:
            raise _Refusal(400, "token must be a non-empty string")
        if self._sim.bot_for_token(token) is not None:
            raise _Refusal(409, "a bot with that token already exists")
        user_id = body.get("user_id", str(1111 + len(self._sim.bots)))
        if not isinstance(user_id, str) or not user_id.isdigit():
            raise _Refusal(400, "user_id must be a string of digits")
        shards = _optional_int(body, "shards")
        if shards is not None and shards < 1:
            raise _Refusal(400, "shards must be at least 1, or null to accept any count")
        counts: dict[str, int] = {"max_concurrency": 1, "remaining": 1000, "privileged_intents": 0}
        for key, least in (("max_concurrency", 1), ("remaining", 0), ("privileged_intents", 0)):
            value = _optional_int(body, key)
            if value is not None:
                if value < least:
                    raise _Refusal(400, f"{key} must be at least {least}")
                counts[key] = value
        bot = self._sim.add_bot(
            token,
            user_id,
            shards=shards if "shards" in body else 1,
            max_concurrency=counts["max_concurrency"],
            remaining=counts["remaining"],
            privileged_intents=counts["privileged_intents"],
        )
        return respond(request, 200, bot.describe())

    def _message(self, bot: SimulatedBot, body: dict[str, Any]) -> Any:
        content = body.get("content")
        if not isinstance(content, str):
            raise _Refusal(400, "content must be a string")
        guild_id = body.get("guild_id", "2222")
        if guild_id is not None and not (isinstance(guild_id, str) and guild_id.isdigit()):
            raise _Refusal(400, "guild_id must be a string of digits or null (a DM)")
        channel_id = body.get("channel_id", "3333")
        if not (isinstance(channel_id, str) and channel_id.isdigit()):
            raise _Refusal(400, "channel_id must be a string of digits")
        mentions = body.get("mentions", [])
        if not isinstance(mentions, list):
            raise _Refusal(400, "mentions must be a list of user ids")
        try:
            frame = bot.message(
                content,
                author_bot=bool(body.get("author_bot", False)),
                guild_id=guild_id,
                channel_id=channel_id,
                mentions=mentions,
                shard_id=_optional_int(body, "shard"),
            )
        except LookupError as e:
            raise _Refusal(409, str(e)) from None
        return orjson.loads(frame)

    def _dispatch(self, bot: SimulatedBot, body: dict[str, Any]) -> Any:
        t = body.get("t")
        if not isinstance(t, str) or not t:
            raise _Refusal(400, 't must be an event name such as "MESSAGE_CREATE"')
        shard = _optional_int(body, "shard") or 0
        try:
            frame = bot.dispatch(t, body.get("d"), shard)
        except LookupError as e:
            raise _Refusal(409, str(e)) from None
        return orjson.loads(frame)

    def _close(self, bot: SimulatedBot, body: dict[str, Any]) -> Any:
        code = body.get("code", 4000)
        if type(code) is not int or not (code == 1000 or 3000 <= code <= 4999):
            raise _Refusal(400, "code must be 1000 or from 3000 to 4999, e.g. 4000")
        reason = body.get("reason", "")
        if not isinstance(reason, str):
            raise _Refusal(400, "reason must be a string")
        return self._each(lambda c, _: c.close(code, reason))(bot, body)

    def _each(
        self, act: Callable[[SimulatedConnection, dict[str, Any]], object]
    ) -> Callable[[SimulatedBot, dict[str, Any]], Any]:
        def on_connections(bot: SimulatedBot, body: dict[str, Any]) -> Any:
            shard = _optional_int(body, "shard")
            targets = bot.connections if shard is None else bot.connections_for(shard)
            if not targets:
                raise _Refusal(409, "the bot has no live gateway connection to act on")
            for connection in targets:
                act(connection, body)
            return {"connections": [c.number for c in targets]}

        return on_connections
