"""
Change notices between the nodes of one PostgreSQL database: a node sends
``NOTIFY`` (``pg_notify``) after changing a registration; every node holds
one connection that ``LISTEN``\\s, on a thread of its own because waiting
for a notice blocks.

PostgreSQL delivers a notice only to connections listening when it is
sent.  When the listening connection breaks, the listener connects again
and then calls back with ``None``: notices may have been lost in between,
so the node must reload everything.
"""

from __future__ import annotations

import threading
from typing import Callable

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.logger import Logger
from twisted.python.failure import Failure

#: The channel the store's notices go through.
CHANNEL = "dccrelay_changes"

# How long one wait for notices lasts: bounds how long stopping takes.
_POLL = 0.25
# Polls without a notice before checking that the connection still works
# (a dead peer behind a silent network would otherwise never show).
_POLLS_PER_CHECK = 40


class ChangeListener:
    """
    One ``LISTEN`` connection on its own thread, calling back on the
    reactor thread.

    :param conninfo: how to connect (libpq URL or key/value string).
    :param callback: called with each notice's alias, or with ``None`` after
        listening again.
    :param retry_delay: seconds between attempts to connect again.
    """

    log = Logger()

    def __init__(
        self,
        conninfo: str,
        reactor: IReactorFromThreads,
        callback: Callable[[str | None], None],
        description: str,
        retry_delay: float = 1.0,
    ) -> None:
        self._conninfo = conninfo
        self._reactor = reactor
        self._callback = callback
        self._description = description
        self._retry_delay = retry_delay
        self._stop = threading.Event()
        self._stopped: Deferred[None] = Deferred()
        self._listening: Deferred[None] = Deferred()
        self._thread = threading.Thread(
            target=self._run, name="dccrelay-postgres-listen", daemon=True
        )

    def start(self) -> Deferred[None]:
        """
        :return: Deferred firing once the first ``LISTEN`` took effect, or
            failing with the error of the first connection attempt.
        """
        self._thread.start()
        return self._listening

    def stop(self) -> Deferred[None]:
        """
        Stop calling back at once; close the connection.

        :return: Deferred firing once the thread has finished.
        """
        self._stop.set()
        done: Deferred[None] = Deferred()
        self._stopped.addCallback(lambda _: done.callback(None))
        return done

    # On the reactor thread, sent there by the listening thread.

    def _deliver(self, alias: str | None) -> None:
        if self._stop.is_set():
            return
        try:
            self._callback(alias)
        except Exception:
            self.log.failure("A change listener failed on {alias}", alias=alias)

    def _lost(self, failure: Failure) -> None:
        # Expected when the database restarts: a warning, not a traceback.
        if not self._stop.is_set():
            self.log.warn(
                "Listening for changes on {store} failed ({reason}); trying again",
                store=self._description,
                reason=failure.getErrorMessage().strip(),
            )

    # On the listening thread.

    def _run(self) -> None:
        first = True
        try:
            while not self._stop.is_set():
                try:
                    with psycopg.connect(self._conninfo, autocommit=True) as connection:
                        connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
                        if first:
                            first = False
                            self._reactor.callFromThread(self._listening.callback, None)
                        else:
                            self._reactor.callFromThread(self._deliver, None)
                        self._listen(connection)
                except psycopg.Error:
                    failure = Failure()
                    if first:
                        self._reactor.callFromThread(self._listening.errback, failure)
                        return
                    self._reactor.callFromThread(self._lost, failure)
                    self._stop.wait(self._retry_delay)
        finally:
            self._reactor.callFromThread(self._stopped.callback, None)

    def _listen(self, connection: psycopg.Connection[TupleRow]) -> None:
        quiet = 0
        while not self._stop.is_set():
            heard = False
            for notice in connection.notifies(timeout=_POLL):
                heard = True
                self._reactor.callFromThread(self._deliver, notice.payload)
            quiet = 0 if heard else quiet + 1
            if quiet >= _POLLS_PER_CHECK:
                quiet = 0
                connection.execute("SELECT 1")
