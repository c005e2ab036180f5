"""
The Discord simulator's REST API and its ``/_sim`` control API, over
loopback HTTP.
"""

from __future__ import annotations

from typing import Any

import orjson
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import Agent, HTTPConnectionPool

from dccrelay.gateway.rest import DiscordHTTPError, DiscordREST
from dccrelay.testing.load import layout
from tests.test_simulator import TOKEN, SimulatorTestCase


class RestTestCase(SimulatorTestCase):
    """A simulator and an HTTP client whose connections are closed after."""

    def setUp(self) -> Any:
        pool = HTTPConnectionPool(reactor, persistent=True)
        self.http = HTTPClient(Agent(reactor, pool=pool))
        self.addCleanup(pool.closeCachedConnections)
        return super().setUp()

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = TOKEN,
        body: Any = None,
        raw: bytes | None = None,
        base: str | None = None,
    ) -> tuple[int, Any]:
        """Make a request; the status and the parsed JSON body (or None)."""
        headers: dict[bytes | str, list[bytes | str]] = {}
        if token is not None:
            headers["Authorization"] = [f"Bot {token}"]
        data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
        response = await self.http.request(
            method, (base or self.sim.api_url) + path, headers=headers, data=data
        )
        content = await response.content()
        return response.code, orjson.loads(content) if content else None


class RestTests(RestTestCase):
    """GET /gateway(/bot), typing, messages, errors."""

    async def test_gateway(self) -> None:
        """GET /gateway gives the gateway URL, no token needed."""
        self.assertEqual(
            await self.call("GET", "/gateway", token=None), (200, {"url": self.sim.gateway_url})
        )

    async def test_gateway_bot(self) -> None:
        """GET /gateway/bot gives url, shards and session_start_limit."""
        self.sim.add_bot(token="token-m", user_id="9", shards=4, max_concurrency=2, remaining=7)
        status, body = await self.call("GET", "/gateway/bot", token="token-m")
        self.assertEqual(status, 200)
        self.assertEqual(body["url"], self.sim.gateway_url)
        self.assertEqual(body["shards"], 4)
        limit = body["session_start_limit"]
        self.assertEqual(
            (limit["total"], limit["remaining"], limit["max_concurrency"]), (1000, 7, 2)
        )
        self.assertTrue(0 < limit["reset_after"] <= 86_400_000)

    async def test_gateway_bot_unauthorized(self) -> None:
        """A wrong or missing token gets Discord's 401 body."""
        unauthorized = (401, {"message": "401: Unauthorized", "code": 0})
        self.assertEqual(await self.call("GET", "/gateway/bot", token="wrong"), unauthorized)
        self.assertEqual(await self.call("GET", "/gateway/bot", token=None), unauthorized)

    async def test_typing(self) -> None:
        """POST /channels/{id}/typing is 204 and recorded."""
        self.assertEqual(await self.call("POST", "/channels/3333/typing"), (204, None))
        self.assertEqual(self.sim.typing, [(TOKEN, "3333")])
        self.assertIn(("typing", "3333"), self.sim.events)

    async def test_typing_unauthorized(self) -> None:
        """Typing without a valid token is 401 and not recorded."""
        status, _ = await self.call("POST", "/channels/3333/typing", token="wrong")
        self.assertEqual(status, 401)
        self.assertEqual(self.sim.typing, [])

    async def test_create_message(self) -> None:
        """POST /channels/{id}/messages answers a message object and records it."""
        status, body = await self.call("POST", "/channels/3333/messages", body={"content": "hi"})
        self.assertEqual(status, 200)
        self.assertEqual(body["content"], "hi")
        self.assertEqual(body["channel_id"], "3333")
        self.assertEqual(body["author"]["id"], "1111")
        self.assertTrue(body["author"]["bot"])
        self.assertEqual(self.sim.messages, [(TOKEN, "3333", {"content": "hi"})])

    async def test_empty_message(self) -> None:
        """A message without content is refused like Discord does (50006)."""
        status, body = await self.call("POST", "/channels/3333/messages", body={})
        self.assertEqual((status, body["code"]), (400, 50006))
        self.assertEqual(self.sim.messages, [])

    async def test_long_message(self) -> None:
        """Content over 2000 characters is an invalid form body (50035)."""
        status, body = await self.call(
            "POST", "/channels/3333/messages", body={"content": "x" * 2001}
        )
        self.assertEqual((status, body["code"]), (400, 50035))
        self.assertIn("content", body["errors"])

    async def test_invalid_json_body(self) -> None:
        """A body that is not JSON is refused (50109)."""
        status, body = await self.call("POST", "/channels/3333/messages", raw=b"{")
        self.assertEqual((status, body["code"]), (400, 50109))

    async def test_channel_not_snowflake(self) -> None:
        """A channel id that is not a snowflake is a 400."""
        status, body = await self.call("POST", "/channels/general/typing")
        self.assertEqual((status, body["code"]), (400, 50035))

    async def test_unknown_route(self) -> None:
        """Unknown routes, versions and the root are JSON 404s."""
        not_found = (404, {"message": "404: Not Found", "code": 0})
        self.assertEqual(await self.call("GET", "/users/@me/guilds"), not_found)
        self.assertEqual(
            await self.call("GET", "/api/v9/gateway", base=self.sim.control_url[: -len("/_sim")]),
            not_found,
        )
        self.assertEqual(
            await self.call("GET", "/", base=self.sim.control_url[: -len("/_sim")]), not_found
        )

    async def test_wrong_method(self) -> None:
        """A known route with another method is a JSON 405."""
        self.assertEqual(
            await self.call("POST", "/gateway"),
            (405, {"message": "405: Method Not Allowed", "code": 0}),
        )

    async def test_control_api_off_by_default(self) -> None:
        """Without control_api, /_sim is not served."""
        status, _ = await self.call("GET", "/state", base=self.sim.control_url)
        self.assertEqual(status, 404)


