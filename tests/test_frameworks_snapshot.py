"""
``guildSnapshot`` (:mod:`dccrelay.relay.guild_snapshot`): the relay keeps a bot's
guilds from its gateway's guild events, serves them to the bot, and
``dccrelay-bot`` starts a framework warm with them.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.relay.guild_snapshot import GuildSnapshot, bot_user_id
from dccrelay.testing import guilds, objects
from tests.framework_harness import BOT_ID, FrameworkCase, free_port
from tests.harness import SECRET, wait_for

from .api_harness import BODY, Node, answer, basic

BOT_USER = objects.user(BOT_ID, "bot", bot=True)


def guild_create(guild_id: str = "2222") -> dict[str, Any]:
    """A GUILD_CREATE's d as the gateway sends it: members, presences and all."""
    return {
        **guilds.guild(guild_id),
        "channels": guilds.channels(guild_id),
        "threads": [],
        "members": [
            {**objects.member("2024-01-01T00:00:00+00:00"), "user": BOT_USER},
            {**objects.member("2024-01-01T00:00:00+00:00"), "user": objects.user("4444", "someone")},
        ],
        "presences": [{"user": {"id": "4444"}, "status": "online"}],
        "voice_states": [],
        "unavailable": False,
    }


def event(t: str, d: dict[str, Any]) -> dict[str, Any]:
    return {"op": 0, "t": t, "s": 1, "d": d}


class SnapshotTests(SynchronousTestCase):
    """GuildSnapshot, fed dispatches."""

    def test_guild_create(self) -> None:
        """
        A GUILD_CREATE is kept without other people's members, presences
        or voice states; the bot's own member stays.
        """
        snapshot = GuildSnapshot(BOT_ID)
        snapshot.observe(event("GUILD_CREATE", guild_create()))
        [kept] = snapshot.document()["guilds"]
        self.assertEqual([m["user"]["id"] for m in kept["members"]], [BOT_ID])
        self.assertNotIn("presences", kept)
        self.assertEqual([c["id"] for c in kept["channels"]], ["3333"])

    def test_kept_current(self) -> None:
        """
        Channel, role and guild updates change the kept guild; a guild the
        bot left is forgotten, one that is only unavailable is kept.
        """
        snapshot = GuildSnapshot(BOT_ID)
        snapshot.observe(event("GUILD_CREATE", guild_create()))
        channel = {**guilds.channels("2222")[0], "id": "3334", "name": "grill"}
        snapshot.observe(event("CHANNEL_CREATE", channel))
        snapshot.observe(event("CHANNEL_DELETE", {"id": "3333", "guild_id": "2222"}))
        role = guilds.role("77", "cooks", 8)
        snapshot.observe(event("GUILD_ROLE_CREATE", {"guild_id": "2222", "role": role}))
        snapshot.observe(event("GUILD_UPDATE", {"id": "2222", "name": "renamed"}))
        [kept] = snapshot.document()["guilds"]
        self.assertEqual([c["name"] for c in kept["channels"]], ["grill"])
        self.assertEqual([r["name"] for r in kept["roles"]], ["@everyone", "cooks"])
        self.assertEqual(kept["name"], "renamed")
        snapshot.observe(event("GUILD_DELETE", {"id": "2222", "unavailable": True}))
        self.assertEqual(snapshot.status()["guilds"], 1)
        snapshot.observe(event("GUILD_DELETE", {"id": "2222"}))
        self.assertEqual(snapshot.status()["guilds"], 0)

    def test_bot_user_id(self) -> None:
        """The bot's user id is read from the start of its token."""
        self.assertEqual(bot_user_id("MTExMTExMTExMTExMTExMTEx.Gg1234.x"), BOT_ID)
        self.assertIsNone(bot_user_id("not a token"))

    def test_bounded(self) -> None:
        """Guilds past the bound are left out and counted."""
        snapshot = GuildSnapshot(BOT_ID, max_guilds=2)
        for guild_id in ("1", "2", "3"):
            snapshot.observe(event("GUILD_CREATE", guild_create(guild_id)))
        self.assertEqual((snapshot.status()["guilds"], snapshot.status()["skipped"]), (2, 1))


class EndpointTests(SynchronousTestCase):
    """GET /relays/{alias}/snapshot."""

    def test_opt_in(self) -> None:
        """
        A bot registered without guildSnapshot has none (404 saying how to
        get one); with it, the owner gets ``{"user", "guilds"}`` and the
        status counts the guilds kept.
        """
        node = Node()
        self.addCleanup(node.stop)
        self.assertEqual(answer(self, node, "PUT", "/relays/sample", BODY)[0], 201)
        code, body, _ = answer(self, node, "GET", "/relays/sample/snapshot", None, basic())
        self.assertEqual(code, 404)
        self.assertIn("guildSnapshot", body["error"])
        code, _, _ = answer(
            self, node, "PUT", "/relays/sample", {**BODY, "guildSnapshot": True}, basic()
        )
        self.assertEqual(code, 200)
        code, body, _ = answer(self, node, "GET", "/relays/sample/snapshot", None, basic())
        self.assertEqual((code, body), (200, {"user": None, "guilds": []}))
        code, status, _ = answer(self, node, "GET", "/relays/sample", None, basic())
        self.assertEqual(status["guildSnapshot"], {"guilds": 0, "bytes": 0, "skipped": 0})
        self.assertEqual(answer(self, node, "GET", "/relays/sample/snapshot")[0], 401)


class WarmStartTests(FrameworkCase):
    """A discord.py bot started cold against a relay that keeps its guilds."""

    spec = "tests.framework_bots.discordpy_bot:bot"
    where = "!where"

    def test_warm_start(self) -> None:
        """
        The relay keeps the guild from the gateway's GUILD_CREATE; a
        ``dccrelay-bot`` started afterwards gets it from the relay and
        answers a command that needs the guild and its channel in the
        framework's cache (for discord.py a guild-only command with a
        permission check) without fetching the guild from Discord's REST
        API.
        """
        return ensureDeferred(self._warm())

    async def _warm(self) -> None:
        await self.start_world()
        port = free_port()
        status, _ = await self.relay.register(
            {
                "token": self.token,
                "intents": 33281,
                "dst": f"http://127.0.0.1:{port}/",
                "clientSecret": SECRET,
                "guildSnapshot": True,
            },
            alias=self.alias,
        )
        self.assertIn(status, (200, 201))
        await self.simulated.wait_for_ready().addTimeout(30, reactor)
        self.simulated.dispatch("GUILD_CREATE", guild_create())

        def kept() -> bool:
            snapshot = self.successResultOf(self.relay.relay(self.alias).guild_snapshot())
            return bool(snapshot["guilds"])

        await wait_for(kept, what="the relay to keep the guild")
        bot = await self.start_bot(self.spec, port=port)
        await self.until(lambda: b"1 guilds from the relay" in bot.output, bot, "the warm start")
        self.assertEqual(await self.reply_to(self.where, bot), "in guild 2222, #general")
        self.assertEqual([e for e in self.sim.events if e[0] == "guild_fetch"], [])


class HikariWarmStartTests(WarmStartTests):
    """The same for a hikari bot: the guild is in hikari's cache."""

    spec = "tests.framework_bots.hikari_bot:bot"
    where = "hk.where"
