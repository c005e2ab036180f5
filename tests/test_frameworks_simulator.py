"""
The simulator's REST endpoints that bot frameworks read when they log in
without a gateway and fill their cache (``dccrelay.testing.guilds``), and
the interaction callback's ``?with_response=1`` body.
"""

from __future__ import annotations

import orjson

from dccrelay.testing.guilds import EVERYONE_PERMISSIONS
from tests.test_simulator_rest import RestTestCase


class FrameworkRestTests(RestTestCase):
    """/users/@me, the application, guilds, channels, members."""

    async def test_me_and_application(self) -> None:
        """
        ``/users/@me`` is the bot's user and ``/oauth2/applications/@me``
        an application with the bot's id; both need the bot's token.
        """
        status, me = await self.call("GET", "/users/@me")
        self.assertEqual((status, me["id"], me["bot"]), (200, "1111", True))
        status, application = await self.call("GET", "/oauth2/applications/@me")
        self.assertEqual((status, application["id"]), (200, "1111"))
        self.assertEqual((await self.call("GET", "/users/@me", token="nope"))[0], 401)

    async def test_guild(self) -> None:
        """
        A guild has an @everyone role (its own id) with the documented
        permissions, one text channel (3333 in the default guild 2222),
        and members: the bot, or a user added with add_members.
        """
        status, guild = await self.call("GET", "/guilds/2222")
        self.assertEqual((status, guild["id"]), (200, "2222"))
        self.assertEqual(
            [(r["id"], r["permissions"]) for r in guild["roles"]],
            [("2222", str(EVERYONE_PERMISSIONS))],
        )
        status, channels = await self.call("GET", "/guilds/2222/channels")
        self.assertEqual([(c["id"], c["type"], c["guild_id"]) for c in channels], [("3333", 0, "2222")])
        added = self.bot.add_members("2222", 1)[0]
        status, member = await self.call("GET", f"/guilds/2222/members/{added['user']['id']}")
        self.assertEqual((status, member["user"]["username"]), (200, "member0"))
        status, me = await self.call("GET", "/guilds/2222/members/1111")
        self.assertEqual((status, me["user"]["bot"]), (200, True))

    async def test_callback_with_response(self) -> None:
        """
        ``POST /interactions/{id}/{token}/callback?with_response=1`` answers
        200 with the interaction and the message the answer made.
        """
        d = self.sim.interactions.create(
            self.bot, kind=2, name="chips", custom_id="", guild_id="2222", channel_id="3333"
        )
        status, body = await self.call(
            "POST",
            f"/interactions/{d['id']}/{d['token']}/callback?with_response=1",
            token=None,
            raw=orjson.dumps({"type": 4, "data": {"content": "hi"}}),
        )
        self.assertEqual(status, 200)
        self.assertEqual(body["interaction"]["id"], d["id"])
        self.assertEqual(body["resource"]["type"], 4)
        self.assertEqual(body["resource"]["message"]["content"], "hi")
        self.assertEqual(body["interaction"]["response_message_id"], body["resource"]["message"]["id"])
