"""
The embedded store: registrations, gateway sessions and the delivery outbox
in one SQLite file.

Every sqlite3 call runs on a one-thread adbapi pool, so the reactor thread
never waits on the disk; one connection is enough because SQLite serialises
writers anyway.  The file holds bot tokens, so it is created 0600 (in a 0700
directory if the directory is missing) before SQLite ever opens it.  The
schema carries its version in ``PRAGMA user_version`` and migrates itself.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar, cast

from twisted.enterprise.adbapi import Connection, ConnectionPool, Transaction
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorCore, IReactorFromThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from zope.interface import implementer

from . import (
    IDENTIFY_MIN_WAIT,
    IRelayStore,
    OutboxCheckpoint,
    OutboxEntry,
    SessionState,
    StoredRelay,
    Trimmed,
    check_payloads,
    encode_settings,
    encode_statuses,
    sessions_by_alias,
)
from .errors import SchemaTooNew, StoreClosed

_T = TypeVar("_T")
_R = TypeVar("_R")

#: Whether the outbox's batches run as a few statements however many bots
#: and dispatches they carry (multi-row INSERT, UPDATE ... FROM from 3.33,
#: JSON functions built in from 3.38); older SQLite runs one statement per
#: row.  It matters under load: each statement gives up the GIL while SQLite
#: works, and while the reactor thread is busy, taking it back waits up to
#: the interpreter's switch interval (5 ms), so a batch of a few hundred
#: per-row statements held the outbox up for 50 to 500 ms.
BATCHED_STATEMENTS = sqlite3.sqlite_version_info >= (3, 38, 0)

#: rows in one multi-row statement: at 4 parameters a row, under the 999
#: parameters SQLite before 3.32 allows
_ROWS = 200

#: The path that asks for a private, throw-away database (for tests).
MEMORY = ":memory:"

#: Step ``n`` takes the schema from version ``n`` to ``n + 1`` and runs in one
#: transaction with the version bump.  Append steps; never edit a released one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE relays (
            alias TEXT PRIMARY KEY NOT NULL,
            settings TEXT NOT NULL,  -- JSON, as RelaySettings.to_json
            enabled INTEGER NOT NULL,
            disable_reason TEXT,
            created_at REAL NOT NULL,  -- seconds since the epoch
            updated_at REAL NOT NULL
        )
        """,
        """
        CREATE TABLE sessions (
            alias TEXT NOT NULL REFERENCES relays (alias) ON DELETE CASCADE,
            shard_id INTEGER NOT NULL,
            shard_count INTEGER NOT NULL,
            session_id TEXT NOT NULL,
            seq INTEGER,
            resume_url TEXT NOT NULL,
            PRIMARY KEY (alias, shard_id)
        )
        """,
    ),
    (
        # AUTOINCREMENT: ids are never reused, even once every row is gone,
        # so a bot never sees an id go backwards.  No foreign key to relays:
        # one append transaction carries many bots, and a bot deleted
        # meanwhile must not fail the others' (_outbox_append skips it).
        """
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            alias TEXT NOT NULL,
            payload BLOB NOT NULL,  -- the gateway payload's bytes, verbatim
            created_at REAL NOT NULL  -- seconds since the epoch
        )
        """,
        "CREATE INDEX outbox_by_alias ON outbox (alias, id)",
    ),
    (
        # One node uses a SQLite file, but it keeps leases like the shared
        # store does, so the coordinator has one code path.  Times are
        # seconds since the epoch on the store's clock.
        """
        CREATE TABLE nodes (
            node_id TEXT PRIMARY KEY NOT NULL,
            started_at REAL NOT NULL,
            last_seen REAL NOT NULL,
            expires_at REAL NOT NULL
        )
        """,
        """
        CREATE TABLE leases (
            alias TEXT PRIMARY KEY NOT NULL
                REFERENCES relays (alias) ON DELETE CASCADE,
            owner TEXT,  -- a node_id; NULL when nobody holds it
            epoch INTEGER NOT NULL DEFAULT 0,  -- fencing token; 0 until first claimed
            expires_at REAL
        )
        """,
        "INSERT INTO leases (alias) SELECT alias FROM relays",
        # The last epoch given out, to any bot: claims count on from it, so
        # an epoch is never repeated, even for a bot registered again.
        "CREATE TABLE lease_epoch (last INTEGER NOT NULL)",
        "INSERT INTO lease_epoch (last) VALUES (0)",
    ),
    (
        # One row per IDENTIFY slot (a hash of a bot token, and a bucket),
        # made the first time it is asked for.  Times are seconds since the
        # epoch on the store's clock; next_free is NULL until an IDENTIFY
        # was sent.
        """
        CREATE TABLE identify_slots (
            key TEXT NOT NULL,
            bucket INTEGER NOT NULL,
            holder TEXT,  -- a node_id; NULL when nobody holds it
            held_until REAL,
            next_free REAL,
            PRIMARY KEY (key, bucket)
        )
        """,
        # What each node published of its bots' public status.  No foreign
        # keys: a status outlives neither its node (forget_node drops it)
        # nor matters once its node is no longer live.
        """
        CREATE TABLE statuses (
            node_id TEXT NOT NULL,
            alias TEXT NOT NULL,
            status TEXT NOT NULL,  -- JSON
            published_at REAL NOT NULL,
            PRIMARY KEY (node_id, alias)
        )
        """,
    ),
)

