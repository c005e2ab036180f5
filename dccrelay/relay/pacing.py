"""
Starting thousands of gateway sessions at a steady pace.

A node that starts with 10,000 bots (a restart, or a cluster node claiming
its share) would otherwise open every connection in the same few reactor
turns: the handshakes and RESUMEs then complete in bursts that stall the
reactor for seconds, heartbeats go late, and the last bots wait longest
anyway.  A :class:`Pacer` runs the queued starts a few at a time, at most
``per_second``; Discord limits IDENTIFYs per bot, not RESUMEs, so the pace
is the node's own CPU budget.

The pace alone does not bound the work of one reactor turn: when the node
cannot keep up with it (a busy or shared machine), openings pile up, and the
TLS handshakes, upgrades and RESUMEs of all of them come due in the same
turns (at 9,800 bots starting 25 a turn: turns of 150-400 ms).  So a pacer
may also be given a ``window``: at most that many started calls still at
work (each says so through its ``busy`` check) before it starts more.  A
node that falls behind then opens sessions as fast as it completes them,
and no faster.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Deque

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

#: whether a started call is still at work (its session still opening)
Busy = Callable[[], bool]


class Pacer:
    """
    Runs queued calls in order, ``burst`` at a time, at most ``per_second``,
    and, with a ``window``, while fewer than ``window`` of those it started
    are still busy.

    :param hold: seconds after which a started call no longer counts against
        the window even if still busy: one that hangs (an unanswered
        connection, until its own timeout) must not hold the others back.
    """

    _log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        per_second: float,
        burst: int,
        window: int | None = None,
        hold: float = 5.0,
    ) -> None:
        self._clock = clock
        self._burst = burst
        self._interval = burst / per_second
        self._window = window
        self._hold = hold
        self._queue: Deque[tuple[Callable[[], object], Busy | None]] = deque()
        # started calls that may still be busy, with when each started
        self._working: list[tuple[Busy, float]] = []
        self._timer: IDelayedCall | None = None

    @property
    def pending(self) -> int:
        """
        How many calls wait.
        """
        return len(self._queue)

    @property
    def working(self) -> int:
        """
        How many started calls count against the window now.
        """
        self._prune()
        return len(self._working)

    def add(self, call: Callable[[], object], busy: Busy | None = None) -> None:
        """
        Run ``call`` in its turn: in the next reactor turn if the pace (and
        the window) allows.

        :param busy: asked after ``call`` ran, and in later turns, whether
            it is still at work; until it says no (or ``hold`` passes), it
            counts against the window.
        """
        self._queue.append((call, busy))
        if self._timer is None:
            self._timer = self._clock.callLater(0, self._run)

    def stop(self) -> None:
        """
        Drop what waits.
        """
        self._queue.clear()
        self._working.clear()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _prune(self) -> None:
        now = self._clock.seconds()
        self._working = [
            (busy, since)
            for busy, since in self._working
            if now - since < self._hold and busy()
        ]

    def _room(self) -> int:
        if self._window is None:
            return self._burst
        self._prune()
        return max(0, self._window - len(self._working))

    def _run(self) -> None:
        self._timer = None
        queue = self._queue
        if not queue:
            return
        now = self._clock.seconds()
        for _ in range(min(self._burst, len(queue), self._room())):
            call, busy = queue.popleft()
            try:
                call()
            except Exception:
                self._log.failure("a paced start failed")
                continue
            if busy is not None and self._window is not None and busy():
                self._working.append((busy, now))
        # Even with nothing left: what comes within the interval waits for it.
        # With the window full, this is also when it looks again.
        self._timer = self._clock.callLater(self._interval, self._run)
