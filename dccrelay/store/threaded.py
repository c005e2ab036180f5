"""
What the SQLite and PostgreSQL stores share: the plumbing that runs their
blocking queries off the reactor thread, and the registration, session,
outbox and guild snapshot methods, written once.

Each database gives a :class:`Queries` table (blocking functions that take
the transaction's cursor first) and says how to run one of them in a
transaction on its threads (:meth:`ThreadedStore._run`); the base checks
and copies the arguments on the caller's thread, so that a caller that
changes its lists or dicts afterwards cannot race the write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger
from zope.interface import implementer

from . import (
    GuildSnapshotUpdate,
    IRelayStore,
    OutboxCheckpoint,
    OutboxEntry,
    SessionState,
    StoredRelay,
    Trimmed,
    check_guild_snapshot_updates,
    check_payloads,
    encode_settings,
)
from .errors import StoreClosed

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Queries:
    """
    One database's blocking queries behind the shared store roles.  Each
    runs in one transaction; its first argument is the transaction (or
    cursor), the others are what :class:`ThreadedStore` passes.
    """

    load_relays: Callable[[Any], list[StoredRelay]]
    #: ``(txn, alias, settings JSON, now)``
    save_relay: Callable[[Any, str, str, float], None]
    delete_relay: Callable[[Any, str], bool]
    #: ``(txn, alias, reason, now)``
    disable_relay: Callable[[Any, str, str, float], None]
    load_sessions: Callable[[Any, str], dict[int, SessionState]]
    load_all_sessions: Callable[[Any], dict[str, dict[int, SessionState]]]
    save_sessions: Callable[[Any, list[tuple[str, SessionState]]], None]
    forget_session: Callable[[Any, str, int], None]
    outbox_append: Callable[
        [Any, list[tuple[str, bytes]], float, list[OutboxCheckpoint]], list[int | None]
    ]
    outbox_load: Callable[[Any, str, int, int], list[OutboxEntry]]
    outbox_ack: Callable[[Any, dict[str, int]], dict[str, int]]
    outbox_trim: Callable[[Any, str, int, float | None], Trimmed]
    outbox_count: Callable[[Any, str], int]
    load_guild_snapshot: Callable[[Any, str], dict[str, bytes]]
    save_guild_snapshots: Callable[[Any, list[GuildSnapshotUpdate]], None]


@implementer(IRelayStore)
class ThreadedStore:
    """
    An :class:`IRelayStore` whose queries block, run on threads.

    :param description: what :attr:`description` says.
    :param queries: the database's queries.
    :param now: the wall clock for ``created_at``/``updated_at``.
    """

    log = Logger()

    def __init__(
        self, description: str, queries: Queries, now: Callable[[], float]
    ) -> None:
        self.description = description
        self._queries = queries
        self._now = now
        self._closing: Deferred[None] | None = None

    # -- what each database does its own way ----------------------------------

    def open(self) -> Deferred[None]:
        raise NotImplementedError

    def _run(self, work: Callable[..., _T], *args: Any) -> Deferred[_T]:
        """
        Run ``work(txn, *args)`` in one transaction on the store's threads.
        """
        raise NotImplementedError

    def _shut_down(self) -> Deferred[None]:
        """
        Let calls under way finish, then release the database and threads.
        """
        raise NotImplementedError

    # -- the plumbing -----------------------------------------------------------

    def close(self) -> Deferred[None]:
        """
        Let queued work finish, then close the connections and stop the
        threads.  Safe to call more than once; never fails.
        """
        if self._closing is None:
            # close() never fails: there is nothing its caller could do instead.
            self._closing = self._shut_down().addErrback(
                lambda failure: self.log.failure(
                    "Closing {store} failed", failure, store=self.description
                )
            )
        done: Deferred[None] = Deferred()
        self._closing.addCallback(lambda _: done.callback(None))
        return done

    def _interact(self, work: Callable[..., _T], *args: Any) -> Deferred[_T]:
        if self._closing is not None:
            return fail(StoreClosed(self.description))
        return self._run(work, *args)

    # -- registrations ------------------------------------------------------------

    def load_relays(self) -> Deferred[list[StoredRelay]]:
        return self._interact(self._queries.load_relays)

    def save_relay(self, alias: str, settings: dict[str, Any]) -> Deferred[None]:
        try:
            encoded = encode_settings(settings)
        except (TypeError, ValueError):
            return fail()
        return self._interact(self._queries.save_relay, alias, encoded, self._now())

    def delete_relay(self, alias: str) -> Deferred[bool]:
        return self._interact(self._queries.delete_relay, alias)

    def disable_relay(self, alias: str, reason: str) -> Deferred[None]:
        return self._interact(self._queries.disable_relay, alias, reason, self._now())

    # -- sessions -------------------------------------------------------------------

    def load_sessions(self, alias: str) -> Deferred[dict[int, SessionState]]:
        return self._interact(self._queries.load_sessions, alias)

    def load_all_sessions(self) -> Deferred[dict[str, dict[int, SessionState]]]:
        return self._interact(self._queries.load_all_sessions)

    def save_session(self, alias: str, state: SessionState) -> Deferred[None]:
        """
        Remember one shard's session, unless the relay is unknown or disabled:
        a shard that is still winding down must not bring back a session that
        :meth:`disable_relay` or :meth:`delete_relay` dropped.
        """
        return self.save_sessions([(alias, state)])

    def save_sessions(self, states: Sequence[tuple[str, SessionState]]) -> Deferred[None]:
        return self._interact(self._queries.save_sessions, list(states))

    def forget_session(self, alias: str, shard_id: int) -> Deferred[None]:
        return self._interact(self._queries.forget_session, alias, shard_id)

    # -- the outbox -------------------------------------------------------------------

    def outbox_append(
        self,
        entries: Sequence[tuple[str, bytes]],
        now: float,
        checkpoints: Iterable[OutboxCheckpoint] = (),
    ) -> Deferred[list[int | None]]:
        try:
            check_payloads(entries)
        except TypeError:
            return fail()
        return self._interact(
            self._queries.outbox_append, list(entries), now, list(checkpoints)
        )

    def outbox_load(self, alias: str, after_id: int, limit: int) -> Deferred[list[OutboxEntry]]:
        return self._interact(self._queries.outbox_load, alias, after_id, limit)

    def outbox_ack(self, acks: Mapping[str, int]) -> Deferred[dict[str, int]]:
        return self._interact(self._queries.outbox_ack, dict(acks))

    def outbox_trim(
        self, alias: str, max_count: int, created_before: float | None = None
    ) -> Deferred[Trimmed]:
        return self._interact(self._queries.outbox_trim, alias, max_count, created_before)

    def outbox_count(self, alias: str) -> Deferred[int]:
        return self._interact(self._queries.outbox_count, alias)

    # -- guild snapshots ---------------------------------------------------------------

    def load_guild_snapshot(self, alias: str) -> Deferred[dict[str, bytes]]:
        return self._interact(self._queries.load_guild_snapshot, alias)

    def save_guild_snapshots(self, updates: Iterable[GuildSnapshotUpdate]) -> Deferred[None]:
        try:
            checked = check_guild_snapshot_updates(updates)
        except TypeError:
            return fail()
        return self._interact(self._queries.save_guild_snapshots, checked)
