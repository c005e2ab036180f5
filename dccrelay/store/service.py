"""
The store as a service: open while the services that use it run.

Its children (the relay manager) start once the store is open (or failed
to open), and the store closes only after they have all stopped, so that their last writes
(every bot's resume point, the leases handed back) still reach it.  A plain
:class:`~twisted.application.service.MultiService` parent would stop its
children and the store at once, without waiting.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from . import IRelayStore


class StoreService(MultiService):
    """
    Opens ``store``, then starts the children; stops the children, then
    closes ``store``.
    """

    _log = Logger()

    def __init__(self, store: IRelayStore) -> None:
        super().__init__()
        self.store = store
        self._opening: Deferred[None] | None = None
        self._children_started = False

    def startService(self) -> None:
        Service.startService(self)
        self._opening = self.store.open()
        self._opening.addCallbacks(self._opened, self._failed)

    def _opened(self, _: None) -> None:
        if self.running:
            self._children_started = True
            for service in self:
                service.startService()

    def _failed(self, failure: Failure) -> None:
        self._log.failure("could not open {store}", failure, store=self.store.description)
        # Started all the same: each fails on its own calls, and says what it
        # could not do (the manager: load the registrations).
        self._opened(None)

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        opening = self._opening if self._opening is not None else succeed(None)
        # Whatever opening came to (_opened and _failed never fail).
        stopped = opening.addCallback(lambda _: self._stop_children())
        return stopped.addBoth(lambda _: self.store.close())

    def _stop_children(self) -> Deferred[Any] | None:
        if not self._children_started:
            return None
        self._children_started = False
        # In reverse order, as MultiService does, waiting for all of them.
        return DeferredList(
            [maybeDeferred(service.stopService) for service in reversed(list(self))],
            consumeErrors=True,
        )
