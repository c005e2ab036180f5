"""
Python's garbage collector on a relay with thousands of bots.

A full collection walks every object the process holds (about 130 per
bot), so at 10,000 bots each one stopped the reactor for ~700 ms, and while
the heap grows at start-up CPython runs one at every quarter of growth.
What a relay holds after start-up lives for hours (bots, shards, filters,
their connections), so:

- while the node starts, full collections wait (the oldest generation's
  threshold is raised; young collections go on as usual);
- once start-up has settled (the registrations are loaded, no session start
  waits, and two checks in a row agree) or after ``deadline`` seconds at
  most, a young collection, then :func:`gc.freeze` moves everything alive
  into the permanent generation, out of every later collection's walk, and
  the usual thresholds come back.  Later collections walk only what was
  made after start-up.

Frozen objects are still freed by reference counting, but never by the
collector: one that later becomes garbage inside a reference cycle stays.
A gateway connection is what a relay throws away most (every reconnect), so
:class:`dccrelay.gateway.connection.GatewayProtocol` drops its cycles when
it ends and is freed at once, frozen or not.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

#: the oldest generation's threshold while the node starts: no full collection
STARTING_THRESHOLD = 1_000_000_000


class Collector(Protocol):
    """What this module uses of :mod:`gc` (a fake in tests)."""

    def get_threshold(self) -> tuple[int, int, int]: ...

    def set_threshold(
        self, threshold0: int, threshold1: int = ..., threshold2: int = ...
    ) -> None: ...

    def collect(self, generation: int = ...) -> int: ...

    def freeze(self) -> None: ...

    def unfreeze(self) -> None: ...


class StartUpCollector(Service):
    """
    Holds full collections back while the node starts, then freezes what
    start-up made.

    :param settled: whether start-up is over (the manager's view).
    :param interval: seconds between two checks of ``settled``.
    :param deadline: seconds after which it freezes even if not settled
        (a node whose start-up never settles must still collect).
    """

    _log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        settled: Callable[[], bool],
        interval: float = 1.0,
        deadline: float = 600.0,
        collector: Collector = gc,
    ) -> None:
        self._clock = clock
        self._settled = settled
        self._interval = interval
        self._deadline = deadline
        self._gc = collector
        self._loop = LoopingCall(self._check)
        self._loop.clock = clock
        self._started = 0.0
        self._agreed = 0
        self._usual: tuple[int, int, int] | None = None
        #: whether what start-up made is frozen
        self.frozen = False

    def startService(self) -> None:
        super().startService()
        self._usual = self._gc.get_threshold()
        young, middle, _ = self._usual
        self._gc.set_threshold(young, middle, STARTING_THRESHOLD)
        self._started = self._clock.seconds()
        self._loop.start(self._interval, now=False)

    def stopService(self) -> Any:
        if self._loop.running:
            self._loop.stop()
        self._restore()
        if self.frozen:
            # Stopping: what was frozen is the collector's again (a process
            # that goes on, such as a test run, must not keep it frozen).
            self._gc.unfreeze()
            self.frozen = False
        return super().stopService()

    def _check(self) -> None:
        self._agreed = self._agreed + 1 if self._settled() else 0
        late = self._clock.seconds() - self._started >= self._deadline
        if self._agreed >= 2 or late:
            self._loop.stop()
            self._freeze(late and self._agreed < 2)

    def _freeze(self, late: bool) -> None:
        # What start-up threw away young is collected first, not frozen.
        self._gc.collect(1)
        # Not counted (gc.get_freeze_count()): that walks every frozen
        # object, ~190 ms of the reactor at 9,800 bots; freezing itself is
        # two list splices.
        self._gc.freeze()
        self.frozen = True
        self._restore()
        self._log.info(
            "start-up {how}: froze what it made out of the garbage collector's walks",
            how="not settled in time" if late else "settled",
        )

    def _restore(self) -> None:
        if self._usual is not None:
            self._gc.set_threshold(*self._usual)
            self._usual = None
