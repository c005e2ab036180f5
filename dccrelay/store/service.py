"""
The store as a service: open while the services that use it run.

Its children (the relay manager) start once the store is open, and the store
closes only after they have all stopped, so that their last writes (every
bot's resume point, the leases handed back) still reach it.  A plain
:class:`~twisted.application.service.MultiService` parent would stop its
children and the store at once, without waiting.

Opening goes through the node's :class:`~dccrelay.store.startup.Startup`:
tried again while the fault may pass, and the node stopped if it will not;
the children never start on a store that did not open.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import CancelledError, Deferred, DeferredList, maybeDeferred, succeed
from twisted.python.failure import Failure

from . import IRelayStore
from .startup import Startup

if TYPE_CHECKING:
    from dccrelay.ops.data_dir import DataDirLock


class StoreService(MultiService):
    """
    Opens ``store``, then starts the children; stops the children, then
    closes ``store``.

    :param startup: the node's start-up, which opening is a step of.
    :param lock: taken before the store opens and released after it closed
        (the data directory's, for a store that is one relay's alone).
    """

    def __init__(
        self, store: IRelayStore, startup: Startup, lock: DataDirLock | None = None
    ) -> None:
        super().__init__()
        self.store = store
        self.startup = startup
        self._lock = lock
        self._opening: Deferred[None] | None = None
        self._children_started = False

    def privilegedStartService(self) -> None:
        # Before the API's port is bound (twistd binds ports here, and this
        # service comes first): a second relay on the directory stops
        # without ever answering on its port.
        self._take_lock()
        super().privilegedStartService()

    def startService(self) -> None:
        self._take_lock()  # when started without privilegedStartService
        Service.startService(self)
        self._opening = self.startup.attempt("open the store", self.store.open)
        self._opening.addCallbacks(self._opened, self._not_opened)

    def _take_lock(self) -> None:
        if self._lock is not None and not self._lock.held:
            # Raises (twistd exits) if another relay has the directory.
            self._lock.acquire()

    def _opened(self, _: None) -> None:
        if self.running:
            self._children_started = True
            for service in self:
                service.startService()

    def _not_opened(self, failure: Failure) -> None:
        # Only a stop while opening comes here: the startup said any other
        # failure, and the Deferred of a step that failed for good never fires.
        failure.trap(CancelledError)

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        opening = self._opening if self._opening is not None else succeed(None)
        # Stop trying to open; a try under way is over once this fires.
        opening.cancel()
        stopped = opening.addBoth(lambda _: self._stop_children())
        closed = stopped.addBoth(lambda _: self.store.close())
        return closed.addBoth(self._release)

    def _release(self, result: object) -> object:
        if self._lock is not None:
            self._lock.release()
        return result

    def _stop_children(self) -> Deferred[Any] | None:
        if not self._children_started:
            return None
        self._children_started = False
        # In reverse order, as MultiService does, waiting for all of them.
        return DeferredList(
            [maybeDeferred(service.stopService) for service in reversed(list(self))],
            consumeErrors=True,
        )
