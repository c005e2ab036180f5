"""
The timers every delivery channel needs, on an injected clock.

:class:`RetryTimer` waits before the next attempt to reach a bot that could
not be reached, growing the wait with each consecutive failure.
:class:`IdleTimer` closes a connection that has had nothing to carry for a
while, so that the bot's host can put it to sleep.  :class:`Deadline` bounds
anything else that waits on the bot (a handshake, a close).
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime


class Deadline:
    """
    At most one pending call of ``callback`` on ``clock``; starting again
    replaces it.
    """

    __slots__ = ("_clock", "_callback", "_call")

    def __init__(self, clock: IReactorTime, callback: Callable[[], object]) -> None:
        self._clock = clock
        self._callback = callback
        self._call: IDelayedCall | None = None

    @property
    def active(self) -> bool:
        """
        True while a call is pending.
        """
        return self._call is not None and self._call.active()

    def cancel(self) -> None:
        """
        Forget the pending call, if any.
        """
        if self.active:
            assert self._call is not None
            self._call.cancel()
        self._call = None

    def start(self, delay: float) -> None:
        """
        Call back in ``delay`` seconds (instead of any earlier schedule).
        """
        self.cancel()
        self._call = self._clock.callLater(delay, self._fire)

    def _fire(self) -> None:
        self._call = None
        self._callback()


class RetryTimer(Deadline):
    """
    Calls ``retry`` after ``policy(attempt)`` seconds, where ``attempt``
    counts consecutive failures from 1, as
    :class:`twisted.application.internet.ClientService` does, so
    :func:`~twisted.application.internet.backoffPolicy` fits.

    :param policy: seconds to wait before the next attempt, given the
        number of failures so far.
    """

    __slots__ = ("_policy", "attempt")

    def __init__(
        self,
        clock: IReactorTime,
        policy: Callable[[int], float],
        retry: Callable[[], object],
    ) -> None:
        super().__init__(clock, retry)
        self._policy = policy
        #: consecutive failures; 0 after a success
        self.attempt = 0

    def failed(self, delay: float | None = None) -> float:
        """
        Count one more failure and schedule the retry.

        :param delay: seconds to wait instead of what the policy says (the
            bot said how long, e.g. with ``Retry-After``).
        :return: the delay chosen, in seconds.
        """
        self.attempt += 1
        if delay is None:
            delay = self._policy(self.attempt)
        self.start(delay)
        return delay

    def succeeded(self) -> None:
        """
        The bot was reached: the next failure waits the shortest time again.
        """
        self.cancel()
        self.attempt = 0


class IdleTimer(Deadline):
    """
    Calls ``on_idle`` once ``timeout`` seconds pass without :meth:`touch`.
    """

    __slots__ = ("_timeout",)

    def __init__(
        self, clock: IReactorTime, timeout: float, on_idle: Callable[[], object]
    ) -> None:
        super().__init__(clock, on_idle)
        self._timeout = timeout

    def touch(self) -> None:
        """
        Something was just sent: the idle period starts again now.
        """
        self.start(self._timeout)
