"""
An unmodified hikari bot (tests/framework_bots/hikari_bot.py) behind the
real relay, run by ``dccrelay-bot``, against the Discord simulator: over
signed webhooks and over websocket v2.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, ensureDeferred

from tests.framework_harness import FrameworkCase
from tests.harness import SECRET

SPEC = "tests.framework_bots.hikari_bot:bot"


class HikariBehaviour:
    """What the bot does, whichever delivery brings its dispatches."""

    delivery = "webhook"

    def test_bot(self: FrameworkCase) -> Deferred[None]:  # type: ignore[misc]
        """
        A message listener answers; it sees the guild and the channel in
        hikari's cache; ``update_presence`` and ``request_guild_members`` go
        through the relay and the member chunk comes back to a
        ``wait_for``; a listener waiting for the person's next message gets
        it; a slash command is answered directly; one slower than the
        relay's --defer-after, which the bot claimed from the relay on
        arrival, is deferred by the bot itself (the relay does not, so the
        callback gets one answer) and then answered by editing the original
        response.
        """
        return ensureDeferred(self._bot())

    async def _bot(self: FrameworkCase) -> None:  # type: ignore[misc]
        await self.start_world()
        bot = await self.start_bot(SPEC, "--register", "--delivery", self.delivery)  # type: ignore[attr-defined]
        self.assertEqual(await self.reply_to("hk.ping", bot), "Pong!")
        self.assertEqual(await self.reply_to("hk.where", bot), "in guild 2222, #general")
        self.assertEqual(await self.reply_to("hk.status grilling", bot), "status set")
        presence = self.simulated.presences[0]
        self.assertEqual(presence["status"], "idle")
        self.assertEqual(
            [(a["name"], a["type"]) for a in presence["activities"]], [("grilling", 0)]
        )
        self.assertEqual(
            await self.reply_to("hk.members member", bot), "found 3: member0, member1, member2"
        )
        self.assertEqual(await self.reply_to("hk.guess", bot), "Guess a number between 1 and 10.")
        self.assertEqual(await self.reply_to("7", bot), "You guessed 7.")

        quick = self.interaction("chips")
        await self.until(lambda: quick.answer_type is not None, bot, "the answer to /chips")
        self.assertEqual(quick.answer_type, 4)
        self.assertEqual(quick.answer["data"]["content"], "Chips are on me.")

        slow = self.interaction("slowchips")
        await self.until(lambda: slow.edits, bot, "the answer to /slowchips")
        # claimed from the relay, so deferred by the bot itself, not the relay
        self.assertEqual(slow.answer_type, 5)
        self.assertNotIn("dccrelay", slow.answered_by)
        self.assertEqual(slow.edits[0][2]["content"], "Slow chips are on me.")
        _, status = await self.relay.request("GET", f"/relays/{self.alias}", secret=SECRET)
        self.assertEqual(status["interactions"]["deferred"], 0)


class HikariWebhookTests(HikariBehaviour, FrameworkCase):
    """Over signed webhooks."""


class HikariWebsocketTests(HikariBehaviour, FrameworkCase):
    """Over websocket v2."""

    delivery = "v2"