#: How long statuses of a node that stopped heartbeating are kept, in
#: seconds, before a publish of another node drops them.
STALE_STATUSES = 86400.0

# SQLite's own files next to the database; they hold the same secrets.
_SIDE_FILES = ("-wal", "-shm", "-journal")


@implementer(IRelayStore)
class SQLiteStore:
    """
    An :class:`IRelayStore` in one SQLite file.

    :param path: the database file, or :data:`MEMORY`.
    :param reactor: provides ``IReactorCore``, ``IReactorFromThreads`` and
        (unless ``now`` is given) ``IReactorTime``.
    :param now: the wall clock for ``created_at``/``updated_at``.
    """

    log = Logger()

    def __init__(
        self,
        path: str,
        reactor: IReactorCore,
        now: Callable[[], float] | None = None,
    ) -> None:
        self.path = path
        self.description = f"SQLite database at {path}"
        self._reactor = cast(IReactorFromThreads, reactor)
        self._now = now if now is not None else cast(IReactorTime, reactor).seconds
        self._closing: Deferred[None] | None = None
        if path == MEMORY:
            target, uri = path, False
        else:
            # mode=rw: SQLite must never create the file itself, with the
            # umask's mode; _prepare_files creates it privately first.
            target, uri = Path(path).absolute().as_uri() + "?mode=rw", True
        self._pool = ConnectionPool(
            "sqlite3",
            target,
            uri=uri,
            # adbapi closes leftover connections on the reactor thread if the
            # reactor stops before close().
            check_same_thread=False,
            # We begin transactions ourselves, so that migrations' DDL is
            # transactional too (sqlite3 only begins them before DML).
            isolation_level=None,
            cp_min=1,
            cp_max=1,
            cp_reactor=reactor,
            cp_openfun=_configure,
        )
        self._pool.threadpool.name = "dccrelay-sqlite"

    def open(self) -> Deferred[None]:
        """
        Create the file privately if needed, then create or migrate the
        schema.

        :raises SchemaTooNew: (in the Deferred) if a newer dccrelay migrated
            the database.
        """
        if self._closing is not None:
            return fail(StoreClosed(self.description))
        ready: Deferred[None]
        if self.path == MEMORY:
            ready = succeed(None)
        else:
            # The pool has one thread, so this runs before the connection opens.
            ready = deferToThreadPool(
                self._reactor, self._pool.threadpool, _prepare_files, self.path
            )
        return ready.addCallback(self._migrate).addCallback(self._opened)

    def _migrate(self, _: None) -> Deferred[tuple[int, int, str]]:
        return cast(
            "Deferred[tuple[int, int, str]]",
            self._pool.runWithConnection(_migrate, self.description),
        )

    def _opened(self, result: tuple[int, int, str]) -> None:
        before, after, journal_mode = result
        if before != after:
            self.log.info(
                "Migrated {store} from schema version {before} to {after}",
                store=self.description,
                before=before,
                after=after,
            )
        if journal_mode != "wal" and self.path != MEMORY:
            self.log.warn(
                "{store} could not switch to write-ahead logging (the file "
                "system may not support it); it uses journal mode {mode}",
                store=self.description,
                mode=journal_mode,
            )

    def close(self) -> Deferred[None]:
        """
        Let queued work finish, then close the connection and stop the
        pool's thread.  Safe to call more than once.
        """
        if self._closing is None:
            self._closing = self._shut_down()
        done: Deferred[None] = Deferred()
        self._closing.addCallback(lambda _: done.callback(None))
        return done

    def _shut_down(self) -> Deferred[None]:
        pool = self._pool

        def disconnect() -> None:
            # On the pool's thread, behind any queued work: closing
            # checkpoints the WAL, which is disk work for this thread, not the
            # reactor's.
            connection = pool.connections.get(pool.threadID())
            if connection is not None:
                pool.disconnect(connection)

        def stop_pool(result: object) -> object:
            # The thread is idle now, so joining it does not block the reactor.
            pool.close()
            return result

        closed = deferToThreadPool(self._reactor, pool.threadpool, disconnect)
        closed.addBoth(stop_pool)
        # close() never fails: there is nothing its caller could do instead.
        return closed.addErrback(
            lambda failure: self.log.failure(
                "Closing {store} failed", failure, store=self.description
            )
        )

    def _interact(self, work: Callable[..., _T], *args: Any) -> Deferred[_T]:
        if self._closing is not None:
            return fail(StoreClosed(self.description))
        return cast("Deferred[_T]", self._pool.runInteraction(work, *args))

    def load_relays(self) -> Deferred[list[StoredRelay]]:
        return self._interact(_load_relays)

    def save_relay(self, alias: str, settings: dict[str, Any]) -> Deferred[None]:
        try:
            encoded = encode_settings(settings)
        except (TypeError, ValueError):
            return fail()
        return self._interact(_save_relay, alias, encoded, self._now())

    def delete_relay(self, alias: str) -> Deferred[bool]:
        return self._interact(_delete_relay, alias)

    def disable_relay(self, alias: str, reason: str) -> Deferred[None]:
        return self._interact(_disable_relay, alias, reason, self._now())

    def load_sessions(self, alias: str) -> Deferred[dict[int, SessionState]]:
        return self._interact(_load_sessions, alias)

    def load_all_sessions(self) -> Deferred[dict[str, dict[int, SessionState]]]:
        return self._interact(_load_all_sessions)

    def save_session(self, alias: str, state: SessionState) -> Deferred[None]:
        """
        Remember one shard's session, unless the relay is unknown or disabled:
        a shard that is still winding down must not bring back a session that
        :meth:`disable_relay` or :meth:`delete_relay` dropped.
        """
        return self.save_sessions([(alias, state)])

    def save_sessions(self, states: Sequence[tuple[str, SessionState]]) -> Deferred[None]:
        return self._interact(_save_sessions, list(states))

    def forget_session(self, alias: str, shard_id: int) -> Deferred[None]:
        return self._interact(_forget_session, alias, shard_id)

    def outbox_append(
        self,
        entries: Sequence[tuple[str, bytes]],
        now: float,
        checkpoints: Iterable[OutboxCheckpoint] = (),
    ) -> Deferred[list[int | None]]:
        # Copied here, so a caller that changes its lists afterwards cannot
        # race the write.
        try:
            check_payloads(entries)
        except TypeError:
            return fail()
        return self._interact(_outbox_append, list(entries), now, list(checkpoints))

    def outbox_load(self, alias: str, after_id: int, limit: int) -> Deferred[list[OutboxEntry]]:
        return self._interact(_outbox_load, alias, after_id, limit)

    def outbox_ack(self, acks: Mapping[str, int]) -> Deferred[dict[str, int]]:
        return self._interact(_outbox_ack, dict(acks))

    def outbox_trim(
        self, alias: str, max_count: int, created_before: float | None = None
    ) -> Deferred[Trimmed]:
        return self._interact(_outbox_trim, alias, max_count, created_before)

    def outbox_count(self, alias: str) -> Deferred[int]:
        return self._interact(_outbox_count, alias)

    # Leases work as in the shared store, on this store's clock; with one
    # node they always come out the same, but the coordinator need not know.

    def heartbeat_node(self, node_id: str, ttl: float) -> Deferred[None]:
        return self._interact(_heartbeat_node, node_id, ttl, self._now())

    def live_nodes(self) -> Deferred[list[str]]:
        return self._interact(_live_nodes, self._now())

    def forget_node(self, node_id: str) -> Deferred[None]:
        return self._interact(_forget_node, node_id)

    def claim_leases(self, node_id: str, ttl: float, limit: int) -> Deferred[list[tuple[str, int]]]:
        return self._interact(_claim_leases, node_id, ttl, limit, self._now())

    def renew_leases(self, node_id: str, ttl: float) -> Deferred[list[str]]:
        return self._interact(_renew_leases, node_id, ttl, self._now())

    def release_leases(self, node_id: str, aliases: Iterable[str]) -> Deferred[list[str]]:
        return self._interact(_release_leases, node_id, sorted(set(aliases)))

    def lease_owners(self) -> Deferred[dict[str, str]]:
        return self._interact(_lease_owners, self._now())

    def acquire_identify(self, key: str, bucket: int, node_id: str, hold: float) -> Deferred[float]:
        return self._interact(_acquire_identify, key, bucket, node_id, hold, self._now())

    def finish_identify(
        self, key: str, bucket: int, node_id: str, sent: bool, window: float
    ) -> Deferred[None]:
        return self._interact(_finish_identify, key, bucket, node_id, sent, window, self._now())

    def publish_statuses(self, node_id: str, statuses: Mapping[str, dict[str, Any]]) -> Deferred[None]:
        try:
            encoded = encode_statuses(statuses)
        except (TypeError, ValueError):
            return fail()
        return self._interact(_publish_statuses, node_id, encoded, self._now())

    def load_statuses(self) -> Deferred[dict[str, tuple[str, dict[str, Any]]]]:
        return self._interact(_load_statuses, self._now())

    def notify_change(self, alias: str) -> Deferred[None]:
        """
        Nothing to do: one node uses a SQLite file, and it made the change.
        """
        if self._closing is not None:
            return fail(StoreClosed(self.description))
        return succeed(None)

    def listen_changes(self, callback: Callable[[str | None], None]) -> Deferred[None]:
        """
        Nothing to listen to: see :meth:`notify_change`.
        """
        if self._closing is not None:
            return fail(StoreClosed(self.description))
        return succeed(None)


