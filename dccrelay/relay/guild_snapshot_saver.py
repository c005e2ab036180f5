"""
Saving the bots' guild snapshots (:mod:`dccrelay.relay.guild_snapshot`) to
the store, coalesced: a bot whose snapshot changed is saved at the next
round, every :data:`SAVE_INTERVAL` seconds, with every other bot changed
meanwhile, in store calls of :data:`SAVE_BATCH` bots.  A bot that stops is
saved at once (with the others stopping in the same reactor turn), so that
whoever runs it next, this node restarted or another, loads what it had.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Attribute, Interface

from dccrelay.store import GuildSnapshotUpdate, IGuildSnapshots

#: seconds between two saves of one bot's snapshot, at least (the guild
#: events of a busy bot coalesce into one write)
SAVE_INTERVAL = 5.0

#: bots per store call
SAVE_BATCH = 100


class ISnapshotSource(Interface):
    """
    A bot whose snapshot the saver saves (a relay).
    """

    alias = Attribute("The bot's alias.")

    def take_guild_snapshot_update() -> GuildSnapshotUpdate | None:
        """What changed since the last call, taken as saved; None if nothing."""

    def guild_snapshot_unsaved() -> None:
        """Saving the last update failed: offer everything again."""


class GuildSnapshotSaver:
    """
    One per node: saves what changed in its bots' snapshots.

    :param store: where snapshots are kept (sealed, when the node seals).
    :param clock: for the rounds.
    """

    _log = Logger()

    def __init__(
        self,
        store: IGuildSnapshots,
        clock: IReactorTime,
        interval: float = SAVE_INTERVAL,
        batch: int = SAVE_BATCH,
    ) -> None:
        self._store = store
        self._clock = clock
        self._interval = interval
        self._batch = batch
        self._changed: dict[str, ISnapshotSource] = {}
        self._round: IDelayedCall | None = None
        # bots stopping: saved on the next reactor turn, with their waiters
        self._urgent: dict[str, tuple[ISnapshotSource, list[Deferred[None]]]] = {}
        self._urgent_call: IDelayedCall | None = None

    def load(self, alias: str) -> Deferred[dict[str, bytes]]:
        """``alias``'s stored snapshot parts."""
        result: Deferred[dict[str, bytes]] = self._store.load_guild_snapshot(alias)
        return result

    def changed(self, source: ISnapshotSource) -> None:
        """``source`` (an :class:`ISnapshotSource`) has something to save."""
        self._changed[source.alias] = source
        if self._round is None:
            self._round = self._clock.callLater(self._interval, self._save_changed)

    def save_now(self, source: ISnapshotSource) -> Deferred[None]:
        """
        Save ``source`` (stopping) on the next reactor turn, with the others
        stopping meanwhile.

        :return: fires once written, or failed (logged); never fails.
        """
        self._forget(source.alias)
        done: Deferred[None] = Deferred()
        self._urgent.setdefault(source.alias, (source, []))[1].append(done)
        if self._urgent_call is None:
            self._urgent_call = self._clock.callLater(0, self._save_urgent)
        return done

    def discard(self, alias: str) -> None:
        """``alias`` is deleted: nothing of it is saved any more."""
        self._forget(alias)
        _, waiters = self._urgent.pop(alias, (None, []))
        for done in waiters:
            done.callback(None)

    def _forget(self, alias: str) -> None:
        self._changed.pop(alias, None)
        if not self._changed and self._round is not None:
            self._round.cancel()
            self._round = None

    def _save_changed(self) -> Deferred[object]:
        self._round = None
        sources, self._changed = list(self._changed.values()), {}
        return self._save(sources)

    def _save_urgent(self) -> None:
        self._urgent_call = None
        urgent, self._urgent = self._urgent, {}
        waiters = [done for _, waits in urgent.values() for done in waits]

        def release(_: object) -> None:
            for done in waiters:
                done.callback(None)

        self._save([source for source, _ in urgent.values()], retry=False).addCallback(release)

    def _save(self, sources: list[ISnapshotSource], retry: bool = True) -> Deferred[object]:
        calls = []
        for start in range(0, len(sources), self._batch):
            batch: list[tuple[ISnapshotSource, GuildSnapshotUpdate]] = []
            for source in sources[start : start + self._batch]:
                update = source.take_guild_snapshot_update()
                if update is not None:
                    batch.append((source, update))
            if batch:
                d = self._store.save_guild_snapshots([update for _, update in batch])
                d.addErrback(self._failed, batch, retry)
                calls.append(d)
        if not calls:
            return succeed(None)
        return DeferredList(calls)  # type: ignore[return-value]

    def _failed(
        self,
        failure: Failure,
        batch: list[tuple[ISnapshotSource, GuildSnapshotUpdate]],
        retry: bool,
    ) -> None:
        self._log.failure(
            "saving the guild snapshots of {count} bots failed", failure, count=len(batch)
        )
        for source, _ in batch:
            source.guild_snapshot_unsaved()
            if retry:  # not for a bot that stopped: the next round would find it gone
                self.changed(source)

