"""
Tests for :mod:`dccrelay.delivery.timers`.
"""

from __future__ import annotations

from twisted.application.internet import backoffPolicy
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from dccrelay.delivery.timers import Deadline, IdleTimer, RetryTimer


class DeadlineTests(TestCase):
    """
    Deadline: one pending call at a time.
    """

    def test_start_replaces(self) -> None:
        """
        Starting again replaces the earlier schedule; cancel forgets it.
        """
        clock = Clock()
        calls: list[float] = []
        deadline = Deadline(clock, lambda: calls.append(clock.seconds()))
        deadline.start(5.0)
        clock.advance(3.0)
        deadline.start(5.0)
        self.assertTrue(deadline.active)
        clock.advance(4.9)
        self.assertEqual(calls, [])
        clock.advance(0.1)
        self.assertEqual(calls, [8.0])
        self.assertFalse(deadline.active)
        deadline.start(1.0)
        deadline.cancel()
        deadline.cancel()
        clock.advance(2.0)
        self.assertEqual(calls, [8.0])
        self.assertEqual(clock.getDelayedCalls(), [])


class RetryTimerTests(TestCase):
    """
    RetryTimer counts consecutive failures from 1.
    """

    def test_schedule(self) -> None:
        """
        Each failure waits policy(attempt); success resets attempt to 0.
        """
        clock = Clock()
        retries: list[float] = []
        timer = RetryTimer(
            clock, lambda attempt: 10.0 * attempt, lambda: retries.append(clock.seconds())
        )
        self.assertEqual(timer.failed(), 10.0)
        clock.advance(10.0)
        self.assertEqual(timer.failed(), 20.0)
        clock.advance(20.0)
        self.assertEqual(retries, [10.0, 30.0])
        timer.succeeded()
        self.assertEqual(timer.attempt, 0)
        self.assertEqual(timer.failed(), 10.0)

    def test_succeeded_cancels(self) -> None:
        """
        A success cancels a pending retry.
        """
        clock = Clock()
        timer = RetryTimer(clock, lambda attempt: 1.0, lambda: None)
        timer.failed()
        timer.succeeded()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_backoff_policy(self) -> None:
        """
        Twisted's backoffPolicy fits: the first retry waits initialDelay
        times factor, growing up to maxDelay.
        """
        clock = Clock()
        policy = backoffPolicy(initialDelay=1.0, maxDelay=60.0, jitter=lambda: 0.0)
        timer = RetryTimer(clock, policy, lambda: None)
        delays = [timer.failed() for _ in range(12)]
        self.assertEqual(delays[0], 1.5)
        self.assertEqual(delays[-1], 60.0)
        self.assertEqual(delays, sorted(delays))


class IdleTimerTests(TestCase):
    """
    IdleTimer fires after ``timeout`` seconds without touch().
    """

    def test_touch_restarts(self) -> None:
        """
        touch() starts the idle period again.
        """
        clock = Clock()
        idle: list[float] = []
        timer = IdleTimer(clock, 60.0, lambda: idle.append(clock.seconds()))
        timer.touch()
        clock.advance(50.0)
        timer.touch()
        clock.advance(59.0)
        self.assertEqual(idle, [])
        clock.advance(1.0)
        self.assertEqual(idle, [110.0])