# Everything below runs on the pool's thread and touches no store state.


def _prepare_files(path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, mode=0o700)
    except FileExistsError:
        pass  # The operator's directory: its mode is theirs to choose.
    else:
        os.chmod(parent, 0o700)  # makedirs's mode passes through the umask.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # Tightens a file made by an older, looser setup.
    finally:
        os.close(fd)
    # SQLite gives new side files the database's mode; old ones may differ.
    for suffix in _SIDE_FILES:
        try:
            os.chmod(path + suffix, 0o600)
        except FileNotFoundError:
            pass


def _configure(connection: sqlite3.Connection) -> None:
    # Readers never wait for the writer, and a commit is one append.
    connection.execute("PRAGMA journal_mode = WAL")
    # With WAL this cannot corrupt the database; a power cut may lose the
    # last commits, which for session state only costs a fresh IDENTIFY.
    connection.execute("PRAGMA synchronous = NORMAL")
    # Off by default and per connection; sessions cascade with their relay.
    connection.execute("PRAGMA foreign_keys = ON")


def _user_version(connection: Connection) -> int:
    version: int = connection.execute("PRAGMA user_version").fetchone()[0]
    return version


def _migrate(connection: Connection, description: str) -> tuple[int, int, str]:
    before = version = _user_version(connection)
    known = len(MIGRATIONS)
    while True:
        # IMMEDIATE, and the version read again inside the transaction, so
        # that two processes opening the file at once cannot both migrate.
        connection.execute("BEGIN IMMEDIATE")
        version = _user_version(connection)
        if version >= known:
            connection.execute("ROLLBACK")
            break
        for statement in MIGRATIONS[version]:
            connection.execute(statement)
        # PRAGMA takes no parameters; the value is our own integer.
        connection.execute(f"PRAGMA user_version = {version + 1:d}")
        connection.execute("COMMIT")
    if version > known:
        raise SchemaTooNew(description, version, known)
    journal_mode: str = connection.execute("PRAGMA journal_mode").fetchone()[0]
    return before, version, journal_mode


