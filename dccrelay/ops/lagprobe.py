"""
An opt-in probe of reactor stalls (``twistd dcc --lag-probe``), for
benchmarks: a LoopingCall every ``interval`` seconds notes how much later
than planned it runs, which is how long the reactor was busy with something
else, and logs the worst delay once per ``report_every`` seconds.

On a shared machine the reactor may also be late because the process was
not running at all (other processes had the cores): each stall is reported
with how much of it the reactor thread spent on the CPU
(:func:`time.thread_time`), the part that is the relay's own work.

It also times Python's garbage collections (:data:`gc.callbacks`): a full
collection walks every object the process holds, so with thousands of bots
it is what the longest stalls are made of, and the report says so.
"""

from __future__ import annotations

import gc
import time
from typing import Any, Callable

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
        self,
        clock: IReactorTime,
        interval: float = 0.01,
        report_every: float = 1.0,
        timer: Callable[[], float] = time.perf_counter,
        cpu_timer: Callable[[], float] = time.thread_time,
    ) -> None:
        self._clock = clock
        self._timer = timer
        self._cpu_timer = cpu_timer
        self._last_cpu = 0.0
        self._worst_on_cpu = 0.0
        self._gc_started = 0.0
        self._gc_worst = 0.0
        self._gc_worst_generation = 0
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
        self._last_cpu = self._cpu_timer()
        self._loop.start(self._interval, now=False)
        gc.callbacks.append(self.collection)

    def stopService(self) -> None:
        super().stopService()
        if self._loop.running:
            self._loop.stop()
        if self.collection in gc.callbacks:
            gc.callbacks.remove(self.collection)

    def collection(self, phase: str, info: dict[str, Any]) -> None:
        """
        A :data:`gc.callbacks` callback: time each collection.
        """
        if phase == "start":
            self._gc_started = self._timer()
            return
        took = self._timer() - self._gc_started
        if took > self._gc_worst:
            self._gc_worst = took
            self._gc_worst_generation = info.get("generation", 0)

    def _tick(self) -> None:
        now = self._clock.seconds()
        lag = max(0.0, now - self._last - self._interval)
        cpu = self._cpu_timer()
        # the reactor thread's own CPU time while it was late, at most the lag
        on_cpu = min(lag, cpu - self._last_cpu)
        self._last, self._last_cpu = now, cpu
        if lag > self._worst:
            self._worst = lag
            self.worst_ever = max(self.worst_ever, lag)
        self._worst_on_cpu = max(self._worst_on_cpu, on_cpu)
        if now - self._window_start >= self._report_every:
            self._log.info(
                "reactor lag: worst {worst_ms:.1f} ms in the last {seconds:.1f} s"
                " (worst since start {worst_ever_ms:.1f} ms); longest garbage collection"
                " {gc_ms:.1f} ms (generation {gc_generation}); worst on-CPU stall"
                " {on_cpu_ms:.1f} ms",
                worst_ms=self._worst * 1000,
                seconds=now - self._window_start,
                worst_ever_ms=self.worst_ever * 1000,
                gc_ms=self._gc_worst * 1000,
                gc_generation=self._gc_worst_generation,
                on_cpu_ms=self._worst_on_cpu * 1000,
            )
            self._window_start = now
            self._worst = 0.0
            self._worst_on_cpu = 0.0
            self._gc_worst = 0.0
