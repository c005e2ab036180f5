"""
Where a node's bots run: the one thing a node alone and a node in a cluster
do differently, decided once (in :mod:`dccrelay.tap`) by the placement the
manager is given.

- :class:`Alone` (SQLite): every registered bot runs here.
- :class:`dccrelay.coordinator.ClusterCoordinator` (a shared PostgreSQL
  store): a bot runs here while this node holds its lease; the coordinator
  tells the manager to run it here or elsewhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from zope.interface import Attribute, Interface, implementer

from dccrelay.store import ISessions, StoredRelay

if TYPE_CHECKING:
    from dccrelay.manager import RelayManager


class IPlacement(Interface):
    """
    Decides which of the registered bots this node runs, through the
    manager it serves (:meth:`RelayManager.run_here`,
    :meth:`RelayManager.run_elsewhere`).  The manager calls these under its
    lock, except :meth:`pause`.
    """

    node_id = Attribute("This node's id among the nodes sharing a store, or None alone.")

    def attach(manager):  # type: ignore[no-untyped-def]
        """
        Serve ``manager`` (once, before anything else).
        """

    def place(record):  # type: ignore[no-untyped-def]
        """
        Give a registration (a :class:`~dccrelay.store.StoredRelay`, loaded
        or just created) its handle in the manager: run here or elsewhere.
        The handle is not started.
        """

    def begin():  # type: ignore[no-untyped-def]
        """
        The registrations are loaded and placed: start running.

        :return: Deferred firing once under way.
        """

    def changed(alias):  # type: ignore[no-untyped-def]
        """
        A registration was changed through this node (after the change is
        stored and applied here).

        :return: Deferred that never fails.
        """

    def pause():  # type: ignore[no-untyped-def]
        """
        The node is stopping: make no more placement decisions.
        """

    def leave():  # type: ignore[no-untyped-def]
        """
        The node's bots have stopped (resumably): let others have them.

        :return: Deferred that never fails.
        """


@implementer(IPlacement)
class Alone:
    """
    A node with a store of its own runs every bot.

    :param sessions: where the bots' sessions are, loaded in one call at
        start-up rather than one per bot.
    """

    node_id = None

    def __init__(self, sessions: ISessions) -> None:
        self._sessions = sessions
        self._manager: RelayManager | None = None

    def attach(self, manager: RelayManager) -> None:
        self._manager = manager

    def place(self, record: StoredRelay) -> None:
        assert self._manager is not None
        self._manager.run_here(record)

    @inlineCallbacks
    def begin(self) -> Any:
        assert self._manager is not None
        sessions = yield self._sessions.load_all_sessions()
        for relay in self._manager.local_relays():
            self._manager.start_paced(relay, sessions.get(relay.alias, {}))

    def changed(self, alias: str) -> Deferred[None]:
        return succeed(None)

    def pause(self) -> None:
        pass

    def leave(self) -> Deferred[None]:
        return succeed(None)
