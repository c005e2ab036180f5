"""
Tests for :mod:`dccrelay.ops.lagprobe`: the opt-in reactor stall probe.
"""

from __future__ import annotations

import gc

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.ops.lagprobe import LagProbe


class LagProbeTests(SynchronousTestCase):
    """
    The probe reports how much later than planned its timer ran.
    """

    def test_reports_worst_stall(self) -> None:
        """
        A reactor busy for 250 ms delays the 10 ms timer by 240 ms; the
        report after a second names that worst delay, and the next window
        starts afresh.
        """
        clock = Clock()
        probe = LagProbe(clock, interval=0.01, report_every=1.0)
        probe.startService()
        with capturedLogs() as events:
            clock.advance(0.01)
            clock.advance(0.25)
            for _ in range(80):
                clock.advance(0.01)
        reports = [e for e in events if "worst_ms" in e]
        self.assertEqual(len(reports), 1)
        self.assertAlmostEqual(reports[0]["worst_ms"], 240.0, places=3)
        self.assertAlmostEqual(probe.worst_ever, 0.24, places=6)
        with capturedLogs() as events:
            for _ in range(101):
                clock.advance(0.01)
        later = [e for e in events if "worst_ms" in e]
        self.assertEqual(len(later), 1)
        self.assertAlmostEqual(later[0]["worst_ms"], 0.0, places=3)
        self.assertAlmostEqual(later[0]["worst_ever_ms"], 240.0, places=3)
        probe.stopService()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_on_cpu_part(self) -> None:
        """
        A stall is reported with the part the reactor thread spent on the
        CPU: 240 ms late having worked 60 ms (the process was not running
        the rest) is a 60 ms on-CPU stall; the CPU time of a tick on time
        does not count.
        """
        clock = Clock()
        cpu = [0.0]
        probe = LagProbe(clock, interval=0.01, report_every=1.0, cpu_timer=lambda: cpu[0])
        probe.startService()
        with capturedLogs() as events:
            cpu[0] += 0.009
            clock.advance(0.01)
            cpu[0] += 0.06
            clock.advance(0.25)
            for _ in range(80):
                clock.advance(0.01)
        [report] = [e for e in events if "worst_ms" in e]
        self.assertAlmostEqual(report["worst_ms"], 240.0, places=3)
        self.assertAlmostEqual(report["on_cpu_ms"], 60.0, places=3)
        probe.stopService()

    def test_reports_longest_collection(self) -> None:
        """
        The report names the longest garbage collection of its window and
        its generation; the probe's callback is gone once it stops.
        """
        clock = Clock()
        now = [0.0]
        probe = LagProbe(clock, interval=0.01, report_every=1.0, timer=lambda: now[0])
        probe.startService()
        self.assertIn(probe.collection, gc.callbacks)
        for generation, took in ((0, 0.001), (2, 0.180), (1, 0.010)):
            probe.collection("start", {"generation": generation})
            now[0] += took
            probe.collection("stop", {"generation": generation})
        with capturedLogs() as events:
            for _ in range(101):
                clock.advance(0.01)
        [report] = [e for e in events if "gc_ms" in e]
        self.assertAlmostEqual(report["gc_ms"], 180.0, places=3)
        self.assertEqual(report["gc_generation"], 2)
        probe.stopService()
        self.assertNotIn(probe.collection, gc.callbacks)
