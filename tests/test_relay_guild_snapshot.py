"""
A relay's guild snapshot in the store (:mod:`dccrelay.relay.guild_snapshot`,
:mod:`dccrelay.relay.guild_snapshot_saver`): saved coalesced and on stop,
restored when the relay starts again, replaced when the bot changes, and
gone with the setting.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterable

import orjson
from twisted.internet.defer import Deferred, fail
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.relay.guild_snapshot import USER_PART, GuildSnapshot, guild_part
from dccrelay.relay.guild_snapshot_saver import SAVE_INTERVAL
from dccrelay.relay.relay import Relay
from dccrelay.store import GuildSnapshotUpdate
from dccrelay.testing import guilds
from tests.memory_store import MemoryDatabase, MemoryRelayStore
from tests.relay_harness import READY_USER, RelayHarness


def guild_create(guild_id: str) -> dict[str, Any]:
    """A GUILD_CREATE's d with the bot's member and someone else's."""
    return {
        **guilds.guild(guild_id),
        "channels": guilds.channels(guild_id),
        "members": [{"user": READY_USER}, {"user": {"id": "4444"}}],
        "presences": [],
    }


class CountingStore(MemoryRelayStore):
    """The memory store, counting guild snapshot saves; it can refuse them."""

    def __init__(self, database: MemoryDatabase) -> None:
        super().__init__(database)
        self.saves: list[list[GuildSnapshotUpdate]] = []
        self.refuse = False
        #: loads held back until the test fires them
        self.hold_loads = False
        self.held: list[tuple[Deferred[dict[str, bytes]], dict[str, bytes]]] = []

    def load_guild_snapshot(self, alias: str) -> Deferred[dict[str, bytes]]:
        loaded = super().load_guild_snapshot(alias)
        if not self.hold_loads:
            return loaded
        held: Deferred[dict[str, bytes]] = Deferred()
        loaded.addCallback(lambda parts: self.held.append((held, parts)))
        return held

    def save_guild_snapshots(self, updates: Iterable[GuildSnapshotUpdate]) -> Deferred[None]:
        updates = list(updates)
        self.saves.append(updates)
        if self.refuse:
            return fail(OSError("the disk is full"))
        return super().save_guild_snapshots(updates)


class ByteCountTests(SynchronousTestCase):
    """The snapshot's byte count, kept as it changes rather than summed."""

    def test_bytes_follow_changes(self) -> None:
        """
        Through creates, updates, deletes, a guild past the bound and a
        restore, ``bytes`` is the size of the guilds kept, each as stored.
        """
        one = len(orjson.dumps(guild_create("1"))) - len(orjson.dumps(guild_create("1")["members"]))
        bound = int(one * 3.5)  # the fourth and fifth guilds do not fit
        snapshot = GuildSnapshot("111", max_bytes=bound)
        snapshot.ready(READY_USER)
        for guild_id in ("1", "2", "3", "4", "5"):
            snapshot.observe({"t": "GUILD_CREATE", "d": guild_create(guild_id)})
        snapshot.observe({"t": "GUILD_UPDATE", "d": {"id": "1", "name": "x" * 500}})
        snapshot.observe({"t": "GUILD_DELETE", "d": {"id": "2"}})
        update = snapshot.take_update("cookout")
        assert update is not None
        stored = {name: document for name, document in update.parts if name != USER_PART}
        status = snapshot.status()
        self.assertGreater(status["skipped"], 0)
        self.assertEqual(status["bytes"], sum(map(len, stored.values())))
        restored = GuildSnapshot("111", max_bytes=bound, restore=True)
        restored.restore({**dict(update.parts)})
        self.assertEqual(restored.status()["bytes"], status["bytes"])
        self.assertEqual(restored.status()["guilds"], status["guilds"])


