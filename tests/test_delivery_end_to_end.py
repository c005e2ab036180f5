"""
Loopback end-to-end tests of delivery, for every mode (websocket v1,
websocket v2, webhook) under the faults a sleeping bot meets: the bot down
for a while, the relay killed with SIGKILL mid-stream and restarted, a
webhook answering 500s, a bad signature; and the typing indicator while the
bot wakes.

Everything is real: the relay (in this process, or ``twistd dcc`` as a
subprocess for SIGKILL), the Discord simulator, and bots built on
``dccrelay.client``'s receiver or checked with the Standard Webhooks
reference verifier.  Each test counts what the simulator sent and what
reached the bot (see :func:`tests.delivery_harness.report`; set
``DCC_DELIVERY_REPORT`` to a file to collect the counts).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

import dccrelay
from dccrelay.tap import STORE_FILE
from dccrelay.testing.codes import MESSAGE_CONTENT
from dccrelay.waking.typing import INTERVAL
from dccrelay.web.status_json import public_json
from tests.delivery_harness import WebhookBot, WebSocketBot, first_arrivals, report
from tests.harness import LOOPBACK, SECRET, RelayProcess, tls_simulator, wait_for
from tests.twistd_process import TwistdProcess, put_relay, run_relay, serving

TOKEN = "MzMzMzMzMzMzMzMzMzMzMzMz.Gg1234.delivery-token"
BOT_ID = "333333333333333333"
CRITERIA = {"t": "MESSAGE_CREATE", "d.content": {"$regex": "^cookout"}}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(dccrelay.__file__)))
TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")


def deferred_test(f: Any) -> Any:
    def run(self: Any) -> Deferred[None]:
        return ensureDeferred(f(self))

    run.__name__ = f.__name__
    run.__doc__ = f.__doc__
    return run


def make_bot(mode: str, **options: Any) -> WebSocketBot | WebhookBot:
    if mode == "webhook":
        return WebhookBot(**options)
    return WebSocketBot(**options)


def delivery(mode: str) -> dict[str, Any]:
    return {"delivery": {"protocol": 2}} if mode == "v2" else {}


class Fixture(TestCase):
    timeout = 40

    async def start_discord(self) -> None:
        self.sim = tls_simulator()
        await self.sim.listen(LOOPBACK)
        self.addCleanup(self.sim.stop)
        self.bot = self.sim.add_bot(
            token=TOKEN, user_id=BOT_ID, privileged_intents=MESSAGE_CONTENT
        )
        self.data_dir = self.mktemp()

    async def start_bot(self, bot: WebSocketBot | WebhookBot, port: int = 0) -> None:
        await bot.start(port)
        self.addCleanup(bot.stop)

    def body(self, dst: str, **changes: Any) -> dict[str, Any]:
        return {
            "token": TOKEN,
            "intents": 4608 | MESSAGE_CONTENT,
            "criteria": CRITERIA,
            "dst": dst,
            "clientSecret": SECRET,
            **changes,
        }


class DeliveryEndToEndTests(Fixture):
    """
    The relay in this process, with every delivery mode.
    """

    async def start_relay(self) -> RelayProcess:
        return await RelayProcess.started(self, self.data_dir, self.sim.api_url)

    async def register(self, relay: RelayProcess, body: dict[str, Any]) -> None:
        code, answer = await relay.register(body)
        self.assertEqual(code, 201, answer)
        await self.bot.wait_for_ready()
        await wait_for(
            lambda: [s.state for s in relay.relay().shards] == ["ready"],
            what="the relay's shard to be ready",
        )

    async def bot_down_then_up(self, mode: str) -> None:
        await self.start_discord()
        relay = await self.start_relay()
        bot = make_bot(mode)
        await bot.start()
        port = bot.port_number
        await bot.stop()
        await self.register(relay, self.body(bot.url, **delivery(mode)))
        sent = [self.bot.message(f"cookout while asleep {i}") for i in range(10)]
        local = relay.relay()

        def status() -> dict[str, Any]:
            return public_json(local.snapshot())

        await wait_for(lambda: status()["queued"] == 10, what="10 queued")
        await wait_for(lambda: status()["lastDeliveryError"], what="a delivery error")
        await deferLater(reactor, 0.5, lambda: None)
        await self.start_bot(bot, port)
        sent.append(self.bot.message("cookout after waking"))
        await wait_for(lambda: set(sent) <= set(bot.wire), timeout=15, what="everything")
        counts = report(mode, "bot down, then up", sent, bot.wire)
        self.assertEqual(first_arrivals(bot.wire), sent)
        self.assertEqual((counts["lost"], counts["duplicated"]), (0, 0))
        await wait_for(lambda: status()["queued"] == 0, what="the queue to empty")
        self.assertEqual(status()["counters"]["delivered"], 11)

    @deferred_test
    async def test_v1_bot_down_then_up(self) -> None:
        """
        v1: dispatches wait while the bot is down and all arrive, in order,
        once it is back.
        """
        await self.bot_down_then_up("v1")

    @deferred_test
    async def test_v2_bot_down_then_up(self) -> None:
        """
        v2: the same, from the durable outbox.
        """
        await self.bot_down_then_up("v2")

    @deferred_test
    async def test_webhook_bot_down_then_up(self) -> None:
        """
        Webhook: the same; the refused POSTs are retried with backoff.
        """
        await self.bot_down_then_up("webhook")

    @deferred_test
    async def test_webhook_500s_then_200(self) -> None:
        """
        A webhook that answers 500 twice gets the same batch (same
        webhook-id, same body) until it answers 2xx; later dispatches follow
        in order, nothing lost or repeated.
        """
        await self.start_discord()
        relay = await self.start_relay()
        bot = WebhookBot()
        bot.script = [500, 500]
        await self.start_bot(bot)
        await self.register(relay, self.body(bot.url))
        sent = [self.bot.message("cookout first")]
        await wait_for(lambda: len(bot.codes) >= 1, what="the first POST")
        sent += [self.bot.message(f"cookout then {i}") for i in range(5)]
        await wait_for(lambda: set(sent) <= set(bot.wire), timeout=15, what="everything")
        self.assertEqual(bot.codes[:3], [500, 500, 204])
        self.assertEqual(len({r["webhook-id"] for r in bot.requests[:3]}), 1)
        self.assertEqual(bot.rejected, [])
        counts = report("webhook", "500, 500, then 2xx", sent, bot.wire)
        self.assertEqual(first_arrivals(bot.wire), sent)
        self.assertEqual((counts["lost"], counts["duplicated"]), (0, 0))
        local = relay.relay()

        def status() -> dict[str, Any]:
            return public_json(local.snapshot())

        await wait_for(lambda: status()["counters"]["delivered"] == 6, what="the last 2xx")

    @deferred_test
    async def test_webhook_bad_signature(self) -> None:
        """
        A bot that verifies with another secret refuses every batch (the
        reference verifier finds no matching signature): nothing is taken,
        the relay shows the bot's answer and keeps the dispatch.
        """
        await self.start_discord()
        relay = await self.start_relay()
        bot = WebhookBot(secret="admin:not-the-registered-secret")
        await self.start_bot(bot)
        await self.register(relay, self.body(bot.url))
        self.bot.message("cookout signed")
        await wait_for(lambda: bot.rejected, what="a rejected POST")
        self.assertEqual(bot.rejected[0], "No matching signature found")
        self.assertEqual(bot.wire, [])
        local = relay.relay()

        def status() -> dict[str, Any]:
            return public_json(local.snapshot())

        await wait_for(lambda: status()["lastDeliveryError"], what="the error in status")
        self.assertEqual(status()["lastDeliveryError"], "the bot answered HTTP 401")
        self.assertEqual(status()["queued"], 1)

    @deferred_test
    async def test_webhook_gone_disables(self) -> None:
        """
        A webhook answering 410 disables the bot with a reason; a new PUT
        re-enables it and the dispatch kept meanwhile is delivered.
        """
        await self.start_discord()
        relay = await self.start_relay()
        bot = WebhookBot()
        bot.script = [410]
        await self.start_bot(bot)
        await self.register(relay, self.body(bot.url))
        sent = [self.bot.message("cookout gone")]
        await wait_for(lambda: not relay.relay().enabled, what="the bot disabled")
        self.assertIn("410", public_json(relay.relay().snapshot())["lastDisableReason"])
        code, _ = await relay.register(self.body(bot.url), secret=SECRET)
        self.assertEqual(code, 200)
        await wait_for(lambda: set(sent) <= set(bot.wire), timeout=15, what="the kept dispatch")
        local = relay.relay()

        def status() -> dict[str, Any]:
            return public_json(local.snapshot())

        await wait_for(lambda: status()["queued"] == 0, what="the 2xx")

    @deferred_test
    async def test_typing_while_waking(self) -> None:
        """
        With typingWhileWaking, Discord's typing indicator is triggered in
        the message's channel while the bot is asleep, and no more once the
        message reached it, nor for messages to the awake bot.
        """
        await self.start_discord()
        relay = await self.start_relay()
        bot = WebSocketBot()
        await bot.start()
        port = bot.port_number
        await bot.stop()
        await self.register(
            relay, self.body(bot.url, typingWhileWaking=True, **delivery("v2"))
        )
        first = self.bot.message("cookout wake up", channel_id="4242")
        await wait_for(lambda: self.sim.typing, timeout=5, what="typing")
        self.assertEqual({channel for _, channel in self.sim.typing}, {"4242"})
        self.assertEqual({token for token, _ in self.sim.typing}, {TOKEN})
        await self.start_bot(bot, port)
        await wait_for(lambda: first in bot.wire, timeout=15, what="the message")
        typed = len(self.sim.typing)
        second = self.bot.message("cookout you are awake", channel_id="4343")
        await wait_for(lambda: second in bot.wire, what="the second message")
        # past the next typing interval of the first message
        await deferLater(reactor, INTERVAL + 1.0, lambda: None)
        self.assertEqual(len(self.sim.typing), typed)


class KilledRelayTests(Fixture):
    """
    ``twistd dcc`` killed with SIGKILL in the middle of a stream of
    dispatches, then started again on the same data directory.
    """

    timeout = 60

    def spawn(self) -> TwistdProcess:
        return run_relay(self, self.sim.api_url, "--data-dir", self.data_dir)

    async def put(self, port: int, body: dict[str, Any]) -> int:
        return await put_relay(port, body)

    def outbox_ids(self) -> set[int]:
        """
        The ids in the outbox on disk (the relay is dead): what it had not
        seen acknowledged.
        """
        path = os.path.join(self.data_dir, STORE_FILE)
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return {row[0] for row in connection.execute("SELECT id FROM outbox")}
        finally:
            connection.close()

    async def killed_mid_stream(self, mode: str) -> None:
        await self.start_discord()
        if mode == "webhook":
            bot: WebSocketBot | WebhookBot = WebhookBot()
            # answers a little late, so a batch is in flight at the kill
            bot.response_delay = 0.05
        else:
            bot = WebSocketBot(handle_delay=0.05)
        await self.start_bot(bot)
        first = self.spawn()
        port = await serving(first)
        self.assertEqual(await self.put(port, self.body(bot.url, **delivery(mode))), 201)
        await self.bot.wait_for_ready()
        sent = []
        for i in range(20):
            sent.append(self.bot.message(f"cookout stream {i}"))
            await deferLater(reactor, 0.02, lambda: None)
        await wait_for(lambda: len(bot.wire) >= 5, what="the stream to reach the bot")
        first.transport.signalProcess("KILL")
        await first.ended
        await self.bot.wait_for_disconnect()
        unacked = self.outbox_ids() if mode != "v1" else set()
        for i in range(10):
            sent.append(self.bot.message(f"cookout while dead {i}"))
        second = self.spawn()
        await wait_for(lambda: set(sent) <= set(bot.wire), timeout=30, what="everything")
        # a moment for stray duplicates to show
        await deferLater(reactor, 0.5, lambda: None)
        counts = report(mode, "relay SIGKILLed mid-stream, restarted", sent, bot.wire)
        self.assertEqual(counts["lost"], 0)
        self.assertEqual(first_arrivals(bot.wire), sent)
        self.assertNotIn(b"Traceback", first.output + second.output)
        if mode != "v1":
            # Every payload that came twice came under one id, which was in
            # the outbox, unacknowledged, when the relay died.
            ids_of: dict[bytes, set[int]] = {}
            for payload, entry_id in zip(bot.wire, bot.wire_ids):
                ids_of.setdefault(payload, set()).add(entry_id)
            repeated = [p for p in ids_of if bot.wire.count(p) > 1]
            for payload in repeated:
                self.assertEqual(len(ids_of[payload]), 1, payload)
                self.assertLessEqual(ids_of[payload], unacked)
        second.transport.signalProcess("TERM")
        await second.ended

    @deferred_test
    async def test_v1_killed(self) -> None:
        """
        v1: what Discord can replay after the restart arrives; the counts
        say how many came twice.
        """
        await self.killed_mid_stream("v1")

    @deferred_test
    async def test_v2_killed(self) -> None:
        """
        v2: nothing is lost, order is kept, and the only repeats are ids
        that were unacknowledged in the outbox when the relay died.
        """
        await self.killed_mid_stream("v2")

    @deferred_test
    async def test_webhook_killed(self) -> None:
        """
        Webhook: the same.
        """
        await self.killed_mid_stream("webhook")

    @deferred_test
    async def test_webhook_killed_same_webhook_id(self) -> None:
        """
        Webhook, 200 dispatches, the relay killed after the bot took about
        100: every dispatch arrives, and one that arrives twice comes
        under the same webhook-id (and id) both times, although the batch
        was sent again by another relay with more entries waiting: a
        Standard Webhooks receiver drops it as a duplicate.
        """
        await self.start_discord()
        bot = WebhookBot()
        # answers late, so that a batch is in flight at the kill
        bot.response_delay = 0.3
        await self.start_bot(bot)
        first = self.spawn()
        port = await serving(first)
        self.assertEqual(await self.put(port, self.body(bot.url)), 201)
        await self.bot.wait_for_ready()

        def kill() -> None:
            if not first.ended.called:
                first.transport.signalProcess("KILL")

        def kill_after_100() -> None:
            # The bot has taken this batch; the relay dies before the answer,
            # once the dispatches that came meanwhile wait behind it (they
            # would make a larger batch).
            if len(bot.wire) >= 100:
                bot.on_request = None
                reactor.callLater(0.2, kill)

        bot.on_request = kill_after_100
        sent = []
        for i in range(200):
            # Discord keeps those sent while the relay is dead for RESUME.
            sent.append(self.bot.message(f"cookout burst {i}"))
            await deferLater(reactor, 0.005, lambda: None)
        await first.ended
        second = self.spawn()
        await wait_for(lambda: set(sent) <= set(bot.wire), timeout=30, what="everything")
        await deferLater(reactor, 0.5, lambda: None)
        counts = report("webhook", "200 dispatches, SIGKILL after ~100", sent, bot.wire)
        print(f"\nwebhook SIGKILL after ~100 of 200: {counts}", file=sys.stderr)
        self.assertEqual(counts["lost"], 0)
        # The batch the bot took as the relay died came again.
        self.assertGreater(counts["duplicated"], 0)
        under: dict[bytes, set[tuple[str, int]]] = {}
        for payload, webhook_id, entry_id in zip(bot.wire, bot.wire_webhook_ids, bot.wire_ids):
            under.setdefault(payload, set()).add((webhook_id, entry_id))
        twice = {payload: ids for payload, ids in under.items() if bot.wire.count(payload) > 1}
        under_two = [p for p, ids in twice.items() if len({w for w, _ in ids}) > 1]
        print(f"came twice under two webhook-ids: {len(under_two)}", file=sys.stderr)
        for payload, ids in twice.items():
            self.assertEqual(len(ids), 1, (payload, ids))
        second.transport.signalProcess("TERM")
        await second.ended
