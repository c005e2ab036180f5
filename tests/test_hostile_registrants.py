"""
End-to-end: hostile registrants against the real relay, the Discord
simulator over TLS and a real bot receiver, on loopback (issue 17, items 5
and 6).  The hostile client is written here, bounded in requests and time;
it registers from another IPv4 /24 of the loopback network (127.0.1.1) than
the legitimate owners (127.0.0.1), as a stranger on the internet would.
"""

from __future__ import annotations

from base64 import b64encode
from typing import Any

import orjson
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from dccrelay.testing.codes import MESSAGE_CONTENT
from tests.harness import (
    LOOPBACK,
    SECRET,
    BotReceiver,
    RelayProcess,
    next_item,
    tls_simulator,
    wait_for,
)
from tests.test_end_to_end import deferred_test

TOKEN = "MTExMTExMTExMTExMTExMTEx.Gg1234.healthy-token"
LATE_TOKEN = "MjIyMjIyMjIyMjIyMjIyMjIy.Gg1234.late-token"
CRITERIA = {"t": "MESSAGE_CREATE", "d.content": {"$regex": "^cookout\\b"}}
#: PUTs the hostile client makes at most
FLOOD = 40


class HostileClient:
    """
    A registrant on another network than the owners: plain HTTP to the
    relay's API from ``source`` (a loopback address outside 127.0.0.0/24).
    """

    def __init__(self, base: str, source: str) -> None:
        self.base = base
        self.http = HTTPClient(
            Agent(reactor, bindAddress=(source, 0), pool=HTTPConnectionPool(reactor, persistent=False))
        )

    async def put(self, alias: str, body: dict[str, Any], secret: str | None = None) -> tuple[int, Any, Any]:
        headers = {"Content-Type": ["application/json"]}
        if secret is not None:
            headers["Authorization"] = ["Basic " + b64encode(secret.encode()).decode()]
        response = await self.http.put(
            f"{self.base}/relays/{alias}", data=orjson.dumps(body), headers=headers
        )
        content = await response.content()
        return response.code, orjson.loads(content), response


