"""
:class:`~dccrelay.relay.guild_snapshot_saver.GuildSnapshotSaver`: the node's
bots' guild snapshot changes, coalesced into few store calls.
"""

from __future__ import annotations

from typing import Iterable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from dccrelay.relay.guild_snapshot_saver import (
    SAVE_BATCH,
    SAVE_INTERVAL,
    GuildSnapshotSaver,
    ISnapshotSource,
)
from dccrelay.store import GuildSnapshotUpdate


class RecordingStore:
    """Keeps each save call's updates."""

    def __init__(self) -> None:
        self.calls: list[list[GuildSnapshotUpdate]] = []

    def save_guild_snapshots(self, updates: Iterable[GuildSnapshotUpdate]) -> Deferred[None]:
        self.calls.append(list(updates))
        return succeed(None)

    def load_guild_snapshot(self, alias: str) -> Deferred[dict[str, bytes]]:
        return succeed({})


@implementer(ISnapshotSource)
class Bot:
    """A bot with one change to save each time it is asked to."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.pending = True

    def take_guild_snapshot_update(self) -> GuildSnapshotUpdate | None:
        if not self.pending:
            return None
        self.pending = False
        return GuildSnapshotUpdate(self.alias, (("user", b"{}"),))

    def guild_snapshot_unsaved(self) -> None:
        self.pending = True


class SaverTests(SynchronousTestCase):
    """What the saver writes, and when."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.store = RecordingStore()
        self.saver = GuildSnapshotSaver(self.store, self.clock)  # type: ignore[arg-type]

    def test_source_interface(self) -> None:
        """The test's bot provides what the saver asks of a relay."""
        verifyObject(ISnapshotSource, Bot("a"))

    def test_batched_rounds(self) -> None:
        """
        Bots changed during an interval are saved together at its end, in
        calls of at most ``SAVE_BATCH`` bots; a bot changed twice is saved
        once.
        """
        bots = [Bot(f"bot{n}") for n in range(SAVE_BATCH + 50)]
        for bot in bots + bots[:10]:
            self.saver.changed(bot)
        self.clock.advance(SAVE_INTERVAL - 0.01)
        self.assertEqual(self.store.calls, [])
        self.clock.advance(0.01)
        self.assertEqual([len(call) for call in self.store.calls], [SAVE_BATCH, 50])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stopping_bots_together(self) -> None:
        """
        Bots stopping in one reactor turn are saved in one call on the next
        turn, before their interval, and each one's wait ends then.
        """
        bots = [Bot(f"bot{n}") for n in range(3)]
        for bot in bots:
            self.saver.changed(bot)
        waits = [self.saver.save_now(bot) for bot in bots]
        self.assertEqual(self.store.calls, [])
        self.clock.advance(0)
        self.assertEqual([len(call) for call in self.store.calls], [3])
        for wait in waits:
            self.successResultOf(wait)
        # nothing left for the round
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_discarded(self) -> None:
        """
        A deleted bot's changes are not saved, even if it was stopping; its
        wait ends.
        """
        gone, kept = Bot("gone"), Bot("kept")
        self.saver.changed(gone)
        self.saver.changed(kept)
        wait = self.saver.save_now(gone)
        self.saver.discard("gone")
        self.successResultOf(wait)
        self.clock.advance(SAVE_INTERVAL)
        self.assertEqual([[u.alias for u in call] for call in self.store.calls], [["kept"]])