def _load_relays(txn: Transaction) -> list[StoredRelay]:
    txn.execute(
        "SELECT alias, settings, enabled, disable_reason FROM relays ORDER BY alias"
    )
    return [
        StoredRelay(alias, json.loads(settings), bool(enabled), reason)
        for alias, settings, enabled, reason in txn.fetchall()
    ]


def _save_relay(txn: Transaction, alias: str, settings: str, now: float) -> None:
    txn.execute("BEGIN IMMEDIATE")
    # An upsert, not INSERT OR REPLACE: replacing deletes the row first, and
    # that delete would cascade to the relay's sessions.
    txn.execute(
        """
        INSERT INTO relays
            (alias, settings, enabled, disable_reason, created_at, updated_at)
        VALUES (?, ?, 1, NULL, ?, ?)
        ON CONFLICT (alias) DO UPDATE SET
            settings = excluded.settings,
            enabled = 1,
            updated_at = excluded.updated_at
        """,
        (alias, settings, now, now),
    )
    txn.execute("INSERT INTO leases (alias) VALUES (?) ON CONFLICT (alias) DO NOTHING", (alias,))


def _delete_relay(txn: Transaction, alias: str) -> bool:
    txn.execute("BEGIN IMMEDIATE")
    txn.execute("DELETE FROM outbox WHERE alias = ?", (alias,))
    txn.execute("DELETE FROM relays WHERE alias = ?", (alias,))
    return bool(txn.rowcount > 0)


