"""
End to end: the real relay service on a real SQLite file, the Discord
simulator over TLS, and a relay restart in between: a bot's guild snapshot
(``guildSnapshot``) outlives the restart, which RESUMEs and so gets no
GUILD_CREATE again.
"""

from __future__ import annotations

import os
from typing import Any

from cryptography.fernet import Fernet
from twisted.internet.defer import ensureDeferred
from twisted.trial.unittest import TestCase

from dccrelay.testing import guilds, objects
from tests.harness import LOOPBACK, SECRET, BotReceiver, RelayProcess, tls_simulator, wait_for

TOKEN = "MTExMTExMTExMTExMTExMTEx.Gg1234.simulated-token"
BOT_ID = "111111111111111111"
#: GUILDS, GUILD_MESSAGES
INTENTS = (1 << 0) | (1 << 9)


def guild_create(guild_id: str) -> dict[str, Any]:
    """A GUILD_CREATE's d: the bot's member and someone else's."""
    return {
        **guilds.guild(guild_id),
        "channels": guilds.channels(guild_id),
        "threads": [],
        "members": [
            {**objects.member("2024-01-01T00:00:00+00:00"), "user": objects.user(BOT_ID, "bot", bot=True)},
            {**objects.member("2024-01-01T00:00:00+00:00"), "user": objects.user("4444", "someone")},
        ],
        "presences": [],
        "voice_states": [],
        "unavailable": False,
    }


class GuildSnapshotRestartTests(TestCase):
    """
    The snapshot is kept in the relay's store, sealed, across a restart.
    """

    timeout = 60

    def test_restart_keeps_snapshot(self) -> None:
        """
        Guild events build the snapshot; after the relay restarts on the
        same data directory (and RESUMEs), the bot fetches it with its
        clientSecret and gets its READY user and guilds, although the
        simulator sent nothing new; the store holds them encrypted.
        """
        return ensureDeferred(self._restart())

    async def _restart(self) -> None:
        sim = tls_simulator()
        await sim.listen(LOOPBACK)
        self.addCleanup(sim.stop)
        bot = sim.add_bot(token=TOKEN, user_id=BOT_ID)
        receiver = BotReceiver()
        await receiver.start()
        self.addCleanup(receiver.stop)
        data_dir = self.mktemp()
        key_file = os.path.abspath(self.mktemp())
        with open(key_file, "wb") as f:
            f.write(Fernet.generate_key() + b"\n")
        os.chmod(key_file, 0o600)

        relay = await self._start_relay(data_dir, sim.api_url, key_file)
        code, answer = await relay.register(
            {
                "token": TOKEN,
                "intents": INTENTS,
                "criteria": {"t": "MESSAGE_CREATE"},
                "dst": receiver.url,
                "clientSecret": SECRET,
                "guildSnapshot": True,
            }
        )
        self.assertEqual(code, 201, answer)
        await bot.wait_for_ready()
        bot.dispatch("GUILD_CREATE", guild_create("2222"))
        bot.dispatch("GUILD_CREATE", guild_create("5555"))
        bot.dispatch("CHANNEL_UPDATE", {**guilds.channels("2222")[0], "name": "grill"})
        bot.dispatch("GUILD_DELETE", {"id": "5555"})

        def kept() -> bool:
            snapshot = self.successResultOf(relay.relay().guild_snapshot())
            return [g["id"] for g in snapshot["guilds"]] == ["2222"] and (
                snapshot["guilds"][0]["channels"][0]["name"] == "grill"
            )

        await wait_for(kept, what="the relay to keep the guild events")
        await relay.stop()
        await bot.wait_for_disconnect()
        sent = bot.session_for(0).seq  # type: ignore[union-attr]

        relay = await self._start_relay(data_dir, sim.api_url, key_file)
        code, snapshot = await relay.request("GET", "/relays/cookout/snapshot", secret=SECRET)
        self.assertEqual(code, 200, snapshot)
        self.assertEqual(snapshot["user"], bot.user_object())
        [guild] = snapshot["guilds"]
        self.assertEqual(guild["id"], "2222")
        self.assertEqual(guild["channels"][0]["name"], "grill")
        self.assertEqual([m["user"]["id"] for m in guild["members"]], [BOT_ID])
        code, status = await relay.request("GET", "/relays/cookout", secret=SECRET)
        self.assertEqual(status["guildSnapshot"]["guilds"], 1)
        self.assertEqual((await relay.request("GET", "/relays/cookout/snapshot"))[0], 401)

        # The restarted relay RESUMEd: Discord sent no READY nor GUILD_CREATE
        # again, only RESUMED (one seq).
        await bot.wait_for_ready()
        await wait_for(
            lambda: [s.state for s in relay.relay().shards] == ["ready"],
            what="the restarted relay to resume",
        )
        self.assertEqual((bot.identifies, bot.resumes), (1, 1))
        self.assertEqual(bot.session_for(0).seq, sent + 1)  # type: ignore[union-attr]

        # Sealed at rest: the guild's and user's names are not in the files.
        await relay.stop()
        for name in os.listdir(data_dir):
            with open(os.path.join(data_dir, name), "rb") as f:
                data = f.read()
            self.assertNotIn(b"guild 2222", data, name)
            self.assertNotIn(b'"grill"', data, name)

    async def _start_relay(self, data_dir: str, api_url: str, key_file: str) -> RelayProcess:
        return await RelayProcess.started(
            self, data_dir, api_url, "--encryption-key-file", key_file
        )
