"""
The few Discord REST calls the gateway side needs, over treq.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from twisted.internet.defer import Deferred
from treq.client import HTTPClient

from dccrelay import __version__

# Discord asks for "DiscordBot ($url, $versionNumber)".
USER_AGENT = f"DiscordBot (dccrelay, {__version__})"


class DiscordHTTPError(Exception):
    """
    Discord answered a REST call with an error.

    :ivar status: the HTTP status code.
    :ivar message: Discord's message, safe to show (never holds the token).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Discord answered HTTP {status}: {message}")
        self.status = status
        self.message = message

    @property
    def token_rejected(self) -> bool:
        """
        Whether retrying with the same token is pointless.
        """
        return self.status == 401


@dataclass(frozen=True, slots=True)
class GatewayInfo:
    """
    The answer to ``GET /gateway/bot``.
    """

    url: str
    shards: int
    max_concurrency: int
    remaining: int
    reset_after: float  # seconds


class DiscordREST:
    """
    Discord's REST API for one relay node.

    :param client: a treq ``HTTPClient`` (a ``StubTreq`` in tests).
    :param api_base: e.g. ``https://discord.com/api/v10``.
    """

    def __init__(self, client: HTTPClient, api_base: str) -> None:
        self._client = client
        self._api_base = api_base.rstrip("/")

    def _headers(self, token: str) -> dict[bytes | str, list[bytes | str]]:
        return {
            b"Authorization": [b"Bot " + token.encode("ascii")],
            b"User-Agent": [USER_AGENT.encode("ascii")],
        }

    async def _get_json(self, path: str, token: str) -> Any:
        response = await self._client.get(
            self._api_base + path, headers=self._headers(token)
        )
        body = await response.content()
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        if response.code != 200:
            message = (
                parsed.get("message") if isinstance(parsed, dict) else None
            ) or "no message"
            raise DiscordHTTPError(response.code, str(message)[:200])
        if parsed is None:
            raise DiscordHTTPError(response.code, "the body was not JSON")
        return parsed

    def get_gateway_bot(self, token: str) -> Deferred[GatewayInfo]:
        """
        Ask where to connect, how many shards to use and how many sessions
        the bot may still start.
        """
        return Deferred.fromCoroutine(self._gateway_bot(token))

    async def _gateway_bot(self, token: str) -> GatewayInfo:
        answer = await self._get_json("/gateway/bot", token)
        try:
            limit = answer["session_start_limit"]
            return GatewayInfo(
                url=str(answer["url"]),
                shards=int(answer["shards"]),
                max_concurrency=max(1, int(limit["max_concurrency"])),
                remaining=int(limit["remaining"]),
                reset_after=float(limit["reset_after"]) / 1000.0,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise DiscordHTTPError(200, f"unexpected /gateway/bot answer ({e!r})")

    def trigger_typing(self, token: str, channel_id: str) -> Deferred[None]:
        """
        ``POST /channels/{channel_id}/typing``: show the bot as typing in
        that channel (for about 10 s, or until it sends a message).

        :raise DiscordHTTPError: (in the Deferred) unless Discord answers 2xx.
        """
        return Deferred.fromCoroutine(self._typing(token, channel_id))

    async def _typing(self, token: str, channel_id: str) -> None:
        if not channel_id.isdigit():
            # a snowflake; anything else must not reach the URL
            raise ValueError("a channel id is a number")
        response = await self._client.post(
            f"{self._api_base}/channels/{channel_id}/typing", headers=self._headers(token)
        )
        body = await response.content()
        if not 200 <= response.code < 300:
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                parsed = None
            message = (
                parsed.get("message") if isinstance(parsed, dict) else None
            ) or "no message"
            raise DiscordHTTPError(response.code, str(message)[:200])
