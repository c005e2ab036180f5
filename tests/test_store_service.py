"""
Tests for :mod:`dccrelay.store.service`: the store is open while the
services that use it run.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.store.errors import StoreBusy, StoreUnreachable
from dccrelay.store.service import StoreService
from dccrelay.store.startup import Startup
from tests.memory_store import MemoryRelayStore


class SlowStore(MemoryRelayStore):
    """
    A memory store whose opening and closing wait for the test.
    """

    def __init__(self) -> None:
        super().__init__()
        self.opening: Deferred[None] = Deferred()
        self.opens = 0
        self.closes = 0

    def open(self) -> Deferred[None]:
        self.opens += 1
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
        self.clock = Clock()
        self.fatal: list[None] = []
        self.startup = Startup(self.clock, fatal=lambda: self.fatal.append(None))
        self.service = StoreService(self.store, self.startup)
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
        Stopped before the store opened: opening is given up, the children
        never start, and the store is closed (a real store's close waits
        for the open under way).
        """
        self.service.startService()
        stopped = self.service.stopService()
        self.successResultOf(stopped)
        self.assertTrue(self.store.opening.called)  # cancelled
        self.assertFalse(self.user.running)
        self.assertIsNone(self.user.open_on_start)
        self.assertEqual(self.store.closes, 1)

    def test_open_fails(self) -> None:
        """
        A store that cannot be opened for good (an unreachable server) stops
        start-up: one critical line naming the cause, the node's fatal
        action, and its users never start; stopping still works.
        """
        self.store.opening = fail(StoreUnreachable("the database", "connection refused"))
        with capturedLogs() as events:
            self.service.startService()
        critical = [e for e in events if e["log_level"] == LogLevel.critical]
        self.assertEqual(len(critical), 1)
        self.assertEqual(
            critical[0]["cause"],
            "could not open the store: Could not connect to the database: connection refused. "
            "Check the store URL's host, port, database, user and password, and that the "
            "server accepts connections from this machine.",
        )
        self.assertNotIn("log_failure", critical[0])
        self.assertEqual(self.fatal, [None])
        self.assertFalse(self.user.running)
        self.assertEqual(self.startup.failed, critical[0]["cause"])
        stopped = self.service.stopService()
        self.successResultOf(stopped)
        self.assertEqual(self.store.closes, 1)

    def test_busy_store_tried_again(self) -> None:
        """
        A store that is busy (a lock held by another process) is opened
        again after a growing wait, saying why meanwhile; the users start
        once it opens.
        """
        self.store.opening = fail(StoreBusy("the database", "database is locked"))
        self.service.startService()
        self.assertEqual(self.store.opens, 1)
        self.assertFalse(self.user.running)
        self.assertIn("database is locked", self.startup.waiting_for or "")
        self.assertIn("trying again in 1 s", self.startup.waiting_for or "")
        self.store.opening = fail(StoreBusy("the database", "database is locked"))
        self.clock.advance(1)
        self.assertEqual(self.store.opens, 2)
        self.assertIn("trying again in 2 s", self.startup.waiting_for or "")
        self.store.opening = Deferred()
        self.clock.advance(1.9)
        self.assertEqual(self.store.opens, 2)
        self.clock.advance(0.1)
        self.assertEqual(self.store.opens, 3)
        self.store.opening.callback(None)
        self.assertTrue(self.user.running)
        self.assertEqual(self.fatal, [])
        self.flushLoggedErrors()

    def test_stopped_while_waiting_to_try_again(self) -> None:
        """
        Stopping while waiting to open a busy store again stops trying, and
        closes the store.
        """
        self.store.opening = fail(StoreBusy("the database", "database is locked"))
        self.service.startService()
        self.successResultOf(self.service.stopService())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(60)
        self.assertEqual(self.store.opens, 1)
        self.assertEqual(self.store.closes, 1)
        self.assertFalse(self.user.running)
