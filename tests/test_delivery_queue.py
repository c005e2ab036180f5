"""
Tests for :mod:`dccrelay.delivery.queue`, the bounded backlog.
"""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from dccrelay.delivery.queue import Backlog


class BacklogTests(TestCase):
    """
    Backlog keeps the newest ``limit`` items and counts the rest.
    """

    def test_fifo(self) -> None:
        """
        Items come out oldest first; first() peeks without removing.
        """
        backlog: Backlog[int] = Backlog(3)
        for n in range(3):
            self.assertFalse(backlog.append(n))
        self.assertEqual(backlog.first(), 0)
        self.assertEqual(len(backlog), 3)
        self.assertEqual([backlog.popleft() for _ in range(3)], [0, 1, 2])
        self.assertEqual(len(backlog), 0)
        self.assertFalse(backlog)

    def test_overflow_drops_one_oldest(self) -> None:
        """
        Each item past the limit pushes out exactly one, the oldest, and is
        counted; 1,500 into 1,000 keeps the last 1,000 and drops 500.
        """
        backlog: Backlog[int] = Backlog(1000)
        dropped = [backlog.append(n) for n in range(1500)]
        self.assertEqual(dropped, [False] * 1000 + [True] * 500)
        self.assertEqual(backlog.items(), list(range(500, 1500)))
        self.assertEqual(backlog.dropped, 500)

    def test_initial(self) -> None:
        """
        Initial items obey the same limit and count.
        """
        backlog = Backlog(2, initial=[1, 2, 3])
        self.assertEqual(backlog.items(), [2, 3])
        self.assertEqual(backlog.dropped, 1)

    def test_items_is_a_copy(self) -> None:
        """
        Changing what items() returned does not change the backlog.
        """
        backlog = Backlog(2, initial=[1])
        backlog.items().append(5)
        self.assertEqual(backlog.items(), [1])

    def test_limit_must_be_positive(self) -> None:
        """
        A limit below 1 is refused with a message naming the value.
        """
        error = self.assertRaises(ValueError, Backlog, 0)
        self.assertIn("at least 1, got 0", str(error))

    def test_empty(self) -> None:
        """
        first() and popleft() on an empty backlog raise IndexError.
        """
        backlog: Backlog[bytes] = Backlog(1)
        self.assertRaises(IndexError, backlog.first)
        self.assertRaises(IndexError, backlog.popleft)
