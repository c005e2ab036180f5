"""
The simulator's interactions (:mod:`dccrelay.testing.interactions`):
Discord's 3 s, one first answer, and the webhook endpoints after it; on a
memory clock, and the REST routes over loopback.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.testing.simulator import DiscordSimulator
from tests.test_simulator_rest import RestTestCase

RELAY_UA = "DiscordBot (dccrelay, 0.1.0)"
BOT_UA = "the bot"


class InteractionTests(SynchronousTestCase):
    """
    Interactions on a memory clock.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.sim = DiscordSimulator(self.clock)
        self.bot = self.sim.add_bot(token="token-i", user_id="1111")

    def create(self, kind: int = 2) -> dict[str, Any]:
        return self.sim.interactions.create(
            self.bot, kind=kind, name="cookout", custom_id="chips", guild_id="2222",
            channel_id="3333",
        )

    def test_shape(self) -> None:
        """
        A slash command has an id, a token, its application, the command's
        name and the invoking member; a button press has the message it is
        on.
        """
        d = self.create()
        self.assertEqual((d["type"], d["application_id"]), (2, "1111"))
        self.assertEqual(d["data"]["name"], "cookout")
        self.assertTrue(d["token"] and d["id"].isdigit())
        self.assertEqual(d["member"]["user"]["id"], "4444")
        button = self.create(3)
        self.assertEqual(button["data"]["custom_id"], "chips")
        self.assertIn("message", button)

    def test_answered_in_time(self) -> None:
        """
        A first answer within 3 s is taken (204); a second is 40060.
        """
        d = self.create()
        self.clock.advance(2.9)
        interactions = self.sim.interactions
        answer = {"type": 4, "data": {"content": "hi"}}
        self.assertEqual(interactions.callback(d["id"], d["token"], answer, BOT_UA), (204, None))
        status, body = interactions.callback(d["id"], d["token"], answer, BOT_UA)
        self.assertEqual((status, body["code"]), (400, 40060))  # type: ignore[index]
        self.clock.advance(10)
        record = interactions.by_id[d["id"]]
        self.assertEqual((record.outcome, record.answered_by), ("answered", BOT_UA))
        self.assertEqual(interactions.summary(), {"answered": 1})

    def test_failed(self) -> None:
        """
        No answer within 3 s: the interaction failed, and a late answer is
        10062.
        """
        d = self.create()
        self.clock.advance(3.0)
        status, body = self.sim.interactions.callback(d["id"], d["token"], {"type": 5}, BOT_UA)
        self.assertEqual((status, body["code"]), (404, 10062))  # type: ignore[index]
        self.assertEqual(self.sim.interactions.summary(), {"failed": 1})
        self.assertIn(("interaction_failed", d["id"]), self.sim.events)

    def test_deferred_then_answered(self) -> None:
        """
        Deferred, then the original response edited minutes later: the
        person got an answer.  Before any answer the webhook is unknown;
        after 15 minutes its token is invalid.
        """
        d = self.create()
        interactions = self.sim.interactions
        self.assertEqual(
            interactions.edit_original("1111", d["token"], {"content": "x"}, BOT_UA)[0], 404
        )
        self.assertEqual(
            interactions.callback(d["id"], d["token"], {"type": 5}, RELAY_UA), (204, None)
        )
        self.clock.advance(3)
        self.assertEqual(interactions.by_id[d["id"]].outcome, "deferred")
        self.clock.advance(120)
        status, message = interactions.edit_original("1111", d["token"], {"content": "x"}, BOT_UA)
        self.assertEqual((status, message["content"]), (200, "x"))
        followup = interactions.followup("1111", d["token"], {"content": "y"}, BOT_UA)
        self.assertEqual(followup[0], 200)
        record = interactions.by_id[d["id"]]
        self.assertEqual(record.outcome, "deferred, then answered")
        self.assertEqual(record.answered_by, RELAY_UA)
        self.clock.advance(15 * 60)
        status, body = interactions.edit_original("1111", d["token"], {"content": "z"}, BOT_UA)
        self.assertEqual((status, body["code"]), (401, 50027))

    def test_response_types(self) -> None:
        """
        A deferred update answers only a component; a deferred message may
        set only the ephemeral flag; autocomplete takes only results.
        """
        interactions = self.sim.interactions
        command = self.create()
        status, body = interactions.callback(command["id"], command["token"], {"type": 6}, "")
        self.assertEqual((status, body["code"]), (400, 50035))  # type: ignore[index]
        status, _ = interactions.callback(
            command["id"], command["token"], {"type": 5, "data": {"flags": 4}}, ""
        )
        self.assertEqual(status, 400)
        self.assertEqual(
            interactions.callback(
                command["id"], command["token"], {"type": 5, "data": {"flags": 64}}, ""
            ),
            (204, None),
        )
        button = self.create(3)
        status, _ = interactions.callback(button["id"], button["token"], {"type": 6}, "")
        self.assertEqual(status, 204)
        autocomplete = self.create(4)
        self.assertEqual(
            interactions.callback(autocomplete["id"], autocomplete["token"], {"type": 5}, "")[0],
            400,
        )

    def test_wrong_token(self) -> None:
        """
        An unknown id or another interaction's token is 10062.
        """
        d = self.create()
        self.assertEqual(self.sim.interactions.callback(d["id"], "nope", {"type": 4}, "")[0], 404)
        self.assertEqual(self.sim.interactions.callback("1", d["token"], {"type": 4}, "")[0], 404)


class InteractionRestTests(RestTestCase):
    """
    The routes, over loopback, without Authorization.
    """

    async def test_routes(self) -> None:
        """
        Callback, edit of the original and follow-up answer as Discord's
        do, with the caller's User-Agent recorded.
        """
        bot = self.sim.bots["token-a"]
        d = self.sim.interactions.create(
            bot, kind=2, name="cookout", custom_id="", guild_id="2222", channel_id="3333"
        )
        status, _ = await self.call(
            "POST", f"/interactions/{d['id']}/{d['token']}/callback", token=None,
            body={"type": 5},
        )
        self.assertEqual(status, 204)
        status, message = await self.call(
            "PATCH", f"/webhooks/1111/{d['token']}/messages/@original", token=None,
            body={"content": "chips"},
        )
        self.assertEqual((status, message["content"]), (200, "chips"))
        status, _ = await self.call(
            "POST", f"/webhooks/1111/{d['token']}", token=None, body={"content": "more"}
        )
        self.assertEqual(status, 200)
        record = self.sim.interactions.by_id[d["id"]]
        self.assertEqual(record.outcome, "deferred, then answered")
        self.assertEqual(len(record.edits), 1)
        self.sim.interactions.stop()
