"""
The timed rules of one simulated gateway connection: the heartbeat deadline
(4009 when missed) and the limit of 120 client payloads per 60 s (4008), as
:mod:`dccrelay.testing.connection` describes them.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Callable

from twisted.internet.interfaces import IDelayedCall

if TYPE_CHECKING:
    from dccrelay.testing.simulator import DiscordSimulator


class HeartbeatDeadline:
    """
    The time by which the next heartbeat must come.

    :param missed: called once the deadline passes without one.
    """

    def __init__(self, simulator: DiscordSimulator, missed: Callable[[], None]) -> None:
        self._sim = simulator
        self._clock = simulator.clock
        self._missed = missed
        self._call: IDelayedCall | None = None

    def arm(self) -> None:
        """
        Start counting afresh from now (HELLO, or a heartbeat received).
        """
        self.cancel()
        # read at every arm: a test may change the simulator's timeout
        self._call = self._clock.callLater(self._sim.heartbeat_timeout, self._passed)

    def cancel(self) -> None:
        """
        Stop counting (the connection is closing).
        """
        if self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None

    def _passed(self) -> None:
        self._call = None
        self._missed()


class PayloadRate:
    """
    The client payloads received within the simulator's payload window.
    """

    def __init__(self, simulator: DiscordSimulator) -> None:
        self._sim = simulator
        self._clock = simulator.clock
        self._times: deque[float] = deque()

    def count(self) -> bool:
        """
        Count one payload received now.

        :return: whether the client is still within the limit.
        """
        now = self._clock.seconds()
        times = self._times
        times.append(now)
        while times and times[0] <= now - self._sim.payload_window:
            times.popleft()
        return len(times) <= self._sim.payload_limit
