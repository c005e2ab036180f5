"""
Loopback end-to-end tests of waking sleeping bots in time (docs/waking.rst):
the wakeUrl, typing while the bot sleeps, deferred interactions, and the
bot talking back to the gateway.

Everything is real: the relay service (in this process), the Discord
simulator, and bots built on ``dccrelay.client``; a *sleeping host* serves
the bot's wakeUrl and starts the bot's receiver some seconds after it is
requested, as a scaled-to-zero platform does.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

import orjson
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IDelayedCall, IListeningPort
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from dccrelay.client import RegistrationError, answer_interaction, send_command
from dccrelay.testing.codes import MESSAGE_CONTENT
from dccrelay.testing.simulator import DiscordSimulator
from dccrelay.web.status_json import full_json, public_json
from tests.delivery_harness import WebhookBot, WebSocketBot
from tests.harness import (
    LOOPBACK,
    SECRET,
    RelayProcess,
    http,
    serve_https,
    tls_simulator,
    wait_for,
)

TOKEN = "MzMzMzMzMzMzMzMzMzMzMzMz.Gg1234.waking-token"
BOT_ID = "333333333333333333"
CRITERIA = {"t": "MESSAGE_CREATE", "d.content": {"$regex": "^cookout"}}
GUILD_MEMBERS = 1 << 1


def deferred_test(f: Any) -> Any:
    def run(self: Any) -> Deferred[None]:
        return ensureDeferred(f(self))

    run.__name__ = f.__name__
    run.__doc__ = f.__doc__
    return run


class SleepingHost(Resource):
    """
    A scaled-to-zero host: ``GET /healthz`` answers at once, and starts
    the bot ``boot_time`` seconds after the first request (if it is not
    running or starting already).
    """

    isLeaf = True

    def __init__(self, bot: WebSocketBot | WebhookBot, port: int, boot_time: float) -> None:
        super().__init__()
        self.bot = bot
        self.bot_port = port
        self.boot_time = boot_time
        self.requests: list[float] = []
        self.running = False
        self._boot: IDelayedCall | None = None
        self.port: IListeningPort | None = None
        self.started_at: float | None = None

    def render_GET(self, request: Request) -> bytes:
        self.requests.append(reactor.seconds())
        if not self.running and self._boot is None:
            self._boot = reactor.callLater(self.boot_time, self._start)
        return b"waking up"

    def _start(self) -> None:
        self._boot = None
        self.running = True
        self.started_at = reactor.seconds()
        ensureDeferred(self.bot.start(self.bot_port))

    async def listen(self) -> str:
        self.port = await serverFromString(reactor, LOOPBACK).listen(serve_https(Site(self)))
        return f"https://127.0.0.1:{self.port.getHost().port}/healthz"

    async def stop(self) -> None:
        if self._boot is not None and self._boot.active():
            self._boot.cancel()
        if self.port is not None:
            port, self.port = self.port, None
            await port.stopListening()


class Fixture(TestCase):
    timeout = 60

    async def start_discord(self) -> None:
        self.sim = tls_simulator()
        await self.sim.listen(LOOPBACK)
        self.addCleanup(self.sim.stop)
        self.bot = self.sim.add_bot(
            token=TOKEN, user_id=BOT_ID, privileged_intents=MESSAGE_CONTENT
        )

    async def start_relay(self, *options: str) -> RelayProcess:
        return await RelayProcess.started(self, self.mktemp(), self.sim.api_url, *options)

    async def asleep(
        self, bot: WebSocketBot | WebhookBot, boot_time: float
    ) -> tuple[SleepingHost, str]:
        """
        The bot, not running, behind a sleeping host: its dst and the
        host's wakeUrl.
        """
        await bot.start()
        port = bot.port_number
        await bot.stop()
        host = SleepingHost(bot, port, boot_time)
        wake_url = await host.listen()
        self.addCleanup(host.stop)
        self.addCleanup(bot.stop)
        return host, wake_url

    async def register(self, relay: RelayProcess, body: dict[str, Any]) -> None:
        code, answer = await relay.register(body)
        self.assertEqual(code, 201, answer)
        await self.bot.wait_for_ready()
        await wait_for(
            lambda: [s.state for s in relay.relay().shards] == ["ready"],
            what="the relay's shard to be ready",
        )

    def body(self, dst: str, **changes: Any) -> dict[str, Any]:
        return {
            "token": TOKEN,
            "intents": 4608 | MESSAGE_CONTENT,
            "criteria": CRITERIA,
            "dst": dst,
            "clientSecret": SECRET,
            **changes,
        }


async def sleep(seconds: float) -> None:
    await deferLater(reactor, seconds, lambda: None)


def arrived(bot: WebSocketBot | WebhookBot, payload: bytes) -> Callable[[], bool]:
    return lambda: payload in bot.wire


class WakeUrlTests(Fixture):
    """
    ``wakeUrl``: requested when a dispatch matches for a sleeping bot.
    """

    @deferred_test
    async def test_requested_once_per_interval(self) -> None:
        """
        Messages to a sleeping bot request its wakeUrl once per
        --wake-interval, whatever their number; the host starts the bot,
        which gets every message; messages to the awake bot request
        nothing.
        """
        await self.start_discord()
        relay = await self.start_relay("--wake-interval", "3")
        bot = WebSocketBot()
        host, wake_url = await self.asleep(bot, boot_time=1.0)
        await self.register(
            relay, self.body(bot.url, wakeUrl=wake_url, delivery={"protocol": 2})
        )
        sent = []
        for i in range(5):
            sent.append(self.bot.message(f"cookout wake {i}"))
            await sleep(0.2)
        await wait_for(lambda: host.requests, what="the wakeUrl")
        await wait_for(lambda: set(sent) <= set(bot.wire), timeout=20, what="the messages")
        self.assertEqual(len(host.requests), 1)
        awake = [self.bot.message(f"cookout awake {i}") for i in range(3)]
        await wait_for(lambda: set(awake) <= set(bot.wire), what="the awake messages")
        await sleep(3.5)
        self.bot.message("cookout still awake")
        await sleep(0.5)
        self.assertEqual(len(host.requests), 1)
        status = full_json(relay.relay().snapshot(private=True))["wakeUrl"]
        self.assertEqual((status["requests"], status["failures"]), (1, 0))
        self.assertEqual(status["lastStatus"], 200)


class TalkingBackTests(Fixture):
    """
    Gateway commands from the bot, through the relay, to the simulator; and
    the answers back to the bot.
    """

    @deferred_test
    async def test_presence_and_members(self) -> None:
        """
        A websocket v2 bot sets its presence and asks for a guild's whole
        member list over its connection, then for two members over HTTP:
        the presence and the requests reach the simulated Discord on the
        guild's shard, and every GUILD_MEMBERS_CHUNK comes back to the bot,
        though its criteria match only messages.
        """
        await self.start_discord()
        self.sim.bots[TOKEN].privileged_intents = GUILD_MEMBERS | MESSAGE_CONTENT
        members = self.bot.add_members("2222", 1500)
        relay = await self.start_relay()
        bot = WebSocketBot()
        await bot.start()
        self.addCleanup(bot.stop)
        await self.register(
            relay,
            self.body(
                bot.url, intents=4608 | GUILD_MEMBERS | MESSAGE_CONTENT, delivery={"protocol": 2}
            ),
        )
        # a message opens the relay's connection to the bot
        hello = self.bot.message("cookout hello")
        await wait_for(arrived(bot, hello), what="the message")

        presence = {
            "since": None,
            "activities": [{"name": "the grill", "type": 3}],
            "status": "dnd",
            "afk": False,
        }
        result = await bot.factory.send_command(3, presence)
        self.assertEqual(result, {"op": 3, "shards": [0]})
        await wait_for(lambda: self.bot.presences, what="the presence")
        self.assertEqual(self.bot.presences, {0: presence})

        result = await bot.factory.send_command(
            8, {"guild_id": "2222", "query": "", "limit": 0}
        )
        nonce = result["nonce"]
        chunks = lambda: [  # noqa: E731
            orjson.loads(p)["d"] for p in bot.wire
            if orjson.loads(p)["t"] == "GUILD_MEMBERS_CHUNK"
        ]
        await wait_for(lambda: len(chunks()) == 2, what="two chunks")
        self.assertEqual({c["nonce"] for c in chunks()}, {nonce})
        self.assertEqual(sum(len(c["members"]) for c in chunks()), 1500)

        wanted = [members[7]["user"]["id"], members[1400]["user"]["id"]]
        result = await send_command(
            relay.base, "cookout", SECRET, 8, {"guild_id": "2222", "user_ids": wanted}, http=http
        )
        await wait_for(lambda: len(chunks()) == 3, what="the third chunk")
        third = chunks()[2]
        self.assertEqual(third["nonce"], result["nonce"])
        self.assertEqual([m["user"]["id"] for m in third["members"]], wanted)
        self.assertEqual([n for n, d in self.bot.member_requests], [0, 0])
        counters = public_json(relay.relay().snapshot())["counters"]
        self.assertEqual((counters["commands"], counters["answers"]), (3, 3))

    @deferred_test
    async def test_refused_over_http(self) -> None:
        """
        Over HTTP, a command that fails its checks is refused with the
        field, and one the bot's intents do not allow says which intent.
        """
        await self.start_discord()
        relay = await self.start_relay()
        bot = WebSocketBot()
        await bot.start()
        self.addCleanup(bot.stop)
        await self.register(relay, self.body(bot.url))
        with self.assertRaises(RegistrationError) as caught:
            await send_command(relay.base, "cookout", SECRET, 8, {"guild_id": "2222"}, http=http)
        self.assertEqual((caught.exception.code, caught.exception.field), (400, "/d"))
        with self.assertRaises(RegistrationError) as caught:
            await send_command(
                relay.base, "cookout", SECRET, 8,
                {"guild_id": "2222", "query": "", "limit": 0}, http=http,
            )
        self.assertIn("GUILD_MEMBERS", caught.exception.error)
        self.assertEqual(self.bot.member_requests, [])


class InteractionBot(WebSocketBot):
    """
    A websocket bot that answers every interaction it gets with
    :func:`dccrelay.client.answer_interaction` (acknowledging it once
    answered), through the simulator's REST API.
    """

    def __init__(self, api_base: str) -> None:
        super().__init__()
        self.api_base = api_base
        self.answered: list[str] = []
        self.errors: list[Exception] = []

    def _handle(self, payload: bytes) -> Deferred[None] | None:
        super()._handle(payload)
        event = orjson.loads(payload)
        if event["t"] != "INTERACTION_CREATE":
            return None
        answered = answer_interaction(
            event, {"content": "Chips are on me."}, http=http, api_base=self.api_base
        )

        def done(_: object) -> None:
            self.answered.append(event["d"]["id"])

        def failed(failure: Any) -> None:
            self.errors.append(failure.value)

        return answered.addCallbacks(done, failed)


def outcomes(sim: DiscordSimulator) -> dict[str, int]:
    return sim.interactions.summary()


class DeferredInteractionTests(Fixture):
    """
    deferInteractions: Discord's 3 s kept for a bot that takes longer to
    wake, and never spent on one that does not.
    """

    @deferred_test
    async def test_sleeping_bot_answers_through_deferral(self) -> None:
        """
        A bot that takes 5 s to wake still answers a slash command: the
        relay defers it after 2 s (so it never fails), the bot gets it
        marked as deferred once awake, and its answer replaces "thinking".
        """
        await self.start_discord()
        relay = await self.start_relay()
        bot = InteractionBot(self.sim.api_url)
        host, wake_url = await self.asleep(bot, boot_time=5.0)
        await self.register(
            relay,
            self.body(
                bot.url, delivery={"protocol": 2}, wakeUrl=wake_url, deferInteractions=True,
                criteria={"t": "INTERACTION_CREATE"},
            ),
        )
        payload = self.bot.interaction(name="cookout")
        interaction_id = orjson.loads(payload)["d"]["id"]
        await wait_for(lambda: bot.answered or bot.errors, timeout=30, what="the answer")
        self.assertEqual(bot.errors, [])
        record = self.sim.interactions.by_id[interaction_id]
        self.assertEqual(record.outcome, "deferred, then answered")
        self.assertEqual(record.answer_type, 5)
        self.assertTrue(str(record.answered_by).startswith("DiscordBot (dccrelay"))
        assert record.answered_at is not None
        self.assertLess(record.answered_at - record.created_at, 3.0)
        self.assertGreaterEqual(record.answered_at - record.created_at, 2.0)
        self.assertEqual(record.edits[0][2], {"content": "Chips are on me."})
        self.assertEqual(len(host.requests), 1)
        self.assertEqual(public_json(relay.relay().snapshot())["interactions"]["deferred"], 1)

    @deferred_test
    async def test_awake_bot_never_deferred(self) -> None:
        """
        A bot that answers within the deadline is never deferred: every
        slash command and button press is answered by the bot itself, and
        the relay calls no callback.
        """
        await self.start_discord()
        relay = await self.start_relay()
        bot = InteractionBot(self.sim.api_url)
        await bot.start()
        self.addCleanup(bot.stop)
        await self.register(
            relay,
            self.body(
                bot.url, delivery={"protocol": 2}, deferInteractions=True,
                criteria={"t": "INTERACTION_CREATE"},
            ),
        )
        for n in range(5):
            self.bot.interaction(kind=2 if n % 2 else 3)
            await sleep(0.3)
        await wait_for(lambda: len(bot.answered) == 5, what="five answers")
        await sleep(2.5)
        self.assertEqual(outcomes(self.sim), {"answered": 5})
        self.assertEqual(
            {str(r.answered_by).split(" (")[1].split(",")[0] for r in self.sim.interactions.all},
            {"dccrelay-client"},
        )
        counts = public_json(relay.relay().snapshot())["interactions"]
        self.assertEqual((counts["deferred"], counts["inTime"]), (0, 5))


class WakeEconomyRun(Fixture):
    """
    A bot that sleeps, takes 5 s to wake, and sleeps again, over a few
    rounds: the figures issue 10 asks for.  Set ``DCC_WAKING_REPORT`` to a
    file to get them as one JSON object.
    """

    timeout = 180
    rounds = 3

    @deferred_test
    async def test_bot_that_sleeps_5s(self) -> None:
        """
        Each round, while the bot sleeps: a slash command and two messages;
        once it is awake, two more interactions.  No interaction fails: the
        first of each round is deferred by the relay and answered by the
        bot once awake, the others are answered by the bot directly; typing
        shows while it sleeps; its wakeUrl is requested once per round.
        """
        await self.start_discord()
        relay = await self.start_relay("--idle-timeout", "2", "--wake-interval", "5")
        bot = InteractionBot(self.sim.api_url)
        host, wake_url = await self.asleep(bot, boot_time=5.0)
        await self.register(
            relay,
            self.body(
                bot.url, delivery={"protocol": 2}, wakeUrl=wake_url, deferInteractions=True,
                typingWhileWaking=True,
                criteria={
                    "$or": [
                        {"t": "INTERACTION_CREATE"},
                        {"t": "MESSAGE_CREATE", "d.content": {"$regex": "^cookout"}},
                    ]
                },
            ),
        )
        local = relay.relay()

        def status() -> dict[str, Any]:
            return public_json(local.snapshot())

        messages: list[bytes] = []
        typing_while_asleep = 0
        typing_after: list[float] = []
        for round_number in range(self.rounds):
            typed = len(self.sim.typing)
            asleep = [
                self.bot.interaction(name="cookout"),
                self.bot.message(f"cookout round {round_number}", channel_id="4242"),
                self.bot.message(f"cookout who brings chips {round_number}", channel_id="4242"),
            ]
            sent_at = reactor.seconds()
            messages += asleep[1:]
            await wait_for(lambda: len(self.sim.typing) > typed, what="typing")
            typing_after.append(round(reactor.seconds() - sent_at, 2))
            await wait_for(
                # (the interaction arrives marked as deferred: not as sent)
                lambda: set(asleep[1:]) <= set(bot.handled)
                and len(bot.answered) == 3 * round_number + 1,
                timeout=40,
                what=f"round {round_number}: the bot awake and answering",
            )
            typing_while_asleep = len(self.sim.typing)
            for n in range(2):
                self.bot.interaction(kind=3 if n else 2)
                await sleep(0.3)
            await wait_for(
                lambda: len(bot.answered) == 3 * round_number + 3, what="the awake answers"
            )
            # the platform scales the idle bot to zero
            await wait_for(
                lambda: status()["delivery"]["state"] == "idle", timeout=10,
                what="the idle connection closed",
            )
            await bot.stop()
            host.running = False
            await sleep(0.5)
            self.assertEqual(len(self.sim.typing), typing_while_asleep, "typing after waking")

        summary = outcomes(self.sim)
        self.assertEqual(bot.errors, [])
        # the person saw typing within a second of their message
        self.assertLess(max(typing_after), 1.0, typing_after)
        self.assertEqual(
            summary,
            {"deferred, then answered": self.rounds, "answered": 2 * self.rounds},
        )
        wake = status()["wake"]
        self.assertEqual(wake["wakeRequests"], self.rounds)
        self.assertGreater(wake["typingCalls"], 0)
        self.assertEqual(wake["deferredInteractions"], self.rounds)
        asleep_deliveries = wake["asleepDeliveries"]
        self.assertEqual(asleep_deliveries["count"], 3 * self.rounds)
        deferred = [r for r in self.sim.interactions.all if r.deferred]
        figures = {
            "rounds": self.rounds,
            "boot_time_s": host.boot_time,
            "interactions": len(self.sim.interactions.all),
            "failed": summary.get("failed", 0),
            "deferred_then_answered": summary.get("deferred, then answered", 0),
            "answered_directly": summary.get("answered", 0),
            "deferred_after_s": sorted(
                round(r.answered_at - r.created_at, 2) for r in deferred  # type: ignore[operator]
            ),
            "deferred_answer_after_s": sorted(
                round(r.edits[0][0] - r.created_at, 2) for r in deferred
            ),
            "asleep_deliveries": asleep_deliveries["count"],
            "wake_time_mean_s": round(
                asleep_deliveries["sumSeconds"] / asleep_deliveries["count"], 2
            ),
            "wake_time_max_s": asleep_deliveries["maxSeconds"],
            "wake_time_buckets": {
                le: n for le, n in asleep_deliveries["buckets"].items() if n
            },
            "wake_requests": wake["wakeRequests"],
            "typing_calls": wake["typingCalls"],
            "typing_shown_after_s": typing_after,
            "messages_delivered": sum(1 for m in messages if m in bot.handled),
        }
        report = os.environ.get("DCC_WAKING_REPORT")
        if report:
            with open(report, "w") as f:
                f.write(json.dumps(figures, indent=1) + "\n")