class RateLimitTests(RestTestCase):
    """Rate limit headers, 429s and invalid requests, as Discord answers them."""

    async def raw_call(self, method: str, path: str, token: str = TOKEN) -> Any:
        response = await self.http.request(
            method, self.sim.api_url + path, headers={"Authorization": [f"Bot {token}"]}
        )
        content = await response.content()
        return response, orjson.loads(content) if content else None

    async def test_headers(self) -> None:
        """A limited route says its bucket, limit, what remains and when it resets."""
        response, _ = await self.raw_call("POST", "/channels/3333/typing")
        headers = response.headers
        self.assertEqual(headers.getRawHeaders(b"x-ratelimit-limit"), [b"5"])
        self.assertEqual(headers.getRawHeaders(b"x-ratelimit-remaining"), [b"4"])
        self.assertTrue(0 < float(headers.getRawHeaders(b"x-ratelimit-reset-after")[0]) <= 5)
        bucket = headers.getRawHeaders(b"x-ratelimit-bucket")
        response, _ = await self.raw_call("POST", "/channels/4444/typing")
        self.assertEqual(response.headers.getRawHeaders(b"x-ratelimit-bucket"), bucket)
        self.assertEqual(response.headers.getRawHeaders(b"x-ratelimit-remaining"), [b"4"])

    async def test_bucket_exhausted(self) -> None:
        """Past the bucket's limit: 429 with retry_after, scope user, counted invalid."""
        for _ in range(5):
            self.assertEqual((await self.raw_call("POST", "/channels/3333/typing"))[0].code, 204)
        response, body = await self.raw_call("POST", "/channels/3333/typing")
        self.assertEqual(response.code, 429)
        self.assertEqual(body["message"], "You are being rate limited.")
        self.assertFalse(body["global"])
        self.assertTrue(0 < body["retry_after"] <= 5)
        self.assertEqual(response.headers.getRawHeaders(b"x-ratelimit-scope"), [b"user"])
        self.assertEqual(response.headers.getRawHeaders(b"x-ratelimit-remaining"), [b"0"])
        self.assertTrue(response.headers.getRawHeaders(b"retry-after"))
        self.assertEqual(len(self.sim.typing), 5)
        self.assertEqual(self.sim.rate_limits.invalid, 1)
        self.assertEqual(self.sim.rate_limits.limited, {"typing": 1})
        self.assertIn(("rate_limited", "typing"), self.sim.events)

    async def test_global_limit(self) -> None:
        """More than 50 requests in a second from one bot: a global 429."""
        self.sim.rate_limits.routes = {}
        codes = [
            (await self.raw_call("POST", f"/channels/{3000 + i}/typing"))[0].code
            for i in range(50)
        ]
        self.assertEqual(set(codes), {204})
        response, body = await self.raw_call("POST", "/channels/9999/typing")
        self.assertEqual(response.code, 429)
        self.assertTrue(body["global"])
        self.assertEqual(response.headers.getRawHeaders(b"x-ratelimit-global"), [b"true"])
        self.assertEqual(response.headers.getRawHeaders(b"x-ratelimit-scope"), [b"global"])

    async def test_401_invalid(self) -> None:
        """A rejected token is an invalid request."""
        await self.raw_call("POST", "/channels/3333/typing", token="wrong")
        self.assertEqual(self.sim.rate_limits.invalid, 1)

    async def test_relay_client_never_429(self) -> None:
        """
        The relay's REST client, typing 12 times in one channel, waits for
        the bucket's resets instead of being refused, and after a 401 makes
        no more calls with that token.
        """
        rest = DiscordREST(self.http, self.sim.api_url, clock=reactor)
        # a short window, so the test is quick
        self.sim.rate_limits.routes["typing"] = (5, 0.5)
        await gatherResults(
            [rest.trigger_typing(TOKEN, "3333", max_wait=None) for _ in range(12)]
        )
        self.assertEqual(len(self.sim.typing), 12)
        self.assertEqual(self.sim.rate_limits.limited, {})
        self.assertGreater(rest.calls["waited"], 0)
        for _ in range(3):
            try:
                await rest.trigger_typing("wrong", "3333")
            except DiscordHTTPError as e:
                self.assertEqual(e.status, 401)
        self.assertEqual(self.sim.rate_limits.invalid, 1)


