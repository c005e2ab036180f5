"""
Three ``twistd dcc`` nodes on one real PostgreSQL database, the Discord
simulator and a real bot receiver, all on loopback: one node is killed with
SIGKILL while dispatches flow, and its bots must be taken over by RESUME,
losing nothing.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

import orjson
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.trial.unittest import TestCase

from tests.harness import LOOPBACK, SECRET, BotReceiver, MessageFlow, http, tls_simulator, wait_for
from tests.postgres import fresh_database
from tests.twistd_process import TwistdProcess, run_relay, serving

BOTS = 6
_log = Logger()


class ThreeNodeTests(TestCase):
    """
    Several relays sharing PostgreSQL, with takeover when a node dies.
    """

    timeout = 120

    def spawn(self, node_id: str, store: str, api_url: str) -> TwistdProcess:
        return run_relay(
            self, api_url, "--store", store, "--node-id", node_id, "--data-dir", self.mktemp()
        )

    async def owners(self, port: int) -> dict[str, str | None]:
        response = await http.get(f"http://127.0.0.1:{port}/relays")
        body = orjson.loads(await response.content())
        return {r["alias"]: r.get("node") for r in body["relays"]}

    def test_kill_one_node(self) -> Any:
        """
        Bots spread two per node; after ``kill -9`` of one node the other
        two take its bots over by RESUME (no new IDENTIFY), and every
        dispatch sent before, during and after reaches the bot.
        """
        return ensureDeferred(self._kill_one_node())

    async def _kill_one_node(self) -> None:
        store = fresh_database(self)
        sim = tls_simulator()
        await sim.listen(LOOPBACK)
        self.addCleanup(sim.stop)
        bots = {f"bot_{i}": sim.add_bot(token=f"token-{i}.x.y", user_id=str(500 + i)) for i in range(BOTS)}
        receiver = BotReceiver()
        await receiver.start()
        self.addCleanup(receiver.stop)

        nodes = {name: self.spawn(name, store, sim.api_url) for name in ("n1", "n2", "n3")}
        ports = [await serving(node) for node in nodes.values()]
        port = ports[0]
        for i, alias in enumerate(bots):
            response = await http.put(
                f"http://127.0.0.1:{port}/relays/{alias}",
                data=orjson.dumps({"token": f"token-{i}.x.y", "dst": receiver.url,
                                   "clientSecret": SECRET,
                                   "criteria": {"t": "MESSAGE_CREATE"}}),
                headers={"Content-Type": ["application/json"]},
            )
            await response.content()
            self.assertEqual(response.code, 201)

        # Every bot runs somewhere, two per node once the spread settles.
        async def spread() -> Counter[str | None]:
            return Counter((await self.owners(port)).values())

        deadline = time.monotonic() + 40
        while (await spread()) != Counter({"n1": 2, "n2": 2, "n3": 2}):
            self.assertLess(time.monotonic(), deadline, f"spread never settled: {await spread()}")
            await deferLater(reactor, 0.5, lambda: None)
        await gatherResults([bot.wait_for_ready() for bot in bots.values()])
        owners = await self.owners(port)
        victims = [alias for alias, node in owners.items() if node == "n3"]
        identifies_before = sum(bot.identifies for bot in bots.values())

        flow = MessageFlow(bots)
        sent = flow.sent
        await deferLater(reactor, 1.0, lambda: None)

        killed_at = time.monotonic()
        nodes["n3"].transport.signalProcess("KILL")
        await nodes["n3"].ended
        await gatherResults([bots[alias].wait_for_disconnect() for alias in victims])
        await gatherResults([bots[alias].wait_for_ready() for alias in victims])
        takeover = time.monotonic() - killed_at
        await deferLater(reactor, 2.0, lambda: None)
        flow.stop()

        await wait_for(
            lambda: set(sent) <= set(receiver.received), timeout=30,
            what="every dispatch at the bot",
        )
        lost = len(set(sent) - set(receiver.received))
        duplicated = len(receiver.received) - len(set(receiver.received))
        identifies = sum(bot.identifies for bot in bots.values())
        resumes = sum(bot.resumes for bot in bots.values())
        _log.info(
            "three-node takeover: {takeover:.1f} s from kill -9 to every bot serving; "
            "{sent} dispatches sent, {lost} lost, {duplicated} duplicated; "
            "{identifies} IDENTIFYs, {resumes} RESUMEs",
            takeover=takeover, sent=len(sent), lost=lost, duplicated=duplicated,
            identifies=identifies, resumes=resumes,
        )
        print(
            f"\nthree-node takeover: {takeover:.1f} s; sent {len(sent)}, lost {lost}, "
            f"duplicated {duplicated}; IDENTIFY {identifies}, RESUME {resumes}",
            file=sys.stderr,
        )
        self.assertEqual(lost, 0)
        self.assertEqual(identifies, identifies_before)
        self.assertEqual(identifies, BOTS)
        after = await self.owners(port)
        self.assertEqual(sorted(after[alias] for alias in victims if after[alias] == "n3"), [])

        # A change made through n1 takes effect where the bot runs (n2).
        alias = next(a for a, node in after.items() if node == "n2")
        asked_at = time.monotonic()
        response = await http.post(
            f"http://127.0.0.1:{port}/relays/{alias}/disable",
            auth=tuple(SECRET.split(":", 1)),
        )
        await response.content()
        self.assertEqual(response.code, 200)
        await bots[alias].wait_for_disconnect()
        applied = time.monotonic() - asked_at
        _log.info("disable through another node applied in {applied:.2f} s", applied=applied)
        print(f"disable through n1 applied on n2 in {applied:.2f} s", file=sys.stderr)
        self.assertEqual(bots[alias].connections, [])
        for node in ("n1", "n2"):
            nodes[node].transport.signalProcess("TERM")
            await nodes[node].ended
