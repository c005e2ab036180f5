"""
The one Discord REST call the cookout bot makes: ``POST
/channels/{channel.id}/messages``, over treq.

The relay only carries dispatches *to* the bot; everything the bot does on
Discord it does itself, with its token, straight to Discord's API (or, for
local runs, to the simulator's: the base URL is a parameter).
"""

from __future__ import annotations

import json
from typing import Any

import treq
from hyperlink import DecodedURL
from treq.client import HTTPClient
from twisted.internet.defer import Deferred

#: Discord asks bots to say who they are in this shape.
USER_AGENT = "DiscordBot (dccrelay-cookout-example, 0.1.0)"

#: seconds before a Discord call gives up
TIMEOUT = 15.0


class DiscordError(Exception):
    """
    Discord refused a call.

    :ivar code: the HTTP status.
    :ivar message: Discord's ``message`` (no token in it).
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"Discord answered HTTP {code}: {message}")
        self.code = code
        self.message = message


class DiscordREST:
    """
    Discord's REST API as a bot token sees it.

    :param api_base: e.g. ``https://discord.com/api/v10``.
    :param token: the bot token, sent as ``Authorization: Bot <token>``.
    :param http: the treq client; default: treq's own.
    """

    def __init__(self, api_base: str, token: str, http: HTTPClient | None = None) -> None:
        self._base = DecodedURL.from_text(api_base.rstrip("/"))
        self._token = token
        self._http: Any = http if http is not None else treq

    def create_message(self, channel_id: str, content: str) -> Deferred[dict[str, Any]]:
        """
        Post ``content`` in the channel; fires with Discord's message
        object, or fails with :class:`DiscordError`.
        """
        url = str(self._base.child("channels", channel_id, "messages").to_uri())
        return Deferred.fromCoroutine(self._post(url, {"content": content}))

    async def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._http.post(
            url,
            data=json.dumps(body).encode("utf-8"),
            headers={
                "Authorization": [f"Bot {self._token}"],
                "Content-Type": ["application/json"],
                "User-Agent": [USER_AGENT],
            },
            timeout=TIMEOUT,
        )
        content = await response.content()
        try:
            answer = json.loads(content)
        except ValueError:
            answer = None
        if 200 <= response.code < 300 and isinstance(answer, dict):
            return answer
        message = answer.get("message") if isinstance(answer, dict) else None
        raise DiscordError(response.code, str(message or "no JSON error message"))