class HostileRegistrantTests(TestCase):
    """
    One registrant cannot spend the node's Discord budgets or stall its
    reactor; other bots keep receiving.
    """

    timeout = 90

    async def start(self, *relay_args: str) -> None:
        self.sim = tls_simulator()
        await self.sim.listen(LOOPBACK)
        self.addCleanup(self.sim.stop)
        self.bot = self.sim.add_bot(token=TOKEN, user_id="111", privileged_intents=MESSAGE_CONTENT)
        self.receiver = BotReceiver()
        await self.receiver.start()
        self.addCleanup(self.receiver.stop)
        self.relay = await RelayProcess.started(self, self.mktemp(), self.sim.api_url, *relay_args)
        code, answer = await self.relay.register(self.body(TOKEN), alias="healthy")
        self.assertEqual(code, 201, answer)
        await self.wait_ready("healthy", self.bot)
        self.hostile = HostileClient(self.relay.base, "127.0.1.1")

    def body(self, token: str, **changes: Any) -> dict[str, Any]:
        return {
            "token": token, "intents": 4608 | MESSAGE_CONTENT, "criteria": CRITERIA,
            "dst": self.receiver.url, "clientSecret": SECRET, **changes,
        }

    async def wait_ready(self, alias: str, bot: Any) -> None:
        await bot.wait_for_ready()
        await wait_for(
            lambda: [s.state for s in self.relay.relay(alias).shards] == ["ready"],
            what=f"{alias}'s shard to be ready",
        )

    async def still_receives(self) -> None:
        """The healthy bot gets a matching message through the relay."""
        sent = self.bot.message("cookout still on")
        self.assertEqual(await next_item(self.receiver.queue), sent)

    @deferred_test
    async def test_bogus_token_flood_on_one_alias(self) -> None:
        """
        The issue's attack: PUTs with a new bogus token each, on one alias.
        After the alias's few token changes the rest get 429 with
        Retry-After and a message saying why; few invalid requests reach
        Discord; the healthy bot keeps receiving; a bot registered after the
        flood connects; the hostile alias's status says Discord rejected its
        token.
        """
        await self.start()
        answers = []
        for n in range(FLOOD):
            code, body, response = await self.hostile.put(
                "flood", self.body(f"bogus.{n}.token"), secret=SECRET if n else None
            )
            answers.append((code, body, response))
        codes = [code for code, _, _ in answers]
        self.assertEqual(codes[:3], [201, 200, 200], answers[:3])
        self.assertEqual(set(codes[3:]), {429})
        _, refusal, response = answers[-1]
        self.assertIn("too many token changes for 'flood'", refusal["error"])
        self.assertTrue(response.headers.getRawHeaders(b"retry-after"))
        await wait_for(
            lambda: not self.relay.relay("flood").enabled, what="the flood alias to be disabled"
        )
        status = self.relay.relay("flood").snapshot()
        self.assertIn("Discord rejected the token (HTTP 401)", status.disable_reason)
        # At most one invalid request per accepted token reached Discord.
        self.assertLessEqual(self.sim.rate_limits.invalid, 3)
        await self.still_receives()
        late = self.sim.add_bot(token=LATE_TOKEN, user_id="222", privileged_intents=MESSAGE_CONTENT)
        code, answer = await self.relay.register(self.body(LATE_TOKEN), alias="late")
        self.assertEqual(code, 201, answer)
        await self.wait_ready("late", late)

    @deferred_test
    async def test_bogus_token_flood_on_many_aliases(self) -> None:
        """
        A new alias for every bogus token: the client's network gets its
        burst, then 429s; nothing more reaches Discord.
        """
        await self.start("--new-tokens-per-network", "10")
        codes = []
        for n in range(FLOOD):
            code, body, _ = await self.hostile.put(f"flood{n}", self.body(f"bogus.{n}.token"))
            codes.append(code)
        self.assertEqual(codes[:10], [201] * 10)
        self.assertEqual(set(codes[10:]), {429})
        self.assertNotIn("flood10", self.relay.manager.relays)
        await wait_for(
            lambda: self.sim.rate_limits.invalid == 10, what="ten 401s from the simulator"
        )
        await self.still_receives()

    @deferred_test
    async def test_spread_flood_leaves_the_reserve(self) -> None:
        """
        Bogus tokens from several networks spend at most the budget less the
        reserve; once they have, new tokens wait (their status says why)
        while a bot whose token Discord accepted still calls Discord: here
        the healthy bot, re-enabled after the flood, connects again.
        """
        await self.start("--invalid-budget", "12", "--invalid-reserve", "6")
        for network in ("127.0.1.1", "127.0.2.1"):
            client = HostileClient(self.relay.base, network)
            for n in range(6):
                code, body, _ = await client.put(
                    f"flood{network[6]}x{n}", self.body(f"bogus.{network}.{n}")
                )
                self.assertEqual(code, 201, body)
        await wait_for(
            lambda: self.sim.rate_limits.invalid == 6, what="six 401s from the simulator"
        )
        waiting = [
            relay for alias, relay in self.relay.manager.relays.items()
            if alias.startswith("flood") and relay.enabled
        ]
        self.assertEqual(len(waiting), 6)
        await wait_for(
            lambda: all(
                "too many invalid requests" in (relay.snapshot().gateway_error or "")
                for relay in waiting
            ),
            what="the waiting bots' status to say why",
        )
        await self.still_receives()
        code, _ = await self.relay.request("POST", "/relays/healthy/disable", secret=SECRET)
        self.assertEqual(code, 200)
        code, answer = await self.relay.register(self.body(TOKEN), alias="healthy", secret=SECRET)
        self.assertEqual(code, 200, answer)
        await self.wait_ready("healthy", self.bot)
        await self.still_receives()
        self.assertEqual(self.sim.rate_limits.invalid, 6)

    @deferred_test
    async def test_costly_criteria_refused(self) -> None:
        """
        The issue's costly criteria get a 400 naming the problem and where;
        the healthy bot keeps receiving.
        """
        await self.start()
        alternation = "|".join(f"x{{{i}}}z" for i in range(100, 240))[:1024].rsplit("|", 1)[0]
        for pattern, problem in [
            (".{1,1000}x{1,1000}z", "repetition count 1000 is above the limit of 100"),
            (alternation, "repetition count 101 is above the limit of 100"),
            ("|".join(f"x{{{i}}}z" for i in range(60, 100)), "bytes of RE2 program memory"),
        ]:
            code, body, _ = await self.hostile.put(
                "costly", self.body("costly.token", criteria={"d.content": {"$regex": pattern}})
            )
            self.assertEqual(code, 400, body)
            self.assertIn(problem, body["error"])
            self.assertEqual(body["field"], "/criteria/d.content/$regex")
        self.assertNotIn("costly", self.relay.manager.relays)
        await self.still_receives()
