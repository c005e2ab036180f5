"""
Tests for :mod:`dccrelay.store.startup` (the steps of a node's start-up,
tried again while a fault may pass), :mod:`dccrelay.ops.exit_status` (a
status other than 0 from twistd) and :mod:`dccrelay.ops.data_dir` (one data
directory, one relay).
"""

from __future__ import annotations

import os

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor
from twisted.logger import LogLevel, capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.ops.data_dir import LOCK_FILE, CannotLockDataDir, DataDirInUse, DataDirLock, lock_data_dir
from dccrelay.ops.exit_status import ExitStatus
from dccrelay.store.errors import StoreBusy, StoreDamaged
from dccrelay.store.startup import Startup, fault_line


class StartupTests(SynchronousTestCase):
    """
    A step is tried until it succeeds while it fails with StoreBusy, and
    ends the node on any other failure.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.fatal: list[None] = []
        self.startup = Startup(self.clock, fatal=lambda: self.fatal.append(None))

    def test_succeeds(self) -> None:
        """
        A step that succeeds fires with its result; :meth:`Startup.done`
        clears what the node waited for.
        """
        self.assertEqual(self.startup.waiting_for, "about to open the store")
        result = self.startup.attempt("open the store", lambda: succeed(7))
        self.assertEqual(self.successResultOf(result), 7)
        self.assertEqual(self.startup.waiting_for, "trying to open the store")
        self.startup.done()
        self.assertIsNone(self.startup.waiting_for)

    def test_fails_for_good(self) -> None:
        """
        Any failure but StoreBusy: one critical line, without a traceback,
        naming the step and the cause; the fatal action runs once, the
        result never fires, and nothing is tried again.
        """
        tries: list[None] = []

        def step() -> Deferred[None]:
            tries.append(None)
            return fail(StoreDamaged("the file", "file is not a database"))

        with capturedLogs() as events:
            result = self.startup.attempt("open the store", step)
        self.assertNoResult(result)
        [event] = events
        self.assertEqual(event["log_level"], LogLevel.critical)
        self.assertNotIn("log_failure", event)
        self.assertEqual(
            event["cause"],
            "could not open the store: the file is damaged or not a database (file is not a "
            "database): restore it from a backup, or move it away to start with an empty store",
        )
        self.assertEqual(self.startup.failed, event["cause"])
        self.assertEqual(self.fatal, [None])
        self.clock.advance(3600)
        self.assertEqual(len(tries), 1)
        self.startup.fail("again")
        self.assertEqual(self.fatal, [None])

    def test_cancel_while_waiting(self) -> None:
        """
        Cancelling while waiting to try again stops trying.
        """
        tries: list[None] = []

        def step() -> Deferred[None]:
            tries.append(None)
            return fail(StoreBusy("the database", "database is locked"))

        result = self.startup.attempt("open the store", step)
        result.cancel()
        self.failureResultOf(result)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual((len(tries), self.fatal), (1, []))

    def test_cancel_while_trying(self) -> None:
        """
        Cancelling a try under way cancels it, and is not taken for a
        failure of the step.
        """
        under_way: Deferred[None] = Deferred()
        result = self.startup.attempt("open the store", lambda: under_way)
        result.cancel()
        self.assertTrue(under_way.called)  # cancelled (its failure handled)
        self.failureResultOf(result)
        self.assertEqual((self.fatal, self.startup.failed), ([], None))

    def test_fault_line(self) -> None:
        """
        The store's own errors speak for themselves; others are named by
        their type; every line break goes.
        """
        self.assertEqual(
            fault_line(Failure(StoreBusy("the database", "database\nis locked"))),
            "the database is busy: database is locked",
        )
        self.assertEqual(
            fault_line(Failure(PermissionError(13, "Permission denied"))),
            "PermissionError: [Errno 13] Permission denied",
        )
        self.assertEqual(fault_line(Failure(RuntimeError())), "RuntimeError")


class ExitStatusTests(SynchronousTestCase):
    """
    The process ends with the status asked for, after twistd's own end.
    """

    def test_stop(self) -> None:
        """
        :meth:`ExitStatus.stop` stops the reactor once it runs, and registers
        an exit with the status, once, for when the interpreter exits.
        """
        reactor = MemoryReactor()
        registered: list[object] = []
        exits: list[int] = []
        status = ExitStatus(reactor, at_exit=registered.append, exit=exits.append)
        status.stop()
        status.stop(3)
        self.assertFalse(reactor.hasStopped)
        reactor.run()
        self.assertTrue(reactor.hasStopped)
        self.assertEqual(len(registered), 1)
        self.assertEqual(exits, [])
        registered[0]()  # type: ignore[operator]
        self.assertEqual(exits, [3])


class DataDirLockTests(SynchronousTestCase):
    """
    One data directory, one holder of its lock.
    """

    def test_second_holder_refused(self) -> None:
        """
        While the lock is held (even by this process, through another open
        file), taking it fails, naming the directory and the holder's pid;
        once released it can be taken again.  A missing directory is made
        0700.
        """
        directory = os.path.join(self.mktemp(), "data")
        first = DataDirLock(directory)
        first.acquire()
        self.addCleanup(first.release)
        self.assertEqual(os.stat(directory).st_mode & 0o777, 0o700)
        with open(os.path.join(directory, LOCK_FILE)) as held:
            self.assertEqual(held.read(), f"{os.getpid()}\n")
        with self.assertRaises(DataDirInUse) as caught:
            lock_data_dir(directory)
        self.assertIn(f"--data-dir {directory} is in use by another relay (process "
                      f"{os.getpid()} holds", str(caught.exception))
        second = DataDirLock(directory)
        with capturedLogs() as events:
            self.assertRaises(CannotLockDataDir, second.acquire)
        self.assertEqual([e["log_level"] for e in events], [LogLevel.critical])
        first.release()
        second.acquire()
        second.release()
