"""
The client distribution's delivery side without a framework: the ASGI app
(webhook batches and websocket v2), the acknowledgement rule of
:mod:`dccrelay_client.settle`, and the registration client's errors.  Each
test runs its own asyncio loop (``asyncio.run``); no Twisted reactor work
happens meanwhile.
"""

from __future__ import annotations

import asyncio
import json
from base64 import b64encode
from datetime import datetime, timezone
from typing import Any

from standardwebhooks.webhooks import Webhook
from twisted.trial.unittest import SynchronousTestCase

from dccrelay_client.asgi_app import DeliveryASGI
from dccrelay_client.registration import RelayAPI

SECRET = "admin:YXNnaS10ZXN0cw"


class FakeBot:
    """
    A framework that starts, per dispatch, a handler that waits for
    ``release`` (or, with ``"wait"`` in the payload, registers a waiter as
    ``wait_for`` does and waits for the next dispatch).
    """

    intents = 0

    def __init__(self) -> None:
        self.fed: list[dict[str, Any]] = []
        self.handled: list[int] = []
        self.release = asyncio.Event()
        self._waiters: set[int] = set()
        self._next: asyncio.Future[None] | None = None
        self.started = False

    async def start(self, token: str, api_base: str, relay: Any) -> None:
        self.started = True

    async def announce(self) -> None:
        pass

    async def prepare(self, payload: dict[str, Any]) -> None:
        pass

    def feed(self, payload: dict[str, Any]) -> None:
        self.fed.append(payload)
        if self._next is not None and not self._next.done():
            self._next.set_result(None)
        asyncio.get_running_loop().create_task(self._handle(payload))

    async def _handle(self, payload: dict[str, Any]) -> None:
        if payload.get("wait"):
            self._next = asyncio.get_running_loop().create_future()
            self._waiters.add(id(self._next))
            await self._next
            self._waiters.discard(id(self._next))
        else:
            await self.release.wait()
        self.handled.append(payload["s"])

    def waiters(self) -> frozenset[int]:
        return frozenset(self._waiters)

    async def close(self) -> None:
        pass


