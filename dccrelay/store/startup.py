"""
How a node gets from nothing to its loaded registry: the store opened, then
the registrations loaded.

A fault that may pass (:class:`~dccrelay.store.errors.StoreBusy`: a lock
another process holds, a server still starting) is tried again with
backoff, and :attr:`Startup.waiting_for` says why the node is not serving
yet (``/healthz`` shows it).  Any other fault (a damaged file, an
unreachable server, keys that do not decrypt the stored secrets, a schema
from a newer dccrelay) is logged as one line naming the cause, and the node
stops with a status other than 0, so that systemd and load balancers see
it: a node never serves an empty registry as if it were the real one.
"""

from __future__ import annotations

from typing import Callable, TypeVar

from twisted.application.internet import backoffPolicy
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from .errors import StoreBusy

_T = TypeVar("_T")

#: Seconds before the n-th try again: 1, 2, 4 ... up to 30.  No jitter: one
#: node waits for its own database.
RETRY_POLICY = backoffPolicy(initialDelay=1.0, maxDelay=30.0, factor=2.0, jitter=lambda: 0.0)


def fault_line(failure: Failure) -> str:
    """
    What went wrong, on one line, without a traceback: the store's own
    errors say what to do; anything else is named by its type.
    """
    error = failure.value
    message = " ".join(str(error).split())
    if type(error).__module__.startswith("dccrelay."):
        return message
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


class Startup:
    """
    Runs the steps of a node's start-up, each until it succeeds or fails
    for good.

    :param clock: for the waits between tries.
    :param fatal: called once if a step fails for good, after the cause was
        logged (:class:`dccrelay.ops.exit_status.ExitStatus` stops the
        process); ``None`` to only log it.
    :param retry_policy: seconds to wait before the n-th try again.
    """

    _log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        fatal: Callable[[], object] | None = None,
        retry_policy: Callable[[int], float] = RETRY_POLICY,
    ) -> None:
        self._clock = clock
        self._fatal = fatal
        self._policy = retry_policy
        #: why the node does not serve its registry yet; ``None`` once it does
        self.waiting_for: str | None = "about to open the store"
        #: the cause, once a step failed for good
        self.failed: str | None = None

    def done(self) -> None:
        """
        Every step succeeded: the registry is loaded.
        """
        self.waiting_for = None

    def attempt(self, what: str, step: Callable[[], Deferred[_T]]) -> Deferred[_T]:
        """
        Run ``step()`` until it succeeds, trying again after a
        :class:`StoreBusy` failure.

        :param what: the step, for people: "open SQLite database at ...".
        :return: Deferred firing with the step's result; it never fires if
            the step fails for good; cancelling it stops trying (a try under
            way is cancelled too).
        """
        current: list[Deferred[_T] | IDelayedCall] = []
        cancelled = False

        def cancel(_: Deferred[_T]) -> None:
            nonlocal cancelled
            cancelled = True
            for pending in current:
                if isinstance(pending, Deferred):
                    pending.cancel()
                elif pending.active():
                    pending.cancel()

        result: Deferred[_T] = Deferred(cancel)
        tries = 0

        def go() -> None:
            current.clear()
            self.waiting_for = f"trying to {what}"
            d = maybeDeferred(step)
            current.append(d)
            d.addCallbacks(succeeded, failed)

        def succeeded(value: _T) -> None:
            if not cancelled:
                result.callback(value)

        def failed(failure: Failure) -> None:
            nonlocal tries
            if cancelled or failure.check(CancelledError):
                return
            current.clear()
            if failure.check(StoreBusy):
                delay = self._policy(tries)
                tries += 1
                self.waiting_for = f"could not {what} ({fault_line(failure)}); trying again in {delay:.0f} s"
                self._log.warn("{why}", why=self.waiting_for)
                current.append(self._clock.callLater(delay, go))
                return
            self.fail(f"could not {what}: {fault_line(failure)}")

        go()
        return result

    def fail(self, cause: str) -> None:
        """
        Give up: log ``cause`` as one line, and stop the node.
        """
        if self.failed is not None:
            return
        self.failed = self.waiting_for = cause
        self._log.critical("cannot start: {cause}", cause=cause)
        if self._fatal is not None:
            self._fatal()
