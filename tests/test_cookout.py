"""
Tests for the cookout example bot (``examples/cookout``): its commands, its
data model on disk, its criteria, its page, and its replies through the
Discord simulator's REST API (over ``StubTreq``).
"""

from __future__ import annotations

import json
import os
from typing import Any

from treq.testing import StubTreq
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from dccrelay.filters import compile_criteria
from dccrelay.testing import objects
from dccrelay.testing.codes import MESSAGE_CONTENT
from dccrelay.testing.rest import DiscordAPI
from dccrelay.testing.simulator import DiscordSimulator
from examples.cookout.bot import CookoutBot, CookoutConfig, cookout_criteria
from examples.cookout.commands import reply_to
from examples.cookout.discord import DiscordError, DiscordREST
from examples.cookout.model import ITEMS, Assignments
from examples.cookout.web import covered_text

BOT_ID = "111111111111111111"
ALICE = "4444"
BOB = "5555"
TOKEN = "MTEx.Gg.cookout-token"


def dispatch(
    content: str,
    *,
    author_id: str = ALICE,
    bot: bool = False,
    guild_id: str | None = "2222",
    mentions: tuple[str, ...] = (),
    t: str = "MESSAGE_CREATE",
) -> dict[str, Any]:
    """
    A gateway payload as Discord (and the relay) sends it.
    """
    d = objects.message(
        message_id="9999",
        channel_id="3333",
        guild_id=guild_id,
        author=objects.user(author_id, "someone", bot=bot),
        content=content,
        now=1_700_000_000.0,
        mentions=[objects.user(m, "mentioned", bot=m == BOT_ID) for m in mentions],
    )
    return {"op": 0, "t": t, "s": 5, "d": d}


class AssignmentsTests(SynchronousTestCase):
    """
    The data model is saved as it changes and read back at start-up.
    """

    def setUp(self) -> None:
        self.data_dir = self.mktemp()

    def test_starts_empty(self) -> None:
        """
        A new data directory is created, owner-only, with nobody bringing
        anything; the items are the tutorial's, in its order.
        """
        assignments = Assignments(self.data_dir)
        self.assertEqual(list(assignments), [(item, None) for item in ITEMS])
        self.assertEqual(ITEMS, ("plates", "hamburgers", "hot dogs", "buns", "drinks"))
        self.assertEqual(os.stat(self.data_dir).st_mode & 0o777, 0o700)

    def test_survives_restart(self) -> None:
        """
        A volunteer recorded before a restart is there after it, one file
        per item holding the user id.
        """
        Assignments(self.data_dir).assign("hot dogs", ALICE)
        self.assertEqual(Assignments(self.data_dir).volunteer("hot dogs"), ALICE)
        with open(os.path.join(self.data_dir, "hot dogs"), encoding="utf-8") as f:
            self.assertEqual(f.read(), ALICE)
        self.assertEqual(sorted(os.listdir(self.data_dir)), ["hot dogs"])

    def test_unassign_removes_file(self) -> None:
        """
        Nobody bringing an item is no file; removing a missing one is fine.
        """
        assignments = Assignments(self.data_dir)
        assignments.assign("buns", ALICE)
        assignments.assign("buns", None)
        assignments.assign("plates", None)
        self.assertEqual(os.listdir(self.data_dir), [])
        self.assertIsNone(Assignments(self.data_dir).volunteer("buns"))

    def test_unknown_item(self) -> None:
        """
        Only tracked items can be assigned.
        """
        with self.assertRaises(KeyError):
            Assignments(self.data_dir).assign("pickles", ALICE)


