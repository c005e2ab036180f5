"""
Gateway heartbeats, with zombie detection.

Discord: the first beat goes ``interval * jitter`` after HELLO (jitter in
[0, 1)), then one every interval.  A beat that finds the previous one still
unacknowledged means the connection is a zombie.
"""

from __future__ import annotations

from random import Random
from typing import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime


class Heartbeat:
    """
    Sends heartbeats for one gateway connection.

    :param send_beat: sends op 1 now.
    :param on_zombie: called (once) when an ACK did not come in time.
    """

    __slots__ = ("_clock", "_random", "_send_beat", "_on_zombie", "_interval",
                 "_timer", "_acked", "last_sent", "latency")

    def __init__(
        self,
        clock: IReactorTime,
        random: Random,
        send_beat: Callable[[], None],
        on_zombie: Callable[[], None],
    ) -> None:
        self._clock = clock
        self._random = random
        self._send_beat = send_beat
        self._on_zombie = on_zombie
        self._interval = 0.0
        self._timer: IDelayedCall | None = None
        self._acked = True
        self.last_sent: float | None = None
        self.latency: float | None = None

    def start(self, interval: float) -> None:
        """
        Begin beating every ``interval`` seconds, the first after a random
        fraction of it.
        """
        self.stop()
        self._interval = interval
        self._acked = True
        self._timer = self._clock.callLater(interval * self._random.random(), self._due)

    def stop(self) -> None:
        """
        No more beats (the connection is gone).
        """
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def acked(self) -> None:
        """
        Discord answered a beat with op 11.
        """
        self._acked = True
        if self.last_sent is not None:
            self.latency = self._clock.seconds() - self.last_sent

    def beat_now(self) -> None:
        """
        Discord asked for a beat (op 1): send one at once, keeping the
        schedule.
        """
        self._beat()

    def _beat(self) -> None:
        self._acked = False
        self.last_sent = self._clock.seconds()
        self._send_beat()

    def _due(self) -> None:
        self._timer = None
        if not self._acked:
            self._on_zombie()
            return
        self._beat()
        self._timer = self._clock.callLater(self._interval, self._due)
