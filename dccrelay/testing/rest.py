"""
The slice of Discord's REST API (v10) a relay uses, under ``/api/v10``:

- ``GET /gateway`` -> ``{"url": ...}``;
- ``GET /gateway/bot`` (``Authorization: Bot <token>``) -> url, shards and
  ``session_start_limit``;
- ``POST /channels/{id}/typing`` -> 204;
- ``POST /channels/{id}/messages`` -> 200 and a message object;
- ``GET /users/@me``, ``GET /oauth2/applications/@me``, ``GET
  /guilds/{id}``, ``GET /guilds/{id}/channels`` and ``GET
  /guilds/{id}/members/{user_id}``: what a bot framework reads when it logs
  in and fills its cache without a gateway (:mod:`dccrelay.testing.guilds`);
- ``POST /interactions/{id}/{token}/callback`` (with ``?with_response=1``,
  the callback's result as a body),
  ``PATCH /webhooks/{application_id}/{token}/messages/@original`` and
  ``POST /webhooks/{application_id}/{token}``: answering interactions, see
  :mod:`dccrelay.testing.interactions`.

A missing or unknown bot token is 401 ``{"message": "401: Unauthorized",
"code": 0}``; an unknown route 404, a known route with another method 405.
Answers carry Discord's rate limit headers, and requests past a limit get
429 (see :mod:`dccrelay.testing.ratelimits`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from twisted.web.resource import Resource
from twisted.web.server import Request

from dccrelay.testing import guilds, objects
from dccrelay.testing._http import BodyError, no_content, read_object, respond, route

if TYPE_CHECKING:
    from dccrelay.testing.simulator import DiscordSimulator, SimulatedBot

_UNAUTHORIZED = {"message": "401: Unauthorized", "code": 0}
_NOT_FOUND = {"message": "404: Not Found", "code": 0}
_METHOD_NOT_ALLOWED = {"message": "405: Method Not Allowed", "code": 0}
_INVALID_JSON = {"message": "The request body contains invalid JSON.", "code": 50109}

#: Longest message content Discord accepts.
MAX_CONTENT = 2000

_Handler = Callable[[Request, list[str]], bytes]


def _form_error(field: str, code: str, message: str) -> dict[str, Any]:
    return {
        "message": "Invalid Form Body",
        "code": 50035,
        "errors": {field: {"_errors": [{"code": code, "message": message}]}},
    }


class DiscordAPI(Resource):
    """Mounted at ``/api``; serves ``v10`` only."""

    isLeaf = True

    def __init__(self, simulator: DiscordSimulator) -> None:
        super().__init__()
        self._sim = simulator

    def render(self, request: Request) -> bytes:
        """Route by path and method."""
        segments = route(request)
        if not segments or segments[0] != "v10":
            return respond(request, 404, _NOT_FOUND)
        handlers = self._handlers(segments[1:])
        if handlers is None:
            return respond(request, 404, _NOT_FOUND)
        handler = handlers.get(request.method)
        if handler is None:
            return respond(request, 405, _METHOD_NOT_ALLOWED)
        limits = self._sim.rate_limits
        limited = self._limit(request, segments[1:])
        if limited is not None:
            verdict = limits.check(*limited[:3], exempt=limited[3])
            for name, value in verdict.headers.items():
                request.setHeader(name, value)
            if verdict.retry_after is not None:
                self._sim.record("rate_limited", "global" if verdict.is_global else limited[1])
                limits.answered(429)
                return respond(request, 429, verdict.body())
        answer = handler(request, segments[1:])
        limits.answered(request.code)
        return answer

    def _limit(self, request: Request, path: list[str]) -> tuple[str, str, str, bool] | None:
        """
        Who, which route and which top-level resource a request counts
        against, and whether it is exempt from the global limit; None for
        an unlimited or unauthenticated request.
        """
        if path[0] in ("interactions", "webhooks"):
            # no Authorization: limited per interaction, not by the global limit
            route = "interaction_callback" if path[0] == "interactions" else "webhook"
            return "interaction", route, "/".join(path[1:3]), True
        bot = self._bot(request)
        if bot is None:
            return None
        if path == ["gateway", "bot"]:
            return bot.token, "gateway_bot", "", False
        if len(path) == 3 and path[0] == "channels":
            return bot.token, path[2], path[1], False
        return None

    def _handlers(self, path: list[str]) -> dict[bytes, _Handler] | None:
        if path in (["users", "@me"], ["oauth2", "applications", "@me"]):
            return {b"GET": self._me}
        if len(path) >= 2 and path[0] == "guilds" and path[1].isdigit():
            if len(path) == 2 or path[2:] == ["channels"] or (
                len(path) == 4 and path[2] == "members" and path[3].isdigit()
            ):
                return {b"GET": self._guild}
        if path == ["gateway"]:
            return {b"GET": self._gateway}
        if path == ["gateway", "bot"]:
            return {b"GET": self._gateway_bot}
        if len(path) == 3 and path[0] == "channels" and path[2] == "typing":
            return {b"POST": self._typing}
        if len(path) == 3 and path[0] == "channels" and path[2] == "messages":
            return {b"POST": self._create_message}
        if len(path) == 4 and path[0] == "interactions" and path[3] == "callback":
            return {b"POST": self._interaction_call(self._sim.interactions.callback)}
        if len(path) == 3 and path[0] == "webhooks":
            return {b"POST": self._interaction_call(self._sim.interactions.followup)}
        if len(path) == 5 and path[0] == "webhooks" and path[3:] == ["messages", "@original"]:
            return {b"PATCH": self._interaction_call(self._sim.interactions.edit_original)}
        return None

    def _bot(self, request: Request) -> SimulatedBot | None:
        header = request.getHeader(b"authorization")
        if header is None or not header.startswith(b"Bot "):
            return None
        return self._sim.bot_for_token(header[len(b"Bot ") :].decode("utf-8", "replace"))

    def _me(self, request: Request, path: list[str]) -> bytes:
        bot = self._bot(request)
        if bot is None:
            return respond(request, 401, _UNAUTHORIZED)
        user = bot.user_object()
        return respond(request, 200, user if path[0] == "users" else guilds.application(user))

    def _guild(self, request: Request, path: list[str]) -> bytes:
        bot = self._bot(request)
        if bot is None:
            return respond(request, 401, _UNAUTHORIZED)
        guild_id = path[1]
        self._sim.record("guild_fetch", "/".join(path))
        if len(path) == 2:
            return respond(request, 200, guilds.guild(guild_id))
        if path[2] == "channels":
            return respond(request, 200, guilds.channels(guild_id))
        user_id = path[3]
        known = {m["user"]["id"]: m["user"] for m in bot.guild_members.get(guild_id, [])}
        known[bot.user_id] = objects.user(bot.user_id, bot.username, bot=True)
        user = known.get(user_id, objects.user(user_id, "someone"))
        return respond(request, 200, guilds.member(user, self._sim.clock.seconds()))

    def _gateway(self, request: Request, path: list[str]) -> bytes:
        return respond(request, 200, {"url": self._sim.gateway_url})

    def _gateway_bot(self, request: Request, path: list[str]) -> bytes:
        bot = self._bot(request)
        if bot is None:
            return respond(request, 401, _UNAUTHORIZED)
        self._sim.record("gateway_bot", bot.user_id)
        return respond(
            request,
            200,
            {
                "url": self._sim.gateway_url,
                "shards": bot.shards or 1,
                "session_start_limit": bot.session_start_limit(),
            },
        )

    def _typing(self, request: Request, path: list[str]) -> bytes:
        bot = self._bot(request)
        if bot is None:
            return respond(request, 401, _UNAUTHORIZED)
        channel_id = path[1]
        if not channel_id.isdigit():
            return self._not_snowflake(request, channel_id)
        self._sim.typing.append((bot.token, channel_id))
        self._sim.record("typing", channel_id)
        return no_content(request)

    def _create_message(self, request: Request, path: list[str]) -> bytes:
        bot = self._bot(request)
        if bot is None:
            return respond(request, 401, _UNAUTHORIZED)
        channel_id = path[1]
        if not channel_id.isdigit():
            return self._not_snowflake(request, channel_id)
        try:
            body = read_object(request)
        except BodyError:
            return respond(
                request,
                400,
                {"message": "The request body contains invalid JSON.", "code": 50109},
            )
        content = body.get("content", "")
        if not isinstance(content, str):
            return respond(
                request, 400, _form_error("content", "STRING_TYPE_CONVERT", "Must be a string.")
            )
        if len(content) > MAX_CONTENT:
            return respond(
                request,
                400,
                _form_error("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length."),
            )
        if not content and not any(
            body.get(key) for key in ("embeds", "sticker_ids", "components", "poll")
        ):
            return respond(request, 400, {"message": "Cannot send an empty message", "code": 50006})
        self._sim.messages.append((bot.token, channel_id, body))
        self._sim.record("message", channel_id)
        now = self._sim.clock.seconds()
        message = objects.message(
            message_id=self._sim.snowflake(),
            channel_id=channel_id,
            guild_id=None,
            author=objects.user(bot.user_id, bot.username, bot=True),
            content=content,
            now=now,
        )
        if isinstance(body.get("embeds"), list):
            message["embeds"] = body["embeds"]
        return respond(request, 200, message)

    def _user_agent(self, request: Request) -> str:
        return (request.getHeader(b"user-agent") or b"").decode("latin-1")

    def _json_body(self, request: Request) -> dict[str, Any] | None:
        try:
            return read_object(request)
        except BodyError:
            return None

    def _answer(self, request: Request, status: int, body: dict[str, Any] | None) -> bytes:
        if body is None:
            return no_content(request)
        return respond(request, status, body)

    def _interaction_call(
        self,
        call: Callable[[str, str, dict[str, Any], str], tuple[int, dict[str, Any] | None]],
    ) -> _Handler:
        """
        A handler for one of the interaction endpoints: ``call`` gets the
        path's two ids, the JSON body and the User-Agent.
        """

        def handle(request: Request, path: list[str]) -> bytes:
            body = self._json_body(request)
            if body is None:
                return respond(request, 400, _INVALID_JSON)
            status, answer = call(path[1], path[2], body, self._user_agent(request))
            if status == 204 and request.args.get(b"with_response") in ([b"1"], [b"true"]):
                status, answer = 200, self._sim.interactions.callback_result(path[1])
            return self._answer(request, status, answer)

        return handle

    def _not_snowflake(self, request: Request, value: str) -> bytes:
        return respond(
            request,
            400,
            _form_error("channel_id", "NUMBER_TYPE_COERCE", f'Value "{value}" is not snowflake.'),
        )