class StoredSnapshotTests(SynchronousTestCase):
    """A relay with ``guildSnapshot`` keeps it in the store."""

    def setUp(self) -> None:
        self.database = MemoryDatabase()

    def harness(self) -> RelayHarness:
        """
        A node (a relay harness) over this test's database; its shards
        identify afresh (the harness plays no RESUME).
        """
        self.database.sessions.clear()
        self.store = CountingStore(self.database)
        node = RelayHarness(store=self.store)
        settings = node.settings(guild_snapshot=True).to_json()
        self.successResultOf(self.store.save_relay("cookout", settings))
        return node

    def start(self, node: RelayHarness, **settings: Any) -> Relay:
        return node.relay(self, guild_snapshot=True, **settings)

    def stored(self) -> dict[str, bytes]:
        return self.database.guild_snapshots.get("cookout", {})

    def test_saved_coalesced(self) -> None:
        """
        Guild events are saved together, once per interval: nothing before
        it, then the READY user and each guild (without others' members)
        in one store call.
        """
        node = self.harness()
        relay = self.start(node)
        for guild_id in ("2222", "5555"):
            node.dispatch("GUILD_CREATE", guild_create(guild_id))
        node.dispatch("CHANNEL_UPDATE", {**guilds.channels("2222")[0], "name": "grill"})
        node.clock.advance(SAVE_INTERVAL - 0.1)
        self.assertEqual(self.store.saves, [])
        node.clock.advance(0.1)
        self.assertEqual(len(self.store.saves), 1)
        self.assertEqual(set(self.stored()), {USER_PART, guild_part("2222"), guild_part("5555")})
        self.assertIn(b'"grill"', self.stored()[guild_part("2222")])
        self.assertNotIn(b"4444", self.stored()[guild_part("2222")])
        # nothing new, nothing written
        node.clock.advance(SAVE_INTERVAL * 3)
        self.assertEqual(len(self.store.saves), 1)
        node.dispatch("GUILD_DELETE", {"id": "5555"})
        node.clock.advance(SAVE_INTERVAL)
        self.assertEqual(len(self.store.saves), 2)
        self.assertEqual(set(self.stored()), {USER_PART, guild_part("2222")})
        self.assertEqual(relay.snapshot().guild_snapshot.guilds, 1)  # type: ignore[union-attr]

    def test_restart_restores(self) -> None:
        """
        A relay stopped before the interval saves at once; one started
        again over the same store serves the same user and guilds before
        the gateway sends any guild event.
        """
        node = self.harness()
        relay = self.start(node)
        node.dispatch("GUILD_CREATE", guild_create("2222"))
        before = self.successResultOf(relay.guild_snapshot())
        relay.stop()
        node.clock.advance(0)
        self.assertEqual(len(self.store.saves), 1)
        self.assertEqual(node.clock.getDelayedCalls(), [])

        again = self.start(self.harness())
        self.assertEqual(self.successResultOf(again.guild_snapshot()), before)
        self.assertEqual(before["user"], READY_USER)  # type: ignore[index]
        self.assertEqual([g["id"] for g in before["guilds"]], ["2222"])  # type: ignore[index]
        self.assertEqual(again.snapshot().guild_snapshot.guilds, 1)  # type: ignore[union-attr]

    def test_served_once_restored(self) -> None:
        """
        Asked for its snapshot before it started (waiting for its turn) or
        while the store is still loading it, a relay answers once the
        stored snapshot is restored, not with an empty one.
        """
        node = self.harness()
        relay = self.start(node)
        node.dispatch("GUILD_CREATE", guild_create("2222"))
        relay.stop()
        node.clock.advance(0)
        again = self.harness()
        self.store.hold_loads = True
        waiting = Relay("cookout", again.settings(guild_snapshot=True), again.env, on_fatal=lambda *_: None)
        asked = waiting.guild_snapshot()
        self.assertNoResult(asked)
        self.successResultOf(waiting.start())
        [(held, parts)] = self.store.held  # one load for both
        held.callback(parts)
        snapshot = self.successResultOf(asked)
        self.assertEqual([g["id"] for g in snapshot["guilds"]], ["2222"])  # type: ignore[index]

    def test_gateway_newer_than_store(self) -> None:
        """
        What the gateway said before the stored snapshot was loaded wins
        over the stored copy.
        """
        node = self.harness()
        self.start(node)
        node.dispatch("GUILD_CREATE", guild_create("2222"))
        node.clock.advance(SAVE_INTERVAL)
        snapshot = GuildSnapshot("111", restore=True)
        snapshot.observe({"t": "GUILD_CREATE", "d": {**guild_create("2222"), "name": "newer"}})
        snapshot.restore(self.stored())
        [guild] = snapshot.document()["guilds"]
        self.assertEqual(guild["name"], "newer")
        self.assertEqual(snapshot.document()["user"], READY_USER)

    def test_another_bot_not_restored(self) -> None:
        """
        A stored snapshot whose user is not the bot the token names (the
        token changed while the relay was down) is not served, and is
        replaced at the next save.
        """
        node = self.harness()
        self.start(node)
        node.dispatch("GUILD_CREATE", guild_create("2222"))
        node.clock.advance(SAVE_INTERVAL)
        other = "MjIy.Gg.token"  # user 222
        again = self.harness()
        relay = self.start(again, token=other)
        self.assertEqual(
            self.successResultOf(relay.guild_snapshot()), {"user": READY_USER, "guilds": []}
        )
        again.clock.advance(SAVE_INTERVAL)
        self.assertEqual(set(self.stored()), {USER_PART})
        self.assertTrue(self.store.saves[-1][0].replace)

    def test_setting_off_removes(self) -> None:
        """
        Turning ``guildSnapshot`` off removes the stored snapshot.
        """
        node = self.harness()
        relay = self.start(node)
        node.dispatch("GUILD_CREATE", guild_create("2222"))
        node.clock.advance(SAVE_INTERVAL)
        self.assertTrue(self.stored())
        relay.apply(replace(relay.settings, guild_snapshot=False))
        node.clock.advance(SAVE_INTERVAL)
        self.assertEqual(self.stored(), {})
        self.assertIsNone(self.successResultOf(relay.guild_snapshot()))

    def test_deleted_saves_nothing(self) -> None:
        """
        A deleted bot's pending changes are not saved.
        """
        node = self.harness()
        relay = self.start(node)
        node.dispatch("GUILD_CREATE", guild_create("2222"))
        relay.forget()
        node.clock.advance(SAVE_INTERVAL)
        self.assertEqual(self.store.saves, [])

    def test_failed_save_retried(self) -> None:
        """
        A save the store refused is retried at the next round, replacing
        whatever the store holds with everything kept.
        """
        node = self.harness()
        self.start(node)
        node.dispatch("GUILD_CREATE", guild_create("2222"))
        self.store.refuse = True
        node.clock.advance(SAVE_INTERVAL)
        self.assertEqual(self.stored(), {})
        self.flushLoggedErrors(OSError)
        self.store.refuse = False
        node.clock.advance(SAVE_INTERVAL)
        self.assertEqual(set(self.stored()), {USER_PART, guild_part("2222")})
        self.assertTrue(self.store.saves[-1][0].replace)

    def test_off_by_default(self) -> None:
        """
        A bot without ``guildSnapshot`` never touches the store's snapshots.
        """
        node = self.harness()
        relay = node.relay(self)
        node.dispatch("GUILD_CREATE", guild_create("2222"))
        node.clock.advance(SAVE_INTERVAL)
        relay.stop()
        node.clock.advance(0)
        self.assertEqual(self.store.saves, [])
