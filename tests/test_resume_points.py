"""
Tests for :mod:`dccrelay.gateway.resume_points`.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from dccrelay.gateway.resume_points import ResumePoints


class ResumePointsTests(SynchronousTestCase):
    """
    A shard resumes from just before the oldest dispatch the bot lacks.
    """

    def test_nothing_waiting(self) -> None:
        """
        With nothing waiting, the latest seq is safe.
        """
        self.assertEqual(ResumePoints().resume_seq(0, 41), 41)

    def test_oldest_waiting(self) -> None:
        """
        With dispatches waiting, resume just before the oldest of that
        shard's.
        """
        points = ResumePoints()
        for shard, seq in ((0, 5), (1, 9), (0, 7)):
            points.handed_over(shard, seq)
        self.assertEqual(points.resume_seq(0, 20), 4)
        self.assertEqual(points.resume_seq(1, 20), 8)
        self.assertEqual(points.resume_seq(2, 20), 20)

    def test_settle(self) -> None:
        """
        What the channel no longer holds (delivered or dropped, from the
        front) no longer holds a shard back.
        """
        points = ResumePoints()
        for seq in (5, 6, 7):
            points.handed_over(0, seq)
        points.settle(1)
        self.assertEqual(points.resume_seq(0, 20), 6)
        points.settle(0)
        self.assertEqual(points.resume_seq(0, 20), 20)

    def test_clear(self) -> None:
        """
        Once the sessions end, nothing holds back.
        """
        points = ResumePoints()
        points.handed_over(0, 5)
        points.clear()
        self.assertEqual(points.resume_seq(0, 20), 20)