def _disable_relay(txn: Transaction, alias: str, reason: str, now: float) -> None:
    txn.execute("BEGIN IMMEDIATE")
    txn.execute(
        """
        UPDATE relays SET enabled = 0, disable_reason = ?, updated_at = ?
        WHERE alias = ?
        """,
        (reason, now, alias),
    )
    txn.execute("DELETE FROM sessions WHERE alias = ?", (alias,))
    # adbapi commits when this returns, or rolls back if it raised.


def _load_sessions(txn: Transaction, alias: str) -> dict[int, SessionState]:
    txn.execute(
        """
        SELECT shard_id, shard_count, session_id, seq, resume_url
        FROM sessions WHERE alias = ? ORDER BY shard_id
        """,
        (alias,),
    )
    return {row[0]: SessionState(*row) for row in txn.fetchall()}


def _load_all_sessions(txn: Transaction) -> dict[str, dict[int, SessionState]]:
    txn.execute(
        """
        SELECT alias, shard_id, shard_count, session_id, seq, resume_url
        FROM sessions ORDER BY alias, shard_id
        """
    )
    return sessions_by_alias(txn.fetchall())


def _save_sessions(txn: Transaction, states: list[tuple[str, SessionState]]) -> None:
    txn.executemany(
        """
        INSERT INTO sessions
            (alias, shard_id, shard_count, session_id, seq, resume_url)
        SELECT ?, ?, ?, ?, ?, ?
        WHERE EXISTS (SELECT 1 FROM relays WHERE alias = ? AND enabled)
        ON CONFLICT (alias, shard_id) DO UPDATE SET
            shard_count = excluded.shard_count,
            session_id = excluded.session_id,
            seq = excluded.seq,
            resume_url = excluded.resume_url
        """,
        [
            (
                alias,
                state.shard_id,
                state.shard_count,
                state.session_id,
                state.seq,
                state.resume_url,
                alias,
            )
            for alias, state in states
        ],
    )


def _forget_session(txn: Transaction, alias: str, shard_id: int) -> None:
    txn.execute(
        "DELETE FROM sessions WHERE alias = ? AND shard_id = ?", (alias, shard_id)
    )