class CommandTests(SynchronousTestCase):
    """
    The tutorial's commands, and ``bring <item>`` for short.
    """

    def setUp(self) -> None:
        self.assignments = Assignments(self.mktemp())

    def say(self, content: str, author: str = ALICE) -> str:
        return reply_to(content, author, self.assignments, "https://cookout.example/")

    def test_help(self) -> None:
        """
        ``help`` lists the commands, the items and the page.
        """
        answer = self.say("cookout help")
        for text in ("cookout I'll bring <item>", "cookout I can't bring <item>",
                     "cookout who's bringing <item>", "hot dogs", "https://cookout.example/"):
            self.assertIn(text, answer)
        self.assertNotIn("See what's covered", reply_to("cookout help", ALICE, self.assignments))

    def test_bring(self) -> None:
        """
        ``bring buns`` and ``I'll bring hot dogs`` (any case, straight or
        curly apostrophe) sign the author up.
        """
        self.assertIn("you're bringing buns", self.say("cookout bring buns"))
        self.assertIn("hot dogs", self.say("cookout I\u2019ll bring Hot Dogs"))
        self.assertIn("drinks", self.say("<@111> ill bring drinks!"))
        self.assertEqual(self.assignments.volunteer("buns"), ALICE)
        self.assertEqual(self.assignments.volunteer("hot dogs"), ALICE)
        self.assertEqual(self.assignments.volunteer("drinks"), ALICE)

    def test_bring_again(self) -> None:
        """
        Signing up twice for the same item says so.
        """
        self.say("cookout I'll bring plates")
        self.assertIn("already bringing plates", self.say("cookout I'll bring plates"))

    def test_bring_takes_over(self) -> None:
        """
        Taking over an item tells the previous volunteer, by mention.
        """
        self.say("cookout bring buns", BOB)
        answer = self.say("cookout bring buns", ALICE)
        self.assertIn(f"<@{BOB}>, <@{ALICE}> is bringing buns now", answer)
        self.assertEqual(self.assignments.volunteer("buns"), ALICE)

    def test_bring_unknown(self) -> None:
        """
        An item that is not tracked changes nothing.
        """
        self.assertIn("not tracking pickles", self.say("cookout bring pickles"))
        self.assertEqual([v for _, v in self.assignments], [None] * len(ITEMS))

    def test_cant_bring(self) -> None:
        """
        ``I can't bring`` frees one's own item, and is not taken for
        ``bring``.
        """
        self.say("cookout bring drinks")
        self.assertIn("Can someone else bring drinks", self.say("cookout I can't bring drinks"))
        self.assertIsNone(self.assignments.volunteer("drinks"))
        self.assertIn("still need someone to bring drinks", self.say("cookout I cant bring drinks"))
        self.assertIsNone(self.assignments.volunteer("drinks"))

    def test_cant_bring_someone_elses(self) -> None:
        """
        Backing out of someone else's item changes nothing.
        """
        self.say("cookout bring plates", BOB)
        self.assertIn(f"<@{BOB}> is bringing plates", self.say("cookout I can't bring plates"))
        self.assertEqual(self.assignments.volunteer("plates"), BOB)
        self.assertIn("without pickles", self.say("cookout I can't bring pickles"))

    def test_whos_bringing(self) -> None:
        """
        ``who's bringing`` answers nobody, you, someone, or not tracked.
        """
        self.assertIn("Nobody is bringing buns", self.say("cookout who's bringing buns"))
        self.say("cookout bring buns", BOB)
        self.assertEqual(self.say("cookout whos bringing buns"), f"<@{BOB}> is bringing buns.")
        self.assertIn("_You're_ bringing buns", self.say("cookout who's bringing buns", BOB))
        self.assertIn("don't know about pickles", self.say("cookout who's bringing pickles"))

    def test_unmatched(self) -> None:
        """
        Anything else points at ``cookout help``.
        """
        self.assertIn('Say "cookout help"', self.say("cookout hello"))


class CriteriaTests(SynchronousTestCase):
    """
    The bot's criteria, compiled by the relay's own ``mongo`` backend,
    select what the tutorial says.
    """

    def setUp(self) -> None:
        self.matches = compile_criteria("mongo", cookout_criteria(BOT_ID))

    def test_selected(self) -> None:
        """
        Direct messages, mentions of the bot and the ``cookout`` prefix.
        """
        self.assertTrue(self.matches(dispatch("hello", guild_id=None)))
        self.assertTrue(self.matches(dispatch("hey you", mentions=(BOT_ID,))))
        self.assertTrue(self.matches(dispatch("cookout bring buns")))

    def test_not_selected(self) -> None:
        """
        Not bots, not chatter, not ``cookouts``, not other events.
        """
        self.assertFalse(self.matches(dispatch("cookout bring buns", bot=True)))
        self.assertFalse(self.matches(dispatch("just chatting")))
        self.assertFalse(self.matches(dispatch("cookouts are fun")))
        self.assertFalse(self.matches(dispatch("hey", mentions=("222",))))
        self.assertFalse(self.matches(dispatch("cookout help", t="MESSAGE_UPDATE")))


