"""
Loopback end-to-end tests: the real relay service, the Discord simulator and
a real bot receiver, over real websockets and HTTP on 127.0.0.1.
"""

from __future__ import annotations

from typing import Any

import orjson
from twisted.internet.defer import ensureDeferred
from twisted.trial.unittest import TestCase

from dccrelay.testing.codes import MESSAGE_CONTENT
from dccrelay.web.status_json import public_json
from tests.harness import (
    LOOPBACK,
    SECRET,
    BotReceiver,
    RelayProcess,
    next_item,
    tls_simulator,
    wait_for,
)

TOKEN = "MTExMTExMTExMTExMTExMTEx.Gg1234.simulated-token"
BOT_ID = "111111111111111111"
SAMPLE_CRITERIA = {
    "t": "MESSAGE_CREATE",
    "$not": {"d.author.bot": True},
    "$or": [
        {"d.guild_id": {"$exists": False}},
        {"d.mentions": {"$elemMatch": {"id": BOT_ID}}},
        {"d.content": {"$regex": "^cookout\\b"}},
    ],
}


def deferred_test(f: Any) -> Any:
    def run(self: Any) -> Any:
        return ensureDeferred(f(self))

    run.__name__ = f.__name__
    run.__doc__ = f.__doc__
    return run


class EndToEndTests(TestCase):
    """
    Dispatches travel from the simulated gateway through the relay to the
    bot's websocket.
    """

    timeout = 60

    async def start_everything(self, *relay_args: str) -> None:
        self.sim = tls_simulator()
        await self.sim.listen(LOOPBACK)
        self.addCleanup(self.sim.stop)
        self.bot = self.sim.add_bot(
            token=TOKEN, user_id=BOT_ID, privileged_intents=MESSAGE_CONTENT
        )
        self.receiver = BotReceiver()
        await self.receiver.start()
        self.addCleanup(self.receiver.stop)
        self.data_dir = self.mktemp()
        self.relay_args = relay_args
        self.relay = await self.start_relay()

    async def start_relay(self) -> RelayProcess:
        return await RelayProcess.started(
            self, self.data_dir, self.sim.api_url, *self.relay_args
        )

    def body(self, **changes: Any) -> dict[str, Any]:
        return {
            "token": TOKEN,
            "intents": 4608 | MESSAGE_CONTENT,
            "criteria": SAMPLE_CRITERIA,
            "dst": self.receiver.url,
            "clientSecret": SECRET,
            **changes,
        }

    async def register_and_wait_ready(self) -> None:
        code, answer = await self.relay.register(self.body())
        self.assertEqual(code, 201, answer)
        await self.wait_relay_ready()

    async def wait_relay_ready(self) -> None:
        """
        Wait until the relay, not just the simulator, has seen READY or
        RESUMED.
        """
        await self.bot.wait_for_ready()
        await wait_for(
            lambda: [s.state for s in self.relay.relay().shards] == ["ready"],
            what="the relay's shard to be ready",
        )

    async def restart_with_message_while_down(self) -> bytes:
        """
        Stop the relay, send a matching message while it is down, start it
        again: the message reaches the bot.  Returns the message.
        """
        await self.relay.stop()
        await self.bot.wait_for_disconnect()
        during = self.bot.message("cookout during")
        self.relay = await self.start_relay()
        self.assertEqual(await next_item(self.receiver.queue), during)
        await self.wait_relay_ready()
        return during

    @deferred_test
    async def test_message_reaches_bot_byte_identical(self) -> None:
        """
        A matching MESSAGE_CREATE reaches the bot as the exact bytes the
        gateway sent; one from another bot and a non-matching message do
        not.
        """
        await self.start_everything()
        await self.register_and_wait_ready()
        ignored_bot = self.bot.message("cookout bring buns", author_bot=True)
        ignored_chatter = self.bot.message("just chatting")
        wanted = self.bot.message("cookout bring buns")
        self.assertEqual(await next_item(self.receiver.queue), wanted)
        dm = self.bot.message("hello there", guild_id=None)
        self.assertEqual(await next_item(self.receiver.queue), dm)
        self.assertEqual(self.receiver.received, [wanted, dm])
        self.assertNotIn(ignored_bot, self.receiver.received)
        self.assertNotIn(ignored_chatter, self.receiver.received)
        counters = public_json(self.relay.relay().snapshot())["counters"]
        self.assertEqual(counters["received"], 4)
        self.assertEqual(counters["matched"], 2)
        self.assertEqual(self.bot.identifies, 1)

    @deferred_test
    async def test_bot_offline_then_back(self) -> None:
        """
        While the bot is down, matching dispatches wait; when it comes back
        they are all delivered in order, without another dispatch to push
        them.
        """
        await self.start_everything()
        port = self.receiver.port_number
        await self.receiver.stop()
        await self.register_and_wait_ready()
        sent = [self.bot.message(f"cookout item {i}") for i in range(5)]
        relay = self.relay.relay()
        await wait_for(lambda: public_json(relay.snapshot())["queued"] == 5, what="5 queued")
        await wait_for(
            lambda: public_json(relay.snapshot())["lastDeliveryError"], what="a delivery error"
        )
        await self.receiver.start(port)
        for expected in sent:
            self.assertEqual(await next_item(self.receiver.queue, timeout=20), expected)

    @deferred_test
    async def test_idle_close(self) -> None:
        """
        The relay closes the bot's connection after the idle timeout, and
        opens a new one for the next dispatch.
        """
        await self.start_everything("--idle-timeout", "0.5")
        await self.register_and_wait_ready()
        self.bot.message("cookout one")
        await next_item(self.receiver.queue)
        self.assertEqual(self.receiver.open_now, 1)
        await wait_for(lambda: self.receiver.open_now == 0, what="idle close")
        self.bot.message("cookout two")
        await next_item(self.receiver.queue)
        self.assertEqual(self.receiver.opened, 2)

    @deferred_test
    async def test_relay_restart_resumes_from_store(self) -> None:
        """
        A relay restarted on the same data directory reconnects the bot from
        its store and RESUMEs the Discord session: dispatches sent while it
        was down reach the bot, and there is no second IDENTIFY.
        """
        await self.start_everything()
        await self.register_and_wait_ready()
        first = self.bot.message("cookout before")
        self.assertEqual(await next_item(self.receiver.queue), first)
        during = await self.restart_with_message_while_down()
        after = self.bot.message("cookout after")
        self.assertEqual(await next_item(self.receiver.queue), after)
        self.assertEqual((self.bot.identifies, self.bot.resumes), (1, 1))
        self.assertEqual(self.receiver.received, [first, during, after])

    @deferred_test
    async def test_other_types_pass_and_resume_after_them(self) -> None:
        """
        Dispatches of a type the criteria cannot match (typing) are passed
        over unparsed yet counted, and the session resumes after the last of
        them: a restarted relay is replayed only what came while it was down.
        """
        await self.start_everything()
        await self.register_and_wait_ready()
        typing = {"channel_id": "1180000000000000001", "user_id": "2", "timestamp": 1}
        first = self.bot.message("cookout before")
        self.bot.dispatch("TYPING_START", typing)
        last_seq = orjson.loads(self.bot.dispatch("TYPING_START", typing))["s"]
        self.assertEqual(await next_item(self.receiver.queue), first)
        await wait_for(
            lambda: self.relay.relay().shards[0].seq == last_seq, what="the typing's seq"
        )
        counters = public_json(self.relay.relay().snapshot())["counters"]
        self.assertEqual((counters["received"], counters["matched"]), (3, 1))
        during = await self.restart_with_message_while_down()
        counters = public_json(self.relay.relay().snapshot())["counters"]
        self.assertEqual(counters["received"], 1)
        self.assertEqual(self.receiver.received, [first, during])

    @deferred_test
    async def test_dropped_gateway_connection_resumes(self) -> None:
        """
        When Discord drops the connection, the relay resumes on
        resume_gateway_url and nothing sent meanwhile is lost.
        """
        await self.start_everything()
        await self.register_and_wait_ready()
        self.bot.connections[-1].drop()
        await self.bot.wait_for_disconnect()
        missed = self.bot.message("cookout while away")
        self.assertEqual(await next_item(self.receiver.queue, timeout=20), missed)
        self.assertEqual((self.bot.identifies, self.bot.resumes), (1, 1))
        self.assertIn(("connect", "resume"), self.sim.events)

    @deferred_test
    async def test_fatal_close_disables(self) -> None:
        """
        Discord closing with 4014 disables the bot with a reason its author
        can act on, shown in its status.
        """
        await self.start_everything()
        await self.register_and_wait_ready()
        self.bot.connections[-1].close(4014)
        relay = self.relay.relay()
        await wait_for(lambda: not relay.enabled, what="the bot to be disabled")
        code, status = await self.relay.request("GET", "/relays/cookout", secret=SECRET)
        self.assertEqual(code, 200)
        self.assertFalse(status["enabled"])
        self.assertIn("4014", status["lastDisableReason"])
        self.assertIn("Developer Portal", status["lastDisableReason"])

    @deferred_test
    async def test_wrong_secret_and_bad_criteria(self) -> None:
        """
        Over real HTTP: updating with the wrong secret is 401; bad criteria
        are 400 naming the field.
        """
        await self.start_everything()
        await self.register_and_wait_ready()
        code, answer = await self.relay.register(self.body(), secret="admin:wrong-secret")
        self.assertEqual(code, 401)
        code, answer = await self.relay.register(
            self.body(criteria={"$where": "this.evil()"}), alias="other"
        )
        self.assertEqual(code, 400)
        self.assertTrue(answer["field"].startswith("/criteria"))