def signed(batch: dict[str, Any], secret: str = SECRET) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body of a webhook delivery as the relay signs it."""
    body = json.dumps(batch).encode()
    now = datetime.now(timezone.utc)
    signature = Webhook(secret.encode()).sign("dcc-1-1", now, body.decode())
    headers = [
        (b"webhook-id", b"dcc-1-1"),
        (b"webhook-timestamp", str(int(now.timestamp())).encode()),
        (b"webhook-signature", signature.encode()),
    ]
    return headers, body


def batch_of(*entries: tuple[int, dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "dispatches",
        "dispatches": [payload for _, payload in entries],
        "ids": [entry_id for entry_id, _ in entries],
    }


def dispatch(seq: int, **extra: Any) -> dict[str, Any]:
    return {"op": 0, "t": "MESSAGE_CREATE", "s": seq, "d": {"content": str(seq)}, **extra}


async def post(app: DeliveryASGI, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, bytes]:
    """One HTTP POST through the ASGI app."""
    sent: list[dict[str, Any]] = []
    received = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return received.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    await app({"type": "http", "method": "POST", "path": "/", "headers": headers}, receive, send)
    return sent[0]["status"], sent[1]["body"]


class WebhookTests(SynchronousTestCase):
    """Webhook batches through the ASGI app."""

    def test_answered_after_handlers(self) -> None:
        """
        A signed batch is fed in order and answered 204 only once the
        handlers it started are done.
        """

        async def run() -> None:
            bot = FakeBot()
            app = DeliveryASGI(bot, secret=SECRET, token="t")
            answer = asyncio.ensure_future(post(app, *signed(batch_of((1, dispatch(1)), (2, dispatch(2))))))
            while len(bot.fed) < 2:
                await asyncio.sleep(0.01)
            self.assertFalse(answer.done())
            self.assertEqual(bot.handled, [])
            bot.release.set()
            self.assertEqual(await answer, (204, b""))
            self.assertEqual(sorted(bot.handled), [1, 2])
            self.assertTrue(bot.started)
            self.assertEqual([p["s"] for p in bot.fed], [1, 2])
            await app.stopped()

        asyncio.run(run())

    def test_waiting_handler_acknowledged(self) -> None:
        """
        A handler that waits for a later event (a new waiter appears, as
        with ``wait_for``) does not hold its batch: the batch is answered,
        and the later batch that brings the event lets it finish.
        """

        async def run() -> None:
            bot = FakeBot()
            bot.release.set()
            app = DeliveryASGI(bot, secret=SECRET, token="t")
            self.assertEqual((await post(app, *signed(batch_of((1, dispatch(1, wait=True))))))[0], 204)
            self.assertEqual(bot.handled, [])
            self.assertEqual((await post(app, *signed(batch_of((2, dispatch(2))))))[0], 204)
            while len(bot.handled) < 2:
                await asyncio.sleep(0.01)
            self.assertEqual(sorted(bot.handled), [1, 2])
            await app.stopped()

        asyncio.run(run())

    def test_redelivery_not_fed_twice(self) -> None:
        """A batch retried by the relay (same ids) is acknowledged without feeding it again."""

        async def run() -> None:
            bot = FakeBot()
            bot.release.set()
            app = DeliveryASGI(bot, secret=SECRET, token="t")
            for _ in range(2):
                self.assertEqual((await post(app, *signed(batch_of((7, dispatch(7))))))[0], 204)
            self.assertEqual(len(bot.fed), 1)
            await app.stopped()

        asyncio.run(run())

    def test_bad_signature(self) -> None:
        """A batch signed with another secret is refused with 400 and not fed."""

        async def run() -> None:
            bot = FakeBot()
            app = DeliveryASGI(bot, secret=SECRET, token="t")
            status, body = await post(app, *signed(batch_of((1, dispatch(1))), "admin:another-secret"))
            self.assertEqual(status, 400)
            self.assertIn(b"webhook-signature", body)
            self.assertEqual(bot.fed, [])

        asyncio.run(run())


class WebsocketTests(SynchronousTestCase):
    """Websocket v2 through the ASGI app."""

    def run_connection(
        self, bot: FakeBot, authorization: str, frames: list[str], until: Any
    ) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def run() -> None:
            app = DeliveryASGI(bot, secret=SECRET, token="t")
            incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
            incoming.put_nowait({"type": "websocket.connect"})
            for frame in frames:
                incoming.put_nowait({"type": "websocket.receive", "text": frame})

            async def send(message: Any) -> None:
                sent.append(message)
                if until(sent):
                    incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})

            scope = {
                "type": "websocket",
                "path": "/",
                "subprotocols": ["dcc.v2"],
                "headers": [(b"authorization", authorization.encode())],
            }
            await asyncio.wait_for(app(scope, incoming.get, send), 10)
            await app.stopped()

        asyncio.run(run())
        return sent

    def test_acks_in_order(self) -> None:
        """
        The relay's Authorization is accepted with the dcc.v2 subprotocol;
        dispatches are fed in order and acknowledged once handled.
        """
        bot = FakeBot()
        bot.release.set()
        auth = "Basic " + b64encode(SECRET.encode()).decode()
        frames = [
            '{"op":"dispatch","id":3,"d":%s}' % json.dumps(dispatch(1)),
            '{"op":"dispatch","id":5,"d":%s}' % json.dumps(dispatch(2)),
        ]
        sent = self.run_connection(
            bot, auth, frames, lambda sent: {"type": "websocket.send", "text": '{"op":"ack","id":5}'} in sent
        )
        self.assertEqual(sent[0], {"type": "websocket.accept", "subprotocol": "dcc.v2"})
        self.assertEqual([p["s"] for p in bot.fed], [1, 2])
        self.assertEqual(sorted(bot.handled), [1, 2])

    def test_wrong_authorization(self) -> None:
        """A connection without the relay's Authorization is closed before it is accepted."""
        bot = FakeBot()
        sent = self.run_connection(bot, "Basic d3Jvbmc=", [], lambda sent: True)
        self.assertEqual(sent, [{"type": "websocket.close", "code": 1008}])
        self.assertEqual(bot.fed, [])


class RelayAPITests(SynchronousTestCase):
    """The registration client against a stand-in relay on loopback."""

    def test_command_retried_while_not_ready(self) -> None:
        """
        A command answered 503 with ``retryAfter`` (the gateway session is
        not ready yet) is sent again, and its later 202 is the result; the
        relay saw the clientSecret as Basic credentials.
        """
        from aiohttp import ClientSession, web

        seen: list[str] = []

        async def commands(request: web.Request) -> web.Response:
            seen.append(request.headers["Authorization"])
            if len(seen) == 1:
                return web.json_response({"error": "not ready", "retryAfter": 0.05}, status=503)
            return web.json_response({"op": 3, "shards": [0]}, status=202)

        async def run() -> None:
            app = web.Application()
            app.router.add_post("/relays/bot/commands", commands)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            try:
                async with ClientSession() as session:
                    relay = RelayAPI(session, f"http://127.0.0.1:{port}", "bot", SECRET)
                    result = await relay.send_command(3, {"since": None, "activities": [], "status": "online", "afk": False})
            finally:
                await runner.cleanup()
            self.assertEqual(result, {"op": 3, "shards": [0]})

        asyncio.run(run())
        self.assertEqual(seen, ["Basic " + b64encode(SECRET.encode()).decode()] * 2)
