"""
The same adapter as ``dccrelay-bot``, as an ASGI application, for
serverless hosts and any ASGI server (uvicorn, hypercorn, a platform's
Python runtime)::

    # app.py
    from dccrelay_client import asgi
    from mybot import bot

    app = asgi(bot, secret=os.environ["DCC_SECRET"])

It logs the bot in (``DISCORD_TOKEN``) at the ASGI lifespan's startup, or
at the first request when the server has no lifespan, then serves what
``dccrelay-bot`` serves at ``/``: webhook batches by POST, and websocket v2
when the server speaks ASGI websockets.  Register the bot with the relay
with ``dccrelay-bot --register`` once, or with
:class:`dccrelay_client.registration.RelayAPI`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp

from dccrelay_client.dispatcher import CAP, Dispatcher, warm
from dccrelay_client.frames import SUBPROTOCOL_V2
from dccrelay_client.frameworks import FrameworkBot, adapt
from dccrelay_client.receiver import authorized, handle_batch, serve_v2
from dccrelay_client.registration import RelayAPI
from dccrelay_client.settle import track_tasks
from dccrelay_client.webhook import WebhookVerificationError, verify_webhook

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DISCORD_API = "https://discord.com/api/v10"


class DeliveryASGI:
    """
    An ASGI application feeding a framework's bot.

    :param relay_url: with ``alias``, where presence updates and member
        requests go (``POST /relays/{alias}/commands``).
    """

    def __init__(
        self,
        bot: FrameworkBot,
        *,
        secret: str,
        token: str,
        discord_api: str = DISCORD_API,
        relay_url: str | None = None,
        alias: str | None = None,
        cap: float = CAP,
    ) -> None:
        self.bot = bot
        self._secret = secret
        self._token = token
        self._discord_api = discord_api
        self._relay_url = relay_url
        self._alias = alias
        self._dispatcher = Dispatcher(bot, cap)
        self._starting: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def started(self) -> None:
        """Log the bot in, once."""
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        track_tasks(asyncio.get_running_loop())
        self._session = aiohttp.ClientSession()
        relay = None
        if self._relay_url and self._alias:
            relay = RelayAPI(self._session, self._relay_url, self._alias, self._secret)
        await self.bot.start(self._token, self._discord_api, relay)
        await warm(self.bot, relay)
        self._dispatcher.ready()

    async def stopped(self) -> None:
        """Log out."""
        if self._starting is not None:
            await self.bot.close()
        if self._session is not None:
            await self._session.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.started()
                except Exception as e:
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stopped()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await _respond(send, 405, b"POST signed webhook batches here")
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            batch = verify_webhook(scope["headers"], body, self._secret)
        except WebhookVerificationError as e:
            await _respond(send, 400, str(e).encode())
            return
        await self.started()
        await handle_batch(self._dispatcher, batch)
        await _respond(send, 204, b"")

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        await receive()  # websocket.connect
        presented = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        if not authorized(presented, self._secret) or SUBPROTOCOL_V2 not in scope.get(
            "subprotocols", []
        ):
            await send({"type": "websocket.close", "code": 1008})
            return
        await self.started()
        await send({"type": "websocket.accept", "subprotocol": SUBPROTOCOL_V2})

        async def frames() -> AsyncIterator[str]:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") is not None:
                    yield message["text"]

        async def send_text(frame: str) -> None:
            await send({"type": "websocket.send", "text": frame})

        await serve_v2(frames(), send_text, self._dispatcher)


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def asgi(
    bot: object,
    *,
    secret: str,
    token: str | None = None,
    discord_api: str = DISCORD_API,
    relay_url: str | None = None,
    alias: str | None = None,
) -> DeliveryASGI:
    """
    An ASGI application running ``bot`` (a discord.py Client/Bot or a
    hikari GatewayBot) behind the relay.

    :param token: default: the ``DISCORD_TOKEN`` environment variable.
    """
    return DeliveryASGI(
        adapt(bot),
        secret=secret,
        token=token if token is not None else os.environ["DISCORD_TOKEN"],
        discord_api=discord_api,
        relay_url=relay_url,
        alias=alias,
    )