def _outbox_append(
    txn: Transaction,
    entries: list[tuple[str, bytes]],
    now: float,
    checkpoints: list[OutboxCheckpoint],
) -> list[int | None]:
    if not BATCHED_STATEMENTS:
        return _outbox_append_each(txn, entries, now, checkpoints)
    txn.execute("BEGIN IMMEDIATE")
    known = _registered(txn, list(dict.fromkeys(alias for alias, _ in entries)))
    ids: list[int | None] = []
    rows: list[tuple[int, str, bytes, float]] = []
    if known:
        # The ids AUTOINCREMENT would give, given here so that one statement
        # inserts many rows: past the highest ever given (sqlite_sequence)
        # and any in the table.  This transaction is the only writer.
        txn.execute(
            """
            SELECT MAX(IFNULL((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0),
                       IFNULL((SELECT MAX(id) FROM outbox), 0))
            """
        )
        (last,) = txn.fetchone()
        for alias, payload in entries:
            if alias in known:
                last += 1
                ids.append(last)
                rows.append((last, alias, payload, now))
            else:
                ids.append(None)
    else:
        ids = [None] * len(entries)
    for chunk in _chunks(rows):
        # An explicit id above sqlite_sequence's moves it on: ids are still
        # never reused.
        txn.execute(
            "INSERT INTO outbox (id, alias, payload, created_at) VALUES " + _values(4, len(chunk)),
            [value for row in chunk for value in row],
        )
    # One session row takes the highest seq given for it, as one UPDATE per
    # checkpoint in order would leave it (UPDATE ... FROM uses one match).
    highest: dict[tuple[str, int, str], int] = {}
    for checkpoint in checkpoints:
        key = (checkpoint.alias, checkpoint.shard_id, checkpoint.session_id)
        if key not in highest or highest[key] < checkpoint.seq:
            highest[key] = checkpoint.seq
    updates = [(*key, seq) for key, seq in highest.items()]
    for group in _chunks(updates):
        txn.execute(
            """
            UPDATE sessions SET seq = c.column4
            FROM (VALUES """
            + _values(4, len(group))
            + """) AS c
            WHERE sessions.alias = c.column1 AND sessions.shard_id = c.column2
                AND sessions.session_id = c.column3
                AND (sessions.seq IS NULL OR sessions.seq < c.column4)
            """,
            [value for update in group for value in update],
        )
    return ids


def _registered(txn: Transaction, aliases: list[str]) -> set[str]:
    """
    :return: which of ``aliases`` are registered, in one statement per
        :data:`_ROWS` of them.
    """
    known: set[str] = set()
    for chunk in _chunks(aliases):
        txn.execute(
            "SELECT json_group_array(alias) FROM relays WHERE alias IN "
            + _values(len(chunk), 1),
            chunk,
        )
        known.update(json.loads(txn.fetchone()[0]))
    return known


def _chunks(rows: Sequence[_R]) -> Iterator[Sequence[_R]]:
    for start in range(0, len(rows), _ROWS):
        yield rows[start : start + _ROWS]


def _values(columns: int, rows: int) -> str:
    """
    ``(?, ?), (?, ?)``: placeholders for ``rows`` rows of ``columns``.
    """
    row = "(" + ", ".join("?" * columns) + ")"
    return ", ".join([row] * rows)


def _outbox_append_each(
    txn: Transaction,
    entries: list[tuple[str, bytes]],
    now: float,
    checkpoints: list[OutboxCheckpoint],
) -> list[int | None]:
    txn.execute("BEGIN IMMEDIATE")
    known: dict[str, bool] = {}
    ids: list[int | None] = []
    for alias, payload in entries:
        if alias not in known:
            txn.execute("SELECT 1 FROM relays WHERE alias = ?", (alias,))
            known[alias] = txn.fetchone() is not None
        if not known[alias]:
            ids.append(None)
            continue
        txn.execute(
            "INSERT INTO outbox (alias, payload, created_at) VALUES (?, ?, ?)",
            (alias, payload, now),
        )
        ids.append(txn.lastrowid)
    for checkpoint in checkpoints:
        txn.execute(
            """
            UPDATE sessions SET seq = ?
            WHERE alias = ? AND shard_id = ? AND session_id = ?
                AND (seq IS NULL OR seq < ?)
            """,
            (
                checkpoint.seq,
                checkpoint.alias,
                checkpoint.shard_id,
                checkpoint.session_id,
                checkpoint.seq,
            ),
        )
    return ids


def _outbox_load(txn: Transaction, alias: str, after_id: int, limit: int) -> list[OutboxEntry]:
    txn.execute(
        """
        SELECT id, payload, created_at FROM outbox
        WHERE alias = ? AND id > ? ORDER BY id LIMIT ?
        """,
        (alias, after_id, limit),
    )
    return [OutboxEntry(id, bytes(payload), created_at) for id, payload, created_at in txn.fetchall()]