class BotTests(SynchronousTestCase):
    """
    The bot answers a delivered dispatch with ``POST
    /channels/{id}/messages`` to the (simulated) Discord REST API.
    """

    def setUp(self) -> None:
        self.sim = DiscordSimulator(MemoryReactorClock())
        self.sim.add_bot(TOKEN, BOT_ID, privileged_intents=MESSAGE_CONTENT)
        api = Resource()
        api.putChild(b"api", DiscordAPI(self.sim))
        self.http = StubTreq(api)
        self.data_dir = self.mktemp()
        self.bot = self.make_bot(TOKEN)

    def make_bot(self, token: str) -> CookoutBot:
        config = CookoutConfig(
            relay_url="http://relay.example",
            token=token,
            bot_user_id=BOT_ID,
            client_secret="admin:c2VjcmV0c2VjcmV0",
            discord_api="http://discord.example/api/v10",
            data_dir=self.data_dir,
        )
        return CookoutBot(config, http=self.http)

    def deliver(self, payload: dict[str, Any], bot: CookoutBot | None = None) -> None:
        self.successResultOf((bot or self.bot).handle_dispatch(json.dumps(payload).encode()))

    def test_reply_posted(self) -> None:
        """
        "cookout bring buns" is answered in the message's channel, and the
        volunteer is saved.
        """
        self.deliver(dispatch("cookout bring buns"))
        [(token, channel, body)] = self.sim.messages
        self.assertEqual((token, channel), (TOKEN, "3333"))
        self.assertEqual(body, {"content": "Thanks, you're bringing buns! :smile:"})
        self.assertEqual(Assignments(self.data_dir).volunteer("buns"), ALICE)

    def test_ignored(self) -> None:
        """
        Other bots' messages, other events and payloads that are not
        messages get no reply.
        """
        self.deliver(dispatch("cookout bring buns", bot=True))
        self.deliver(dispatch("cookout bring buns", t="MESSAGE_UPDATE"))
        with capturedLogs() as events:
            self.successResultOf(self.bot.handle_dispatch(b"not json"))
            self.successResultOf(self.bot.handle_dispatch(b'{"op": 11}'))
        self.assertEqual(self.sim.messages, [])
        self.assertEqual(len(events), 2)
        self.assertIsNone(Assignments(self.data_dir).volunteer("buns"))

    def test_discord_refuses(self) -> None:
        """
        A reply Discord refuses (here: a wrong token) is logged; the
        dispatch still counts as handled and the change stays made.
        """
        bot = self.make_bot("wrong-token")
        with capturedLogs() as events:
            self.deliver(dispatch("cookout bring plates"), bot)
        self.assertEqual(self.sim.messages, [])
        [event] = [e for e in events if "log_failure" in e]
        self.assertIsInstance(event["log_failure"].value, DiscordError)
        self.assertEqual(event["log_failure"].value.code, 401)
        self.assertEqual(Assignments(self.data_dir).volunteer("plates"), ALICE)
        self.assertEqual(len(self.flushLoggedErrors(DiscordError)), 1)

    def test_page(self) -> None:
        """
        ``GET /`` shows which items are covered, not by whom.
        """
        self.deliver(dispatch("cookout bring drinks"))
        http = StubTreq(self.bot.resource())
        response = self.successResultOf(http.get("http://bot.example/"))
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"text/plain; charset=utf-8"])
        text = self.successResultOf(response.text())
        self.assertEqual(text, covered_text(self.bot.assignments))
        self.assertIn("[x] drinks\n", text)
        self.assertIn("[ ] hot dogs\n", text)
        self.assertNotIn(ALICE, text)

    def test_receiver_refuses_without_secret(self) -> None:
        """
        The websocket endpoint at ``/dcc/v1/{alias}`` is the client
        library's receiver: no relay Authorization, no connection.
        """
        http = StubTreq(self.bot.resource())
        response = self.successResultOf(
            http.get(
                "http://bot.example/dcc/v1/sample_cookout",
                headers={
                    "Upgrade": ["websocket"], "Connection": ["Upgrade"],
                    "Sec-WebSocket-Key": ["dGhlIHNhbXBsZSBub25jZQ=="],
                    "Sec-WebSocket-Version": ["13"],
                },
            )
        )
        self.assertEqual(response.code, 401)
        self.assertEqual(self.sim.messages, [])


class DiscordRESTTests(SynchronousTestCase):
    """
    The bot's one Discord call against the strict simulator.
    """

    def test_error_carries_discord_message(self) -> None:
        """
        An empty message is refused by Discord; the error has its message.
        """
        sim = DiscordSimulator(MemoryReactorClock())
        sim.add_bot(TOKEN, BOT_ID, privileged_intents=MESSAGE_CONTENT)
        api = Resource()
        api.putChild(b"api", DiscordAPI(sim))
        rest = DiscordREST("http://discord.example/api/v10/", TOKEN, StubTreq(api))
        failure = self.failureResultOf(rest.create_message("3333", ""), DiscordError)
        self.assertEqual(failure.value.code, 400)  # type: ignore[attr-defined]
        self.assertIn("Cannot send an empty message", str(failure.value))
        message = self.successResultOf(rest.create_message("3333", "hi"))
        self.assertEqual(message["content"], "hi")
