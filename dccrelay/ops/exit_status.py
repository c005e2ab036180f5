"""
Stopping ``twistd dcc`` with an exit status other than 0, once its reactor
runs.

twistd exits 0 whenever its reactor stops, however it was stopped (Twisted
has no way to give it a status: twisted/twisted#11335), so a node that
could not load its store would look to systemd (``Restart=on-failure``) like
one that was asked to stop.  :class:`ExitStatus` stops the reactor, lets
twistd shut down as usual (services stopped, store closed, pid file
removed), and only then, as the interpreter exits, replaces the status.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import Any, Callable

from twisted.internet.error import ReactorNotRunning


class ExitStatus:
    """
    Stops the process with a status of its own.

    :param reactor: the reactor twistd runs.
    :param at_exit: registers what runs as the interpreter exits.
    :param exit: ends the process with a status, at once.
    """

    def __init__(
        self,
        reactor: Any,
        at_exit: Callable[[Callable[[], None]], object] = atexit.register,
        exit: Callable[[int], object] = os._exit,
    ) -> None:
        self._reactor = reactor
        self._at_exit = at_exit
        self._exit = exit
        #: the status the process will end with, once :meth:`stop` was called
        self.status: int | None = None

    def stop(self, status: int = 1) -> None:
        """
        Stop the reactor; the process then exits with ``status``.
        """
        if self.status is None:
            self._at_exit(self._end)
        self.status = status
        # At once if it runs; if start-up failed before it ran, as it starts.
        self._reactor.callWhenRunning(self._stop_reactor)

    def _stop_reactor(self) -> None:
        try:
            self._reactor.stop()
        except ReactorNotRunning:
            pass  # already stopping

    def _end(self) -> None:
        # After twistd's own clean-up and every thread joined; os._exit
        # flushes nothing itself.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        assert self.status is not None
        self._exit(self.status)
