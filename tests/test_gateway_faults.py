"""
Every gateway fault of Discord's documentation, end to end: the real relay
against the simulator, with a real bot receiver, counting IDENTIFYs and
RESUMEs and checking that the bot gets every dispatch Discord could deliver
exactly once, in order.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred, gatherResults
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

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

TOKEN = "MzMzMzMzMzMzMzMzMzMzMzMz.Gg1234.fault-token"
CRITERIA = {"t": "MESSAGE_CREATE", "d.content": {"$regex": "^cookout"}}


def scenario(f: Any) -> Any:
    def run(self: Any) -> Any:
        return ensureDeferred(f(self))

    run.__name__ = f.__name__
    run.__doc__ = f.__doc__
    return run


class FaultHarness(TestCase):
    """
    The relay, the simulator and a bot, and ways to hurt the connection.
    """

    timeout = 60
    heartbeat_interval = 41250

    async def start(self, **bot: Any) -> None:
        self.sim = tls_simulator(
            heartbeat_interval=self.heartbeat_interval, session_timeout=5.0
        )
        await self.sim.listen(LOOPBACK)
        self.addCleanup(self.sim.stop)
        bot.setdefault("privileged_intents", MESSAGE_CONTENT)
        self.bot = self.sim.add_bot(token=TOKEN, user_id="333", **bot)
        self.receiver = BotReceiver()
        await self.receiver.start()
        self.addCleanup(self.receiver.stop)
        self.data_dir = self.mktemp()
        self.relay = await self.start_relay()
        code, answer = await self.relay.register(
            {"token": TOKEN, "intents": 4608 | MESSAGE_CONTENT, "criteria": CRITERIA,
             "dst": self.receiver.url, "clientSecret": SECRET}
        )
        self.assertEqual(code, 201, answer)
        await self.ready()
        self.expected: list[bytes] = []

    async def start_relay(self) -> RelayProcess:
        return await RelayProcess.started(self, self.data_dir, self.sim.api_url)

    async def ready(self, shards: int = 1) -> None:
        """
        Wait until every shard of the relay has seen READY or RESUMED.
        """
        await wait_for(
            lambda: self.relay.manager.relays.get("cookout") is not None
            and [s.state for s in self.relay.relay().shards] == ["ready"] * shards,
            timeout=30,
            what=f"{shards} ready shard(s)",
        )

    def send(self, text: str, shard_id: int = 0) -> None:
        """
        A person writes something the bot wants.
        """
        self.expected.append(self.bot.message(f"cookout {text}", shard_id=shard_id))

    async def delivered_exactly_once(self) -> None:
        """
        The bot got every expected dispatch once, in order, and nothing else.
        """
        await wait_for(
            lambda: len(self.receiver.received) >= len(self.expected),
            timeout=30,
            what=f"{len(self.expected)} dispatches at the bot",
        )
        await deferLater(reactor, 0.2, lambda: None)
        self.assertEqual(self.receiver.received, self.expected)

    async def fault_then_resume(self, fault: Any) -> None:
        self.send("before")
        await next_item(self.receiver.queue)
        fault(self.bot.connections[-1])
        await self.bot.wait_for_disconnect()
        self.send("while away")
        await self.ready()
        self.send("after")
        await self.delivered_exactly_once()
        self.assertEqual((self.bot.identifies, self.bot.resumes), (1, 1))
        self.assertEqual(self.bot.resume_urls["resume"], 1)

    async def fault_then_identify(self, fault: Any) -> None:
        self.send("before")
        await next_item(self.receiver.queue)
        old_session = self.relay.relay().shards[0].session.session_id
        fault(self.bot.connections[-1])
        await wait_for(
            lambda: self.bot.identifies == 2 and self.relay.relay().shards[0].state == "ready",
            timeout=30, what="a fresh IDENTIFY",
        )
        self.assertNotEqual(self.relay.relay().shards[0].session.session_id, old_session)
        self.send("after")
        await self.delivered_exactly_once()
        self.assertEqual(self.bot.resumes, 0)

    async def fatal(self, code: int) -> None:
        self.bot.connections[-1].close(code)
        relay = self.relay.relay()
        await wait_for(lambda: not relay.enabled, what="the bot to be disabled")
        self.assertIn(f"({code} ", relay.disable_reason)
        await deferLater(reactor, 1.5, lambda: None)
        self.assertEqual((self.bot.identifies, self.bot.resumes), (1, 0))
        self.assertEqual(self.bot.connections, [])
        code_, status = await self.relay.request("GET", "/relays/cookout", secret=SECRET)
        self.assertFalse(status["enabled"])
        self.assertEqual(status["lastDisableReason"], relay.disable_reason)



class GatewayFaultTests(FaultHarness):
    """
    What the relay does about each thing Discord can do to a connection.
    """

    # -- close codes that resume ------------------------------------------------

    @scenario
    async def test_close_4000_resumes(self) -> None:
        """4000 unknown error: reconnect and RESUME."""
        await self.start()
        await self.fault_then_resume(lambda c: c.close(4000))

    @scenario
    async def test_close_4001_resumes(self) -> None:
        """4001 unknown opcode: reconnect and RESUME."""
        await self.start()
        await self.fault_then_resume(lambda c: c.close(4001))

    @scenario
    async def test_close_4002_resumes(self) -> None:
        """4002 decode error: reconnect and RESUME."""
        await self.start()
        await self.fault_then_resume(lambda c: c.close(4002))

    @scenario
    async def test_close_4003_resumes(self) -> None:
        """4003 not authenticated: reconnect and RESUME."""
        await self.start()
        await self.fault_then_resume(lambda c: c.close(4003))

    @scenario
    async def test_close_4005_resumes(self) -> None:
        """4005 already authenticated: reconnect and RESUME."""
        await self.start()
        await self.fault_then_resume(lambda c: c.close(4005))

    @scenario
    async def test_close_4008_resumes(self) -> None:
        """4008 rate limited: reconnect and RESUME."""
        await self.start()
        await self.fault_then_resume(lambda c: c.close(4008))

    @scenario
    async def test_tcp_drop_resumes(self) -> None:
        """A TCP connection lost without a close frame: RESUME."""
        await self.start()
        await self.fault_then_resume(lambda c: c.drop())

    @scenario
    async def test_op7_resumes(self) -> None:
        """op 7 Reconnect: RESUME at resume_gateway_url."""
        await self.start()
        await self.fault_then_resume(lambda c: c.send_reconnect())

    @scenario
    async def test_op9_resumable_resumes(self) -> None:
        """op 9 with d=true: RESUME."""
        await self.start()
        await self.fault_then_resume(lambda c: c.send_invalid_session(True))

    # -- close codes and faults that need a new session --------------------------------

    @scenario
    async def test_close_4007_identifies(self) -> None:
        """4007 invalid seq: a fresh IDENTIFY."""
        await self.start()
        await self.fault_then_identify(lambda c: c.close(4007))

    @scenario
    async def test_close_4009_identifies(self) -> None:
        """4009 session timed out: a fresh IDENTIFY."""
        await self.start()
        await self.fault_then_identify(lambda c: c.close(4009))

    @scenario
    async def test_op9_not_resumable_identifies(self) -> None:
        """op 9 with d=false: wait 1-5 s, then a fresh IDENTIFY."""
        await self.start()
        await self.fault_then_identify(lambda c: c.send_invalid_session(False))

    @scenario
    async def test_restart_resumes_without_asking(self) -> None:
        """
        A relay restarted within Discord's resume window RESUMEs its stored
        session without asking ``GET /gateway/bot`` first.
        """
        await self.start()
        self.send("before")
        await next_item(self.receiver.queue)
        await self.relay.stop()
        await self.bot.wait_for_disconnect()
        asked = self.sim.events.count(("gateway_bot", "333"))
        self.relay = await self.start_relay()
        await wait_for(lambda: self.bot.resumes == 1, timeout=30, what="a RESUME")
        await self.ready()
        self.send("after")
        await self.delivered_exactly_once()
        self.assertEqual(self.sim.events.count(("gateway_bot", "333")), asked)
        self.assertEqual(self.bot.identifies, 1)

    @scenario
    async def test_resume_window_expired(self) -> None:
        """
        A relay down longer than Discord keeps the session: RESUME is
        refused with op 9, and the relay identifies afresh.
        """
        await self.start()
        self.send("before")
        await next_item(self.receiver.queue)
        await self.relay.stop()
        await self.bot.wait_for_disconnect()
        await wait_for(
            lambda: ("session_expired", 0) in self.sim.events, timeout=10,
            what="the simulated session to expire",
        )
        asked = self.sim.events.count(("gateway_bot", "333"))
        self.relay = await self.start_relay()
        await wait_for(lambda: self.bot.identifies == 2, timeout=30, what="a fresh IDENTIFY")
        await self.ready()
        self.send("after")
        await self.delivered_exactly_once()
        self.assertIn(("resume_refused", "expired"), self.sim.events)
        # asked once, when the refused shard had to IDENTIFY
        self.assertEqual(self.sim.events.count(("gateway_bot", "333")), asked + 1)

    @scenario
    async def test_close_4011_reshards(self) -> None:
        """
        4011 sharding required: the relay fetches the recommended shard
        count and identifies every shard, instead of disabling the bot.
        """
        await self.start()
        self.bot.shards = 2
        self.bot.connections[-1].close(4011)
        await self.ready(shards=2)
        relay = self.relay.relay()
        self.assertTrue(relay.enabled)
        self.assertEqual([s.shard_count for s in relay.shards], [2, 2])
        self.send("on shard 1", shard_id=1)
        self.send("on shard 0", shard_id=0)
        await wait_for(lambda: len(self.receiver.received) == 2, what="both dispatches")
        self.assertEqual(sorted(self.receiver.received), sorted(self.expected))

    # -- fatal close codes ------------------------------------------------------

    @scenario
    async def test_close_4004_disables(self) -> None:
        """4004 authentication failed: disabled, no reconnect."""
        await self.start()
        await self.fatal(4004)

    @scenario
    async def test_close_4010_disables(self) -> None:
        """4010 invalid shard: disabled, no reconnect."""
        await self.start()
        await self.fatal(4010)

    @scenario
    async def test_close_4012_disables(self) -> None:
        """4012 invalid API version: disabled, no reconnect."""
        await self.start()
        await self.fatal(4012)

    @scenario
    async def test_close_4013_disables(self) -> None:
        """4013 invalid intents: disabled, no reconnect."""
        await self.start()
        await self.fatal(4013)

    @scenario
    async def test_close_4014_disables(self) -> None:
        """4014 disallowed intents: disabled, no reconnect."""
        await self.start()
        await self.fatal(4014)

    # -- identify limits -------------------------------------------------------

    @scenario
    async def test_session_start_limit_exhausted(self) -> None:
        """
        With no session starts left, the shard waits for Discord's reset,
        showing "waiting for identify slot", instead of hammering IDENTIFY.
        """
        self.sim = tls_simulator()
        await self.sim.listen(LOOPBACK)
        self.addCleanup(self.sim.stop)
        self.bot = self.sim.add_bot(
            token=TOKEN, user_id="333", remaining=0, reset_after=2000,
            privileged_intents=MESSAGE_CONTENT,
        )
        self.receiver = BotReceiver()
        await self.receiver.start()
        self.addCleanup(self.receiver.stop)
        self.data_dir = self.mktemp()
        self.relay = await self.start_relay()
        code, _ = await self.relay.register(
            {"token": TOKEN, "intents": 4608 | MESSAGE_CONTENT, "criteria": CRITERIA,
             "dst": self.receiver.url, "clientSecret": SECRET}
        )
        self.assertEqual(code, 201)
        await wait_for(
            lambda: [s.state for s in self.relay.relay().shards] == ["waiting for identify slot"],
            what="the shard to wait",
        )
        self.assertEqual(self.bot.identifies, 0)
        await self.ready()
        self.assertEqual(self.bot.identifies, 1)
        self.assertNotIn(("identify_refused", "session_start_limit"), self.sim.events)


class ZombieTests(FaultHarness):
    """
    With a short heartbeat interval: a connection whose heartbeats go
    unanswered is a zombie; the relay closes it and resumes.
    """

    heartbeat_interval = 300

    @scenario
    async def test_zombie_resumes(self) -> None:
        """No heartbeat ACK: close with a non-1000 code, RESUME."""
        await self.start()

        def zombie(connection: Any) -> None:
            connection.ack_heartbeats = False

        await self.fault_then_resume(zombie)
        self.assertNotIn(("client_close", 1000), self.sim.events)
        self.assertNotIn(("client_close", 1001), self.sim.events)

    @scenario
    async def test_heartbeat_request_answered(self) -> None:
        """op 1 from Discord gets a heartbeat at once."""
        await self.start()
        connection = self.bot.connections[-1]
        before = len(connection.heartbeats)
        connection.request_heartbeat()
        await wait_for(lambda: len(connection.heartbeats) > before, timeout=0.25,
                       what="an immediate heartbeat")


class ManyBotsTests(TestCase):
    """
    Many bots registered at once each keep to their own identify limits.
    """

    timeout = 60

    @scenario
    async def test_hundred_bots_start_together(self) -> None:
        """
        100 bots, each with max_concurrency 1 and 2 shards, registered at
        the same moment: every shard gets READY, Discord refuses no
        IDENTIFY, and each bot's two shards identify at least 5 s apart.
        """
        sim = tls_simulator()
        await sim.listen(LOOPBACK)
        self.addCleanup(sim.stop)
        bots = [sim.add_bot(token=f"bot-{i}.x.y", user_id=str(1000 + i), shards=2) for i in range(100)]
        receiver = BotReceiver()
        await receiver.start()
        self.addCleanup(receiver.stop)
        # One owner registering 100 bots from one network: over the default
        # allowance of new tokens per network (issue 17, item 5).
        relay = await RelayProcess.started(
            self, self.mktemp(), sim.api_url, "--new-tokens-per-network", "100"
        )
        codes = await gatherResults(
            [
                Deferred.fromCoroutine(relay.register(
                    {"token": f"bot-{i}.x.y", "dst": receiver.url, "clientSecret": SECRET},
                    alias=f"bot_{i}",
                ))
                for i in range(100)
            ]
        )
        self.assertEqual({code for code, _ in codes}, {201})
        await wait_for(
            lambda: all(
                [s.state for s in r.shards] == ["ready", "ready"]
                for r in relay.manager.relays.values()
            ),
            timeout=30,
            what="200 ready shards",
        )
        self.assertEqual(sum(bot.identifies for bot in bots), 200)
        self.assertEqual([e for e in sim.events if e[0] == "identify_refused"], [])
        for bot in bots:
            self.assertEqual(bot.identifies, 2)