def _outbox_ack(txn: Transaction, acks: dict[str, int]) -> dict[str, int]:
    if not BATCHED_STATEMENTS:
        return _outbox_ack_each(txn, acks)
    txn.execute("BEGIN IMMEDIATE")
    removed = dict.fromkeys(acks, 0)
    for chunk in _chunks(list(acks.items())):
        parameters = [value for row in chunk for value in row]
        acknowledged = (
            "SELECT o.id AS id, o.alias AS alias FROM (VALUES "
            + _values(2, len(chunk))
            + ") AS c JOIN outbox AS o ON o.alias = c.column1 AND o.id <= c.column2"
        )
        txn.execute(
            "SELECT json_group_object(alias, n) FROM"
            f" (SELECT alias, COUNT(*) AS n FROM ({acknowledged}) GROUP BY alias)",
            parameters,
        )
        removed.update(json.loads(txn.fetchone()[0]))
        txn.execute(f"DELETE FROM outbox WHERE id IN (SELECT id FROM ({acknowledged}))", parameters)
    return removed


def _outbox_ack_each(txn: Transaction, acks: dict[str, int]) -> dict[str, int]:
    txn.execute("BEGIN IMMEDIATE")
    removed = {}
    for alias, up_to in acks.items():
        txn.execute("DELETE FROM outbox WHERE alias = ? AND id <= ?", (alias, up_to))
        removed[alias] = max(0, txn.rowcount)
    return removed


def _outbox_trim(
    txn: Transaction, alias: str, max_count: int, created_before: float | None
) -> Trimmed:
    txn.execute("BEGIN IMMEDIATE")
    up_to = 0
    # The newest entry beyond the max_count newest ones.
    txn.execute(
        "SELECT id FROM outbox WHERE alias = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
        (alias, max(0, max_count)),
    )
    row = txn.fetchone()
    if row is not None:
        up_to = row[0]
    if created_before is not None:
        # Everything up to the newest entry that is too old: a prefix, even
        # if the clock went backwards between appends.
        txn.execute(
            "SELECT MAX(id) FROM outbox WHERE alias = ? AND created_at < ?",
            (alias, created_before),
        )
        (oldest,) = txn.fetchone()
        if oldest is not None:
            up_to = max(up_to, oldest)
    if not up_to:
        return Trimmed(0, 0)
    txn.execute("DELETE FROM outbox WHERE alias = ? AND id <= ?", (alias, up_to))
    return Trimmed(max(0, txn.rowcount), up_to)


def _outbox_count(txn: Transaction, alias: str) -> int:
    txn.execute("SELECT COUNT(*) FROM outbox WHERE alias = ?", (alias,))
    count: int = txn.fetchone()[0]
    return count


def _heartbeat_node(txn: Transaction, node_id: str, ttl: float, now: float) -> None:
    txn.execute(
        """
        INSERT INTO nodes (node_id, started_at, last_seen, expires_at)
        VALUES (?, ?, ?, ?)
        ON CONFLICT (node_id) DO UPDATE SET
            last_seen = excluded.last_seen,
            expires_at = excluded.expires_at
        """,
        (node_id, now, now, now + ttl),
    )


def _live_nodes(txn: Transaction, now: float) -> list[str]:
    txn.execute("SELECT node_id FROM nodes WHERE expires_at > ? ORDER BY node_id", (now,))
    return [node_id for (node_id,) in txn.fetchall()]


def _forget_node(txn: Transaction, node_id: str) -> None:
    txn.execute("BEGIN IMMEDIATE")
    txn.execute("DELETE FROM nodes WHERE node_id = ?", (node_id,))
    txn.execute("DELETE FROM statuses WHERE node_id = ?", (node_id,))
    txn.execute(
        "UPDATE leases SET owner = NULL, expires_at = NULL WHERE owner = ?", (node_id,)
    )


def _claim_leases(
    txn: Transaction, node_id: str, ttl: float, limit: int, now: float
) -> list[tuple[str, int]]:
    # IMMEDIATE: the write lock is taken before reading, so two stores on
    # one file cannot both see a bot as free.
    txn.execute("BEGIN IMMEDIATE")
    txn.execute(
        """
        SELECT alias FROM leases
        WHERE owner IS NULL OR expires_at <= ?
        ORDER BY alias LIMIT ?
        """,
        (now, max(0, limit)),
    )
    aliases = [alias for (alias,) in txn.fetchall()]
    claimed = []
    for alias in aliases:
        txn.execute("UPDATE lease_epoch SET last = last + 1 RETURNING last")
        (epoch,) = txn.fetchone()
        txn.execute(
            "UPDATE leases SET owner = ?, epoch = ?, expires_at = ? WHERE alias = ?",
            (node_id, epoch, now + ttl, alias),
        )
        claimed.append((alias, epoch))
    return claimed


