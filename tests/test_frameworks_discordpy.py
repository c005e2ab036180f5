"""
An unmodified discord.py bot (tests/framework_bots/discordpy_bot.py) behind
the real relay, run by ``dccrelay-bot``, against the Discord simulator:
over signed webhooks and over websocket v2.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred

from tests.framework_harness import FrameworkCase, free_port
from tests.harness import SECRET, wait_for

SPEC = "tests.framework_bots.discordpy_bot:bot"


class DiscordPyBehaviour:
    """What the bot does, whichever delivery brings its dispatches."""

    delivery = "webhook"

    def test_bot(self: FrameworkCase) -> Deferred[None]:  # type: ignore[misc]
        """
        The constructor's activity becomes the bot's presence; prefix
        commands in a cog answer; a guild-only command with a permission
        check sees the guild, its channel and the person's permissions (and
        a command needing a permission the person lacks is refused); a
        presence change and a member query go through the relay; a command
        waiting for the person's next message (``wait_for``) gets it;
        ``on_ready`` came and ``is_ready()`` is true; a
        slash command is answered directly; one slower than the relay's
        --defer-after, which the bot claimed from the relay on arrival, is
        deferred by the bot itself (the relay does not, so the callback gets
        one answer) and then answered by editing the original response.
        """
        return ensureDeferred(self._bot())

    async def _bot(self: FrameworkCase) -> None:  # type: ignore[misc]
        await self.start_world()
        bot = await self.start_bot(SPEC, "--register", "--delivery", self.delivery)  # type: ignore[attr-defined]
        await wait_for(lambda: self.simulated.presences.get(0), what="the first presence")
        self.assertEqual(
            self.simulated.presences[0]["activities"], [{"name": "cookout", "type": 0}]
        )
        self.assertEqual(await self.reply_to("!bring buns", bot), "Thanks for the buns!")
        self.assertEqual(await self.reply_to("!where", bot), "in guild 2222, #general")
        self.assertEqual(await self.reply_to("!purge", bot), "refused: MissingPermissions")
        self.assertEqual(await self.reply_to("!status grilling", bot), "status set")
        self.assertEqual(
            (self.simulated.presences[0]["status"], self.simulated.presences[0]["activities"]),
            ("idle", [{"name": "grilling", "type": 0}]),
        )
        self.assertEqual(
            await self.reply_to("!members member", bot), "found 3: member0, member1, member2"
        )
        self.assertEqual(await self.reply_to("!guess", bot), "Guess a number between 1 and 10.")
        self.assertEqual(await self.reply_to("7", bot), "You guessed 7.")
        self.assertEqual(await self.reply_to("!ready", bot), "ready: True, on_ready seen: True")

        quick = self.interaction("chips")
        await wait_for(lambda: quick.answer_type is not None, what="the answer to /chips")
        self.assertEqual(quick.answer_type, 4)
        self.assertEqual(quick.answer["data"]["content"], "Chips are on me.")
        self.assertNotIn("dccrelay", quick.answered_by)

        slow = self.interaction("slowchips")
        await self.until(lambda: slow.edits, bot, "the answer to /slowchips")
        # claimed from the relay, so deferred by the bot itself, not the relay
        self.assertEqual(slow.answer_type, 5)
        self.assertNotIn("dccrelay", slow.answered_by)
        self.assertEqual(slow.edits[0][2]["content"], "Slow chips are on me.")
        _, status = await self.relay.request("GET", f"/relays/{self.alias}", secret=SECRET)
        self.assertEqual(status["interactions"]["deferred"], 0)
        self.assertEqual(slow.outcome, "deferred, then answered")


class DiscordPyWebhookTests(DiscordPyBehaviour, FrameworkCase):
    """Over signed webhooks."""


class DiscordPyWebsocketTests(DiscordPyBehaviour, FrameworkCase):
    """Over websocket v2."""

    delivery = "v2"


class DiscordPySleepingTests(FrameworkCase):
    """A slash command used while the bot is not running."""

    def test_deferred_while_asleep(self) -> Deferred[None]:
        """
        The relay defers a slash command for a bot that is not running;
        once ``dccrelay-bot`` starts and gets the marked dispatch, the
        bot's unchanged ``response.send_message`` edits the original
        response instead of calling the callback a second time.
        """
        return ensureDeferred(self._asleep())

    async def _asleep(self) -> None:
        await self.start_world()
        port = free_port()
        status, _ = await self.relay.register(
            {
                "token": self.token,
                "intents": 33281,
                "criteria": {"t": "INTERACTION_CREATE"},
                "dst": f"http://127.0.0.1:{port}/",
                "clientSecret": SECRET,
                "deferInteractions": True,
            },
            alias=self.alias,
        )
        self.assertIn(status, (200, 201))
        await self.simulated.wait_for_ready().addTimeout(30, reactor)
        asleep = self.interaction("chips")
        await wait_for(lambda: asleep.answer_type == 5, what="the relay's deferral")
        await self.start_bot(SPEC, port=port)
        await wait_for(lambda: asleep.edits, timeout=30, what="the bot's answer")
        self.assertEqual(asleep.edits[0][2]["content"], "Chips are on me.")
        self.assertEqual(asleep.outcome, "deferred, then answered")
