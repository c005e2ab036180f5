"""
A bot's end of the relay's deliveries, on aiohttp, at one path (``/``):

- ``POST``: a signed webhook batch (``{"type":"dispatches","dispatches":
  [...],"ids":[...]}``); answered 204 once its dispatches are handled
  (:mod:`dccrelay_client.settle`), 400 when the signature does not verify;
- ``GET`` with a websocket upgrade offering ``dcc.v2`` and
  ``Authorization: Basic base64(clientSecret)``: v2 frames, each dispatch
  acknowledged (cumulatively, in order) once handled; a wrong or missing
  Authorization is refused with 401.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from dccrelay_client.dispatcher import Dispatcher
from dccrelay_client.frames import SUBPROTOCOL_V2, ack_frame, parse_v2_frame
from dccrelay_client.registration import basic_authorization
from dccrelay_client.settle import Handling
from dccrelay_client.webhook import WebhookVerificationError, verify_webhook


async def handle_batch(dispatcher: Dispatcher, batch: Any) -> None:
    """Feed a verified webhook batch and wait until it is handled."""
    dispatches = batch.get("dispatches") if isinstance(batch, dict) else None
    ids = batch.get("ids") if isinstance(batch, dict) else None
    if not isinstance(dispatches, list):
        return
    if not isinstance(ids, list) or len(ids) != len(dispatches):
        ids = [None] * len(dispatches)
    begun: list[Handling | None] = []
    for entry_id, payload in zip(ids, dispatches):
        if isinstance(payload, dict):
            begun.append(await dispatcher.begin(entry_id, payload))
    await asyncio.gather(*(dispatcher.finish(handling) for handling in begun))


def authorized(presented: str, secret: str) -> bool:
    """Whether ``presented`` is the relay's Authorization for ``secret``."""
    return hmac.compare_digest(presented.encode(), basic_authorization(secret).encode())


def delivery_app(dispatcher: Dispatcher, secret: str) -> web.Application:
    """The aiohttp application that serves a bot's ``dst``."""

    async def webhook(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            batch = verify_webhook(request.headers, body, secret)
        except WebhookVerificationError as e:
            return web.Response(status=400, text=str(e))
        await handle_batch(dispatcher, batch)
        return web.Response(status=204)

    async def websocket(request: web.Request) -> web.StreamResponse:
        if not authorized(request.headers.get("Authorization", ""), secret):
            return web.Response(status=401, text="wrong or missing Authorization")
        ws = web.WebSocketResponse(protocols=(SUBPROTOCOL_V2,), heartbeat=None)
        await ws.prepare(request)
        if ws.ws_protocol != SUBPROTOCOL_V2:
            await ws.close(code=4000, message=b"only websocket v2 (dcc.v2) is served here")
            return ws
        await _serve_v2(ws, dispatcher)
        return ws

    app = web.Application()
    app.router.add_post("/", webhook)
    app.router.add_get("/", websocket)
    return app


async def _serve_v2(ws: web.WebSocketResponse, dispatcher: Dispatcher) -> None:
    async def frames() -> AsyncIterator[str]:
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                yield message.data

    async def send(frame: str) -> None:
        if not ws.closed:
            await ws.send_str(frame)

    await serve_v2(frames(), send, dispatcher)


async def serve_v2(
    frames: AsyncIterator[str], send: Callable[[str], Awaitable[None]], dispatcher: Dispatcher
) -> None:
    """
    One v2 connection: feed each dispatch frame in order, and acknowledge
    (cumulatively, in order) each once it is handled.
    """
    # dispatches of this connection not acknowledged yet, in order
    unacked: deque[tuple[int, asyncio.Task[None]]] = deque()
    sending: set[asyncio.Task[None]] = set()

    def ack_ready(_: object = None) -> None:
        last = None
        while unacked and unacked[0][1].done():
            last = unacked.popleft()[0]
        if last is not None:
            task = asyncio.ensure_future(send(ack_frame(last)))
            sending.add(task)
            task.add_done_callback(sending.discard)

    async for text in frames:
        frame = parse_v2_frame(text.encode("utf-8"))
        if frame is None:
            continue  # a command result: commands go over HTTP here
        entry_id, raw = frame
        handling = await dispatcher.begin(entry_id, json.loads(raw))
        task = asyncio.ensure_future(dispatcher.finish(handling))
        unacked.append((entry_id, task))
        task.add_done_callback(ack_ready)