def _renew_leases(txn: Transaction, node_id: str, ttl: float, now: float) -> list[str]:
    txn.execute(
        """
        UPDATE leases SET expires_at = ?
        WHERE owner = ? AND expires_at > ?
        RETURNING alias
        """,
        (now + ttl, node_id, now),
    )
    return sorted(alias for (alias,) in txn.fetchall())


def _release_leases(txn: Transaction, node_id: str, aliases: list[str]) -> list[str]:
    txn.execute("BEGIN IMMEDIATE")
    released = []
    for alias in aliases:
        txn.execute(
            """
            UPDATE leases SET owner = NULL, expires_at = NULL
            WHERE alias = ? AND owner = ?
            """,
            (alias, node_id),
        )
        if txn.rowcount > 0:
            released.append(alias)
    return released


def _lease_owners(txn: Transaction, now: float) -> dict[str, str]:
    txn.execute(
        "SELECT alias, owner FROM leases WHERE owner IS NOT NULL AND expires_at > ?",
        (now,),
    )
    return dict(txn.fetchall())


def _acquire_identify(
    txn: Transaction, key: str, bucket: int, node_id: str, hold: float, now: float
) -> float:
    # IMMEDIATE: the write lock is taken before reading, so two stores on
    # one file cannot both find the slot free.
    txn.execute("BEGIN IMMEDIATE")
    txn.execute(
        "SELECT holder, held_until, next_free FROM identify_slots WHERE key = ? AND bucket = ?",
        (key, bucket),
    )
    row = txn.fetchone()
    if row is not None:
        holder, held_until, next_free = row
        if holder is not None and held_until is not None and held_until > now:
            return float(max(IDENTIFY_MIN_WAIT, held_until - now))
        if next_free is not None and next_free > now:
            return float(max(IDENTIFY_MIN_WAIT, next_free - now))
    txn.execute(
        """
        INSERT INTO identify_slots (key, bucket, holder, held_until, next_free)
        VALUES (?, ?, ?, ?, NULL)
        ON CONFLICT (key, bucket) DO UPDATE SET
            holder = excluded.holder,
            held_until = excluded.held_until
        """,
        (key, bucket, node_id, now + hold),
    )
    return 0.0


def _finish_identify(
    txn: Transaction, key: str, bucket: int, node_id: str, sent: bool, window: float, now: float
) -> None:
    txn.execute(
        """
        UPDATE identify_slots SET
            holder = NULL,
            held_until = NULL,
            next_free = CASE WHEN ? THEN ? ELSE next_free END
        WHERE key = ? AND bucket = ? AND holder = ?
        """,
        (bool(sent), now + window, key, bucket, node_id),
    )


def _publish_statuses(
    txn: Transaction, node_id: str, statuses: list[tuple[str, str]], now: float
) -> None:
    txn.execute("BEGIN IMMEDIATE")
    txn.execute("DELETE FROM statuses WHERE node_id = ?", (node_id,))
    # Node ids are per run: statuses of runs killed long ago would pile up.
    txn.execute(
        """
        DELETE FROM statuses
        WHERE published_at < ?
            AND node_id NOT IN (SELECT node_id FROM nodes WHERE expires_at > ?)
        """,
        (now - STALE_STATUSES, now),
    )
    txn.executemany(
        "INSERT INTO statuses (node_id, alias, status, published_at) VALUES (?, ?, ?, ?)",
        [(node_id, alias, status, now) for alias, status in statuses],
    )


def _load_statuses(txn: Transaction, now: float) -> dict[str, tuple[str, dict[str, Any]]]:
    txn.execute(
        """
        SELECT s.alias, s.node_id, s.status FROM statuses AS s
        JOIN nodes AS n ON n.node_id = s.node_id AND n.expires_at > ?
        ORDER BY s.alias, s.published_at DESC, s.node_id
        """,
        (now,),
    )
    loaded: dict[str, tuple[str, dict[str, Any]]] = {}
    for alias, node_id, status in txn.fetchall():
        if alias not in loaded:
            loaded[alias] = (node_id, json.loads(status))
    return loaded
