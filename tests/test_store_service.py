"""
Tests for :mod:`dccrelay.store.service`: the store is open while the
services that use it run.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.store.service import StoreService
from tests.memory_store import MemoryRelayStore


class SlowStore(MemoryRelayStore):
    """
    A memory store whose opening and closing wait for the test.
    """

    def __init__(self) -> None:
        super().__init__()
        self.opening: Deferred[None] = Deferred()
        self.closes = 0

    def open(self) -> Deferred[None]:
        super().open()
        return self.opening

    def close(self) -> Deferred[None]:
        self.closes += 1
        return super().close()


class User(Service):
    """
    A service that uses the store, and takes a while to stop.
    """

    def __init__(self, store: MemoryRelayStore) -> None:
        self.store = store
        self.stopping: Deferred[None] = Deferred()
        self.open_on_start: bool | None = None

    def startService(self) -> None:
        super().startService()
        self.open_on_start = self.store._open

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self.stopping


class StoreServiceTests(SynchronousTestCase):
    """
    Children start once the store is open and stop before it closes.
    """

    def setUp(self) -> None:
        self.store = SlowStore()
        self.service = StoreService(self.store)
        self.user = User(self.store)
        self.user.setServiceParent(self.service)

    def test_children_start_once_open(self) -> None:
        """
        The children start only after the store has opened.
        """
        self.service.startService()
        self.assertFalse(self.user.running)
        self.store.opening.callback(None)
        self.assertTrue(self.user.running)
        self.assertTrue(self.user.open_on_start)

    def test_closes_after_children_stopped(self) -> None:
        """
        The store closes only once every child has finished stopping.
        """
        self.service.startService()
        self.store.opening.callback(None)
        stopped = self.service.stopService()
        self.assertFalse(self.user.running)
        self.assertEqual(self.store.closes, 0)
        self.assertNoResult(stopped)
        self.user.stopping.callback(None)
        self.successResultOf(stopped)
        self.assertEqual(self.store.closes, 1)

    def test_stopped_while_opening(self) -> None:
        """
        Stopped before the store opened: the children never start, and the
        store closes once its opening is over.
        """
        self.service.startService()
        stopped = self.service.stopService()
        self.assertNoResult(stopped)
        self.store.opening.callback(None)
        self.successResultOf(stopped)
        self.assertFalse(self.user.running)
        self.assertIsNone(self.user.open_on_start)
        self.assertEqual(self.store.closes, 1)

    def test_open_fails(self) -> None:
        """
        A store that cannot be opened is logged; its users start all the
        same (and fail on their own calls), and stopping still works.
        """
        self.store.opening = fail(ConnectionError("database unreachable"))
        with capturedLogs() as events:
            self.service.startService()
        self.assertIn("could not open", events[0]["log_format"])
        self.flushLoggedErrors(ConnectionError)
        self.assertTrue(self.user.running)
        stopped = self.service.stopService()
        self.user.stopping.callback(None)
        self.successResultOf(stopped)
        self.assertEqual(self.store.closes, 1)
