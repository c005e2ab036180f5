"""
Starting thousands of gateway sessions at a steady pace.

A node that starts with 10,000 bots (a restart, or a cluster node claiming
its share) would otherwise open every connection in the same few reactor
turns: the handshakes and RESUMEs then complete in bursts that stall the
reactor for seconds, heartbeats go late, and the last bots wait longest
anyway.  A :class:`Pacer` runs the queued starts a few at a time, at most
``per_second``; Discord limits IDENTIFYs per bot, not RESUMEs, so the pace
is the node's own CPU budget.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Deque

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger


class Pacer:
    """
    Runs queued calls in order, ``burst`` at a time, at most ``per_second``.
    """

    _log = Logger()

    def __init__(self, clock: IReactorTime, per_second: float, burst: int) -> None:
        self._clock = clock
        self._burst = burst
        self._interval = burst / per_second
        self._queue: Deque[Callable[[], object]] = deque()
        self._timer: IDelayedCall | None = None

    @property
    def pending(self) -> int:
        """
        How many calls wait.
        """
        return len(self._queue)

    def add(self, call: Callable[[], object]) -> None:
        """
        Run ``call`` in its turn: in the next reactor turn if the pace
        allows.
        """
        self._queue.append(call)
        if self._timer is None:
            self._timer = self._clock.callLater(0, self._run)

    def stop(self) -> None:
        """
        Drop what waits.
        """
        self._queue.clear()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _run(self) -> None:
        self._timer = None
        queue = self._queue
        if not queue:
            return
        for _ in range(min(self._burst, len(queue))):
            call = queue.popleft()
            try:
                call()
            except Exception:
                self._log.failure("a paced start failed")
        # Even with nothing left: what comes within the interval waits for it.
        self._timer = self._clock.callLater(self._interval, self._run)