class ControlAPITests(RestTestCase):
    """/_sim: what a person drives with curl."""

    control_api = True

    async def sim_call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return await self.call(method, path, body=body, token=None, base=self.sim.control_url)

    async def test_state(self) -> None:
        """GET /_sim/state shows the URLs and bots, tokens masked."""
        status, body = await self.sim_call("GET", "/state")
        self.assertEqual(status, 200)
        self.assertEqual(body["api_url"], self.sim.api_url)
        self.assertEqual(body["bots"][0]["user_id"], "1111")
        self.assertNotIn(TOKEN, orjson.dumps(body).decode())

    async def test_inject_message(self) -> None:
        """
        POST /_sim/bots/{token}/messages dispatches a MESSAGE_CREATE (whole,
        to a bot with the MESSAGE_CONTENT intent).
        """
        self.bot.privileged_intents = 1 << 15
        client, _ = await self.ready_client(intents=(1 << 15) | 513)
        status, body = await self.sim_call(
            "POST", f"/bots/{TOKEN}/messages", {"content": "hello there"}
        )
        self.assertEqual(status, 200)
        self.assertEqual(body["d"]["content"], "hello there")
        self.assertEqual(await client.next(), body)

    async def test_inject_without_session(self) -> None:
        """Injecting before anything identified is a 409 that says so."""
        status, body = await self.sim_call("POST", f"/bots/{TOKEN}/messages", {"content": "x"})
        self.assertEqual(status, 409)
        self.assertIn("identified", body["error"])

    async def test_close(self) -> None:
        """POST /_sim/bots/{token}/close closes the bot's connections."""
        client, _ = await self.ready_client()
        status, _ = await self.sim_call("POST", f"/bots/{TOKEN}/close", {"code": 4000})
        self.assertEqual(status, 200)
        self.assertEqual(await client.close_code(), 4000)

    async def test_close_bad_code(self) -> None:
        """A close code a websocket cannot carry is refused with 400."""
        await self.ready_client()
        status, _ = await self.sim_call("POST", f"/bots/{TOKEN}/close", {"code": 1006})
        self.assertEqual(status, 400)

    async def test_unknown_bot(self) -> None:
        """Acting on an unknown token is a 404."""
        status, _ = await self.sim_call("POST", "/bots/nope/drop")
        self.assertEqual(status, 404)

    async def test_add_bot(self) -> None:
        """POST /_sim/bots adds a bot that can then use the API."""
        status, _ = await self.sim_call("POST", "/bots", {"token": "token-new", "user_id": "77"})
        self.assertEqual(status, 200)
        status, _ = await self.call("GET", "/gateway/bot", token="token-new")
        self.assertEqual(status, 200)

    async def test_add_bots_in_bulk(self) -> None:
        """
        POST /_sim/bots/bulk adds many bots in one call, tokens numbered
        from a prefix; GET /_sim/summary counts them.
        """
        status, body = await self.sim_call(
            "POST", "/bots/bulk", {"prefix": "many", "count": 50, "first_user_id": 9000}
        )
        self.assertEqual((status, body), (200, {"added": 50}))
        self.assertEqual(self.sim.bot_for_token("many49").user_id, "9049")
        status, body = await self.sim_call("POST", "/bots/bulk", {"prefix": "many", "count": 1})
        self.assertEqual(status, 409)
        status, body = await self.sim_call("POST", "/bots/bulk", {"count": 0})
        self.assertEqual(status, 400)
        await self.ready_client()
        status, body = await self.sim_call("GET", "/summary")
        self.assertEqual(
            body,
            {"bots": 51, "connections": 1, "ready": 1, "identifies": 1, "resumes": 0},
        )

    async def test_load(self) -> None:
        """
        POST /_sim/load writes ``count`` MESSAGE_CREATE dispatches to the
        ready connections, each with the next seq and a nonce of
        nanoseconds; GET /_sim/load shows the progress.
        """
        status, body = await self.sim_call("POST", "/load", {"rate": 1000, "count": 5})
        self.assertEqual(status, 409)
        client, _ = await self.ready_client()
        status, body = await self.sim_call(
            "POST", "/load", {"rate": 1000, "count": 5, "messages": 3}
        )
        self.assertEqual((status, body), (200, {"connections": 1}))
        got = [await client.next() for _ in range(5)]
        self.assertEqual([p["s"] for p in got], [2, 3, 4, 5, 6])
        self.assertEqual({p["t"] for p in got}, {"MESSAGE_CREATE"})
        self.assertTrue(all(int(p["d"]["nonce"]) > 0 for p in got))
        self.assertEqual(got[0]["d"]["id"], got[3]["d"]["id"])
        status, body = await self.sim_call("GET", "/load")
        self.assertEqual((body["sent"], body["skipped"], body["done"]), (5, 0, True))
        self.assertEqual(self.bot.session_for(0).seq, 6)

    async def test_load_with_other_events(self) -> None:
        """
        With ``others``, that share of the dispatches are other events,
        spread among the messages, with the same seq sequence and no nonce;
        a share out of range is refused.
        """
        client, _ = await self.ready_client()
        status, body = await self.sim_call(
            "POST", "/load", {"rate": 1000, "count": 6, "messages": 2, "others": 1 / 3}
        )
        self.assertEqual((status, body), (200, {"connections": 1}))
        got = [await client.next() for _ in range(6)]
        self.assertEqual([p["s"] for p in got], list(range(2, 8)))
        kinds = [p["t"] for p in got]
        self.assertEqual(kinds.count("MESSAGE_CREATE"), 4)
        self.assertEqual(set(kinds) - {"MESSAGE_CREATE"}, {"TYPING_START"})
        for p in got:
            self.assertEqual("nonce" in p["d"], p["t"] == "MESSAGE_CREATE")
        status, _ = await self.sim_call("POST", "/load", {"rate": 1000, "count": 1, "others": 1})
        self.assertEqual(status, 400)


class LoadLayoutTests(SynchronousTestCase):
    """:func:`dccrelay.testing.load.layout` spreads the other events evenly."""

    def test_layout(self) -> None:
        """Every message once, in order, and the share of other events asked for."""
        slots = layout(10, 0.75)
        self.assertEqual(len(slots), 40)
        self.assertEqual([s for s in slots if s is not None], list(range(10)))
        self.assertEqual(slots[:8], [0, None, None, None, 1, None, None, None])
        self.assertEqual(layout(3, 0), [0, 1, 2])
        self.assertRaises(ValueError, layout, 3, 1.0)
