"""
One bot's opt-in guild snapshot (``guildSnapshot``) as its relay keeps it:
built from the gateway's events (:mod:`dccrelay.relay.guild_snapshot`),
restored from the store when the relay starts, and saved by the node's
:class:`~dccrelay.relay.guild_snapshot_saver.GuildSnapshotSaver`.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from dccrelay.relay.guild_snapshot import GuildSnapshot, bot_user_id
from dccrelay.relay.guild_snapshot_saver import GuildSnapshotSaver, ISnapshotSource
from dccrelay.store import GuildSnapshotUpdate


@implementer(ISnapshotSource)
class BotGuilds:
    """
    The guild snapshot of the bot ``alias``, whose token is ``token``.

    :param on_change: called whenever :meth:`counts` may have changed.
    """

    _log = Logger()

    def __init__(
        self,
        alias: str,
        token: str,
        saver: GuildSnapshotSaver,
        *,
        on_change: Callable[[], object],
    ) -> None:
        self.alias = alias
        self._saver = saver
        self._on_change = on_change
        self._snapshot = GuildSnapshot(bot_user_id(token), restore=True)
        self._restore_waiters: list[Deferred[None]] = []

    def restored(self) -> Deferred[None]:
        """
        Fires once the stored snapshot is restored, loading it now if that
        has not begun (the relay may wait for its turn to start).  Beside
        the gateway's start, not before it: what the gateway says meanwhile
        is newer, and :meth:`GuildSnapshot.restore` keeps it.
        """
        snapshot = self._snapshot
        if not snapshot.awaiting_restore:
            return succeed(None)
        done: Deferred[None] = Deferred()
        self._restore_waiters.append(done)
        if len(self._restore_waiters) > 1:
            return done

        def restore(parts: dict[str, bytes]) -> None:
            snapshot.restore(parts)
            if self._snapshot is snapshot:
                self._changed()

        def failed(failure: Failure) -> None:
            self._log.failure(
                "{alias}: could not load its guild snapshot; the gateway's guild events "
                "fill it again", failure, alias=self.alias,
            )
            snapshot.restore({})
            self._on_change()

        def release(_: object) -> None:
            waiters, self._restore_waiters = self._restore_waiters, []
            for waiter in waiters:
                waiter.callback(None)

        self._saver.load(self.alias).addCallbacks(restore, failed).addBoth(release)
        return done

    def observe(self, payload: dict[str, Any]) -> None:
        """A dispatch from the gateway, which may change a guild."""
        if self._snapshot.observe(payload):
            self._changed()

    def ready(self, user: Any) -> None:
        """READY named the bot's user."""
        if self._snapshot.ready(user):
            self._changed()

    def replace(self, token: str) -> None:
        """
        Another bot, or a new session whose GUILD_CREATEs fill it again:
        start empty, and the stored snapshot goes too.
        """
        self._snapshot = GuildSnapshot(bot_user_id(token))
        self._changed()

    def document(self) -> Deferred[dict[str, Any]]:
        """The READY user and the guilds, once the stored ones are restored."""
        return self.restored().addCallback(lambda _: self._snapshot.document())

    def counts(self) -> dict[str, int]:
        """Guilds, bytes and guilds skipped by the bounds, for the status."""
        return self._snapshot.status()

    def save_if_changed(self) -> Deferred[None]:
        """The relay stops: save what changed, for whoever runs the bot next."""
        if self._snapshot.changed:
            return self._saver.save_now(self)
        return succeed(None)

    def discard(self) -> None:
        """The bot is deleted: nothing of it is saved any more."""
        self._saver.discard(self.alias)

    def _changed(self) -> None:
        self._on_change()
        if self._snapshot.changed:
            self._saver.changed(self)

    # -- ISnapshotSource ------------------------------------------------------------

    def take_guild_snapshot_update(self) -> GuildSnapshotUpdate | None:
        """What changed in the guild snapshot since it was last saved."""
        return self._snapshot.take_update(self.alias)

    def guild_snapshot_unsaved(self) -> None:
        """Saving it failed: everything is offered again."""
        self._snapshot.unsaved()
