"""
The embedded store: registrations, gateway sessions, the delivery outbox
and the bots' guild snapshots in one SQLite file.

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
from typing import Any, Callable, Iterator, Sequence, TypeVar, cast

from twisted.enterprise.adbapi import Connection, ConnectionPool, Transaction
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorCore, IReactorFromThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool

from . import (
    GuildSnapshotUpdate,
    OutboxCheckpoint,
    OutboxEntry,
    SessionState,
    StoredRelay,
    Trimmed,
    sessions_by_alias,
)
from .errors import SchemaTooNew, StoreClosed
from .threaded import Queries, ThreadedStore

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
        # Released schema, kept as it was: SQLite once kept leases like the
        # shared store.  A node on SQLite runs alone now and has no
        # coordinator, so only _save_relay still touches these tables
        # (giving every bot its lease row, as the schema says).
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
        # Released schema, kept as it was (unused since SQLite provides no
        # cluster role).  One row per IDENTIFY slot (a hash of a bot token, and a bucket),
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
    (
        # Each bot's guild snapshot (guildSnapshot) as named parts ('user',
        # and 'guild:' and an id per guild), so that a change rewrites one
        # row, not the whole snapshot.  Gone with the bot's registration.
        """
        CREATE TABLE guild_snapshots (
            alias TEXT NOT NULL REFERENCES relays (alias) ON DELETE CASCADE,
            part TEXT NOT NULL,
            document BLOB NOT NULL,  -- JSON, or sealed (dccrelay.store.sealed)
            PRIMARY KEY (alias, part)
        )
        """,
    ),
)

# SQLite's own files next to the database; they hold the same secrets.
_SIDE_FILES = ("-wal", "-shm", "-journal")


class SQLiteStore(ThreadedStore):
    """
    An :class:`IRelayStore` in one SQLite file, for one node: it provides
    no :class:`~dccrelay.store.IClusterStore` (a node alone has nobody to
    share leases with).

    :param path: the database file, or :data:`MEMORY`.
    :param reactor: provides ``IReactorCore``, ``IReactorFromThreads`` and
        (unless ``now`` is given) ``IReactorTime``.
    :param now: the wall clock for ``created_at``/``updated_at``.
    """

    def __init__(
        self,
        path: str,
        reactor: IReactorCore,
        now: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(
            f"SQLite database at {path}",
            QUERIES,
            now if now is not None else cast(IReactorTime, reactor).seconds,
        )
        self.path = path
        self._reactor = cast(IReactorFromThreads, reactor)
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
        return closed.addBoth(stop_pool)

    def _run(self, work: Callable[..., _T], *args: Any) -> Deferred[_T]:
        return cast("Deferred[_T]", self._pool.runInteraction(work, *args))


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


def _load_guild_snapshot(txn: Transaction, alias: str) -> dict[str, bytes]:
    txn.execute("SELECT part, document FROM guild_snapshots WHERE alias = ?", (alias,))
    return {part: bytes(document) for part, document in txn.fetchall()}


def _save_guild_snapshots(txn: Transaction, updates: list[GuildSnapshotUpdate]) -> None:
    txn.execute("BEGIN IMMEDIATE")
    aliases = list(dict.fromkeys(update.alias for update in updates))
    known: set[str] = set()
    for chunk in _chunks(aliases):
        txn.execute("SELECT alias FROM relays WHERE alias IN " + _values(len(chunk), 1), chunk)
        known.update(alias for (alias,) in txn.fetchall())
    # Rows wait to be inserted many per statement; a delete of the same
    # bot writes them first, so that updates apply in order.
    rows: list[tuple[str, str, bytes]] = []
    for update in updates:
        if update.alias not in known:
            continue
        if update.replace or update.dropped:
            _insert_parts(txn, rows)
            rows = []
        if update.replace:
            txn.execute("DELETE FROM guild_snapshots WHERE alias = ?", (update.alias,))
        for names in _chunks(update.dropped):
            txn.execute(
                "DELETE FROM guild_snapshots WHERE alias = ? AND part IN "
                + _values(len(names), 1),
                [update.alias, *names],
            )
        rows.extend((update.alias, name, document) for name, document in update.parts)
    _insert_parts(txn, rows)


def _insert_parts(txn: Transaction, rows: list[tuple[str, str, bytes]]) -> None:
    for chunk in _chunks(rows):
        txn.execute(
            "INSERT INTO guild_snapshots (alias, part, document) VALUES "
            + _values(3, len(chunk))
            + " ON CONFLICT (alias, part) DO UPDATE SET document = excluded.document",
            [value for row in chunk for value in row],
        )


QUERIES = Queries(
    load_relays=_load_relays,
    save_relay=_save_relay,
    delete_relay=_delete_relay,
    disable_relay=_disable_relay,
    load_sessions=_load_sessions,
    load_all_sessions=_load_all_sessions,
    save_sessions=_save_sessions,
    forget_session=_forget_session,
    outbox_append=_outbox_append,
    outbox_load=_outbox_load,
    outbox_ack=_outbox_ack,
    outbox_trim=_outbox_trim,
    outbox_count=_outbox_count,
    load_guild_snapshot=_load_guild_snapshot,
    save_guild_snapshots=_save_guild_snapshots,
)
