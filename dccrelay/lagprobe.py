"""
An opt-in probe of reactor stalls (``twistd dcc --lag-probe``), for
benchmarks: a LoopingCall every ``interval`` seconds notes how much later
than planned it runs, which is how long the reactor was busy with something
else, and logs the worst delay once per ``report_every`` seconds.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger


class LagProbe(Service):
    """
    Logs ``reactor lag: worst {worst_ms} ms ...`` every ``report_every``
    seconds.

    :ivar worst_ever: the longest stall seen since start, in seconds.
    """

    _log = Logger()

    def __init__(
        self, clock: IReactorTime, interval: float = 0.01, report_every: float = 1.0
    ) -> None:
        self._clock = clock
        self._interval = interval
        self._report_every = report_every
        self._loop = LoopingCall(self._tick)
        self._loop.clock = clock
        self._last = 0.0
        self._window_start = 0.0
        self._worst = 0.0
        self.worst_ever = 0.0

    def startService(self) -> None:
        super().startService()
        now = self._clock.seconds()
        self._last = self._window_start = now
        self._loop.start(self._interval, now=False)

    def stopService(self) -> None:
        super().stopService()
        if self._loop.running:
            self._loop.stop()

    def _tick(self) -> None:
        now = self._clock.seconds()
        lag = max(0.0, now - self._last - self._interval)
        self._last = now
        if lag > self._worst:
            self._worst = lag
            self.worst_ever = max(self.worst_ever, lag)
        if now - self._window_start >= self._report_every:
            self._log.info(
                "reactor lag: worst {worst_ms:.1f} ms in the last {seconds:.1f} s"
                " (worst since start {worst_ever_ms:.1f} ms)",
                worst_ms=self._worst * 1000,
                seconds=now - self._window_start,
                worst_ever_ms=self.worst_ever * 1000,
            )
            self._window_start = now
            self._worst = 0.0
