"""
Discord's limit on what a client sends: 120 payloads per 60 s on each
gateway connection, heartbeats included.  Going over closes the connection
with 4008, so commands wait here instead; a few places in every window are
kept for heartbeats, which must never wait.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

SEND_LIMIT = 120
SEND_WINDOW = 60.0
# Heartbeats go about every 41 s; IDENTIFY or RESUME once per connection.
RESERVED_FOR_HEARTBEATS = 5


class CommandLimiter:
    """
    Paces one connection's outgoing payloads.

    :param send: writes one payload now.
    """

    __slots__ = ("_clock", "_send", "_sent_at", "_queue", "_timer", "limit", "window")

    def __init__(
        self,
        clock: IReactorTime,
        send: Callable[[dict[str, object]], None],
        limit: int = SEND_LIMIT,
        window: float = SEND_WINDOW,
    ) -> None:
        self._clock = clock
        self._send = send
        self.limit = limit
        self.window = window
        # Lists, not deques: a few entries each (a deque costs 600 bytes
        # from the start, and every connection has one of these).
        self._sent_at: list[float] = []
        self._queue: list[dict[str, object]] = []
        self._timer: IDelayedCall | None = None

    @property
    def queued(self) -> int:
        """
        Commands waiting for room.
        """
        return len(self._queue)

    def send_now(self, payload: dict[str, object]) -> None:
        """
        Send a heartbeat (or IDENTIFY/RESUME) at once; it counts against
        the window but never waits.
        """
        self._forget_old()
        self._sent_at.append(self._clock.seconds())
        self._send(payload)

    def send(self, payload: dict[str, object]) -> None:
        """
        Send a command as soon as the window has room for it, in order.
        """
        self._queue.append(payload)
        self._drain()

    def reset(self) -> None:
        """
        A new connection: a fresh window, and nothing left to send.
        """
        self._sent_at.clear()
        self._queue.clear()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _forget_old(self) -> None:
        horizon = self._clock.seconds() - self.window
        while self._sent_at and self._sent_at[0] <= horizon:
            del self._sent_at[0]

    def _drain(self) -> None:
        self._forget_old()
        room = self.limit - RESERVED_FOR_HEARTBEATS - len(self._sent_at)
        while self._queue and room > 0:
            self._sent_at.append(self._clock.seconds())
            self._send(self._queue.pop(0))
            room -= 1
        if self._queue and (self._timer is None or not self._timer.active()):
            wait = self._sent_at[0] + self.window - self._clock.seconds()
            self._timer = self._clock.callLater(max(wait, 0.0), self._wake)

    def _wake(self) -> None:
        self._timer = None
        self._drain()
