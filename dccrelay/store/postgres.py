"""
The shared store: registrations, gateway sessions, the delivery outbox,
guild snapshots and the nodes' leases in one PostgreSQL database that
several relay nodes use.

Queries run with psycopg 3 on a thread pool of the store's own, with
connections from a psycopg_pool pool (checked before each use, so a
database restart costs no failed call), never on the reactor thread.  Each
call is one transaction.  Where two nodes may race, rows are locked in a
fixed order (see ``_outbox_append`` and ``_save_sessions``) so that the
answers are those of the SQLite store, which serialises every writer.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable, Mapping, TypeVar, cast

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool
from twisted.internet.defer import Deferred, DeferredList, fail
from twisted.internet.interfaces import IReactorCore, IReactorFromThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from . import (
    IDENTIFY_MIN_WAIT,
    GuildSnapshotUpdate,
    IClusterStore,
    OutboxCheckpoint,
    OutboxEntry,
    SessionState,
    StoredRelay,
    Trimmed,
    encode_statuses,
    sessions_by_alias,
)
from .errors import StoreBusy, StoreClosed, StoreUnreachable
from .postgres_listen import CHANNEL, ChangeListener
from .postgres_schema import migrate
from .threaded import Queries, ThreadedStore

_T = TypeVar("_T")

Cursor = psycopg.Cursor[TupleRow]
Pool = ConnectionPool[psycopg.Connection[TupleRow]]

def describe(params: Mapping[str, str]) -> str:
    """
    :return: a description of the database that ``params`` (a libpq
        connection dict) names, without its password.
    """
    host = params.get("host") or "the local socket"
    port = params.get("port") or "5432"
    dbname = params.get("dbname") or params.get("user") or "(default)"
    return f"PostgreSQL database {dbname!r} on {host}:{port}"


@implementer(IClusterStore)
class PostgresStore(ThreadedStore):
    """
    An :class:`IRelayStore` in a PostgreSQL database, and the
    :class:`IClusterStore` of the nodes that share it.

    :param url: a libpq connection string: a ``postgresql://`` URL or
        ``key=value`` pairs.  Its password never appears in the description,
        logs or errors.
    :param reactor: provides ``IReactorCore``, ``IReactorFromThreads`` and
        (unless ``now`` is given) ``IReactorTime``.
    :param now: the wall clock for ``created_at``/``updated_at``; leases use
        the database's clock instead.
    :param pool_size: connections (and threads) for queries, beside the one
        each :meth:`listen_changes` holds.
    :param connect_timeout: seconds to wait for a connection, unless the URL
        says otherwise.
    """

    def __init__(
        self,
        url: str,
        reactor: IReactorCore,
        now: Callable[[], float] | None = None,
        pool_size: int = 4,
        connect_timeout: float = 10.0,
    ) -> None:
        params = {key: str(value) for key, value in conninfo_to_dict(url).items()}
        # Defaults only: what the operator wrote in the URL wins.
        params.setdefault("connect_timeout", str(max(1, round(connect_timeout))))
        params.setdefault("application_name", "dccrelay")
        super().__init__(
            describe(params),
            QUERIES,
            now if now is not None else cast(IReactorTime, reactor).seconds,
        )
        self._conninfo = make_conninfo("", **params)
        self._reactor = cast(IReactorFromThreads, reactor)
        self._core = reactor
        self._pool_size = pool_size
        self._connect_timeout = connect_timeout
        self._threads = ThreadPool(minthreads=0, maxthreads=pool_size, name="dccrelay-postgres")
        self._pool: Pool | None = None
        self._open_waiters: list[Deferred[None]] = []
        self._opened_as: object = _NOT_YET
        self._pending: set[Deferred[None]] = set()
        self._listeners: list[ChangeListener] = []
        self._shutdown_trigger: Any = None

    # -- opening and closing ------------------------------------------------

    def open(self) -> Deferred[None]:
        """
        Connect, create or migrate the schema (once, whichever node gets
        there first), and fill the connection pool.

        :raises SchemaTooNew: (in the Deferred) if a newer dccrelay migrated
            the database.
        :raises StoreUnreachable: (in the Deferred) if the database cannot
            be reached.
        """
        if self._closing is not None:
            return fail(StoreClosed(self.description))
        done: Deferred[None] = Deferred()
        if self._opened_as is not _NOT_YET:
            _fire(done, self._opened_as)
            return done
        self._open_waiters.append(done)
        if len(self._open_waiters) == 1:
            if not self._threads.started:
                self._threads.start()
                # Like adbapi: if the reactor stops before close(), the threads
                # must still go, or the process would not exit.
                self._shutdown_trigger = self._core.addSystemEventTrigger(
                    "during", "shutdown", self._stop_threads
                )
            opening = deferToThreadPool(
                self._reactor,
                self._threads,
                _open_pool,
                self._conninfo,
                self.description,
                self._pool_size,
                self._connect_timeout,
            )
            # Tracked after _opened, so a close() meanwhile finds the pool.
            self._track(opening.addCallback(self._opened)).addBoth(self._open_finished)
        return done

    def _open_finished(self, result: None | Failure) -> None:
        # Every open() made meanwhile gets this outcome, failure included; after
        # a failure, the next open() tries again (the server may be up by then).
        self._opened_as = _NOT_YET if isinstance(result, Failure) else result
        waiters, self._open_waiters = self._open_waiters, []
        for waiter in waiters:
            _fire(waiter, result)

    def _opened(self, result: tuple[Pool, int, int]) -> None:
        self._pool, before, after = result
        if self._closing is not None:
            # close() came meanwhile; it closes this pool once we return.
            raise StoreClosed(self.description)
        if before != after:
            self.log.info(
                "Migrated {store} from schema version {before} to {after}",
                store=self.description,
                before=before,
                after=after,
            )

    def _shut_down(self) -> Deferred[None]:
        listeners, self._listeners = self._listeners, []
        waits = list(self._pending) + [listener.stop() for listener in listeners]
        closed: Deferred[Any] = DeferredList(waits, consumeErrors=True)

        def close_pool(_: object) -> Deferred[None] | None:
            pool = self._pool
            if pool is None:
                return None
            # Joins the pool's own workers: work for a thread, not the reactor.
            return deferToThreadPool(self._reactor, self._threads, pool.close)

        def stop_threads(result: object) -> object:
            self._stop_threads()
            return result

        closed.addCallback(close_pool)
        return closed.addBoth(stop_threads)

    def _stop_threads(self) -> None:
        if not self._threads.started:
            return
        if self._shutdown_trigger is not None:
            try:
                self._core.removeSystemEventTrigger(self._shutdown_trigger)
            except ValueError:
                pass  # Already ran: this is that run.
            self._shutdown_trigger = None
        # The threads are idle by now, so joining them is quick.
        self._threads.stop()

    def _track(self, d: Deferred[_T]) -> Deferred[_T]:
        # close() waits on a Deferred of its own, never on the caller's, so
        # that the caller's callbacks and errors stay the caller's.
        finished: Deferred[None] = Deferred()
        self._pending.add(finished)

        def done(result: _T | Failure) -> _T | Failure:
            self._pending.discard(finished)
            finished.callback(None)
            return result

        return d.addBoth(done)

    def _run(self, work: Callable[..., _T], *args: Any) -> Deferred[_T]:
        if self._pool is None:
            return fail(StoreClosed(self.description))
        return self._track(
            deferToThreadPool(self._reactor, self._threads, _in_transaction, self._pool, work, *args)
        )

    # -- nodes, leases and change notices -----------------------------------

    def heartbeat_node(self, node_id: str, ttl: float) -> Deferred[None]:
        return self._interact(_heartbeat_node, node_id, ttl)

    def live_nodes(self) -> Deferred[list[str]]:
        return self._interact(_live_nodes)

    def forget_node(self, node_id: str) -> Deferred[None]:
        return self._interact(_forget_node, node_id)

    def claim_leases(self, node_id: str, ttl: float, limit: int) -> Deferred[list[tuple[str, int]]]:
        return self._interact(_claim_leases, node_id, ttl, limit)

    def renew_leases(self, node_id: str, ttl: float) -> Deferred[list[str]]:
        return self._interact(_renew_leases, node_id, ttl)

    def release_leases(self, node_id: str, aliases: Iterable[str]) -> Deferred[list[str]]:
        return self._interact(_release_leases, node_id, sorted(set(aliases)))

    def lease_owners(self) -> Deferred[dict[str, str]]:
        return self._interact(_lease_owners)

    # -- IDENTIFY slots and public status --------------------------------------

    def acquire_identify(self, key: str, bucket: int, node_id: str, hold: float) -> Deferred[float]:
        return self._interact(_acquire_identify, key, bucket, node_id, hold)

    def finish_identify(
        self, key: str, bucket: int, node_id: str, sent: bool, window: float
    ) -> Deferred[None]:
        return self._interact(_finish_identify, key, bucket, node_id, sent, window)

    def publish_statuses(self, node_id: str, statuses: Mapping[str, dict[str, Any]]) -> Deferred[None]:
        try:
            encoded = encode_statuses(statuses)
        except (TypeError, ValueError):
            return fail()
        return self._interact(_publish_statuses, node_id, encoded)

    def update_statuses(
        self, node_id: str, changed: Mapping[str, dict[str, Any]], withdrawn: Iterable[str]
    ) -> Deferred[None]:
        try:
            encoded = encode_statuses(changed)
        except (TypeError, ValueError):
            return fail()
        return self._interact(_update_statuses, node_id, encoded, sorted(withdrawn))

    def load_statuses(self) -> Deferred[dict[str, tuple[str, dict[str, Any]]]]:
        return self._interact(_load_statuses)

    def notify_change(self, alias: str) -> Deferred[None]:
        return self._interact(_notify_change, alias)

    def listen_changes(self, callback: Callable[[str | None], None]) -> Deferred[None]:
        """
        Listen on a connection of its own, on a thread of its own (waiting
        for a notice blocks); see :mod:`dccrelay.store.postgres_listen`.
        """
        if self._closing is not None or self._pool is None:
            return fail(StoreClosed(self.description))
        listener = ChangeListener(self._conninfo, self._reactor, callback, self.description)
        self._listeners.append(listener)
        listening = listener.start()

        def failed(failure: Failure) -> Failure:
            if listener in self._listeners:
                self._listeners.remove(listener)
            failure.trap(psycopg.Error)
            return Failure(StoreUnreachable(self.description, failure.getErrorMessage()))

        return listening.addErrback(failed)


_NOT_YET = object()


def _fire(waiter: Deferred[None], outcome: object) -> None:
    if isinstance(outcome, Failure):
        waiter.errback(outcome)
    else:
        waiter.callback(None)


#: What PostgreSQL answers (SQLSTATE 57P03, cannot_connect_now) while it
#: starts, recovers or stays a standby: the server is there and may accept
#: connections soon.  libpq gives no SQLSTATE for a refused connection, so the
#: server's (English) messages are matched; a server speaking another
#: language makes this a fault that stops start-up instead.
_NOT_READY_YET = (
    "the database system is starting up",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "the database system is not accepting connections",
)


# Everything below runs on the store's threads and touches no store state.


def _open_pool(
    conninfo: str, description: str, size: int, timeout: float
) -> tuple[Pool, int, int]:
    try:
        # A connection of its own, so a failure says why (refused, bad
        # password), not just that the pool timed out.
        with psycopg.connect(conninfo, autocommit=True) as connection:
            before, after = migrate(connection, description)
    except psycopg.OperationalError as e:
        reason = str(e).strip()
        if any(answer in reason for answer in _NOT_READY_YET):
            raise StoreBusy(description, reason) from None
        raise StoreUnreachable(description, reason) from None
    pool: Pool = ConnectionPool(
        conninfo,
        min_size=1,
        max_size=size,
        kwargs={"autocommit": True},
        check=ConnectionPool.check_connection,
        name="dccrelay",
        open=False,
    )
    try:
        pool.open(wait=True, timeout=timeout)
    except psycopg.OperationalError as e:  # PoolTimeout is one
        pool.close()
        raise StoreUnreachable(description, str(e).strip()) from None
    return pool, before, after


def _in_transaction(pool: Pool, work: Callable[..., _T], *args: Any) -> _T:
    with pool.connection() as connection, connection.transaction():
        with connection.cursor() as cursor:
            return work(cursor, *args)


def _load_relays(cursor: Cursor) -> list[StoredRelay]:
    cursor.execute(
        "SELECT alias, settings, enabled, disable_reason FROM relays ORDER BY alias"
    )
    return [
        StoredRelay(alias, json.loads(settings), enabled, reason)
        for alias, settings, enabled, reason in cursor.fetchall()
    ]


def _create_relay(cursor: Cursor, alias: str, settings: str, now: float) -> bool:
    # ON CONFLICT DO NOTHING: a node inserting the same alias at the same
    # moment waits for this transaction, then finds the row and inserts
    # nothing; only one of them gets a row back.
    cursor.execute(
        """
        INSERT INTO relays
            (alias, settings, enabled, disable_reason, created_at, updated_at)
        VALUES (%s, %s, true, NULL, %s, %s)
        ON CONFLICT (alias) DO NOTHING
        RETURNING alias
        """,
        (alias, settings, now, now),
    )
    if cursor.fetchone() is None:
        return False
    cursor.execute("INSERT INTO leases (alias) VALUES (%s) ON CONFLICT DO NOTHING", (alias,))
    return True


def _save_relay(cursor: Cursor, alias: str, settings: str, now: float) -> None:
    # An upsert, never delete-and-insert: a delete would cascade to the
    # relay's sessions and lease.
    cursor.execute(
        """
        INSERT INTO relays
            (alias, settings, enabled, disable_reason, created_at, updated_at)
        VALUES (%s, %s, true, NULL, %s, %s)
        ON CONFLICT (alias) DO UPDATE SET
            settings = excluded.settings,
            enabled = true,
            updated_at = excluded.updated_at
        """,
        (alias, settings, now, now),
    )
    cursor.execute("INSERT INTO leases (alias) VALUES (%s) ON CONFLICT DO NOTHING", (alias,))


def _delete_relay(cursor: Cursor, alias: str) -> bool:
    # The relay first: deleting its row waits for an append that holds it
    # (see _outbox_append), so the outbox delete after it sees that
    # append's rows and leaves none behind for a later bot of this alias.
    cursor.execute("DELETE FROM relays WHERE alias = %s", (alias,))
    existed = cursor.rowcount > 0
    cursor.execute("DELETE FROM outbox WHERE alias = %s", (alias,))
    return existed


def _disable_relay(cursor: Cursor, alias: str, reason: str, now: float) -> None:
    cursor.execute(
        """
        UPDATE relays SET enabled = false, disable_reason = %s, updated_at = %s
        WHERE alias = %s
        """,
        (reason, now, alias),
    )
    cursor.execute("DELETE FROM sessions WHERE alias = %s", (alias,))


def _load_sessions(cursor: Cursor, alias: str) -> dict[int, SessionState]:
    cursor.execute(
        """
        SELECT shard_id, shard_count, session_id, seq, resume_url
        FROM sessions WHERE alias = %s ORDER BY shard_id
        """,
        (alias,),
    )
    return {row[0]: SessionState(*row) for row in cursor.fetchall()}


def _load_all_sessions(cursor: Cursor) -> dict[str, dict[int, SessionState]]:
    cursor.execute(
        """
        SELECT alias, shard_id, shard_count, session_id, seq, resume_url
        FROM sessions ORDER BY alias, shard_id
        """
    )
    return sessions_by_alias(cursor.fetchall())


def _save_sessions(cursor: Cursor, states: list[tuple[str, SessionState]]) -> None:
    # FOR SHARE, in alias order so that concurrent calls cannot deadlock: a
    # disable that comes meanwhile waits for this transaction, then deletes
    # the sessions too; one that came first is seen here.
    cursor.execute(
        "SELECT alias FROM relays WHERE alias = ANY(%s) AND enabled ORDER BY alias FOR SHARE",
        (sorted({alias for alias, _ in states}),),
    )
    enabled = {row[0] for row in cursor.fetchall()}
    cursor.executemany(
        """
        INSERT INTO sessions
            (alias, shard_id, shard_count, session_id, seq, resume_url)
        VALUES (%s, %s, %s, %s, %s, %s)
        ON CONFLICT (alias, shard_id) DO UPDATE SET
            shard_count = excluded.shard_count,
            session_id = excluded.session_id,
            seq = excluded.seq,
            resume_url = excluded.resume_url
        """,
        [
            (alias, s.shard_id, s.shard_count, s.session_id, s.seq, s.resume_url)
            for alias, s in states
            if alias in enabled
        ],
    )


def _forget_session(cursor: Cursor, alias: str, shard_id: int) -> None:
    cursor.execute("DELETE FROM sessions WHERE alias = %s AND shard_id = %s", (alias, shard_id))


def _outbox_append(
    cursor: Cursor,
    entries: list[tuple[str, bytes]],
    now: float,
    checkpoints: list[OutboxCheckpoint],
    fences: list[int | None],
) -> list[int | None]:
    # Lock the bots' rows, in alias order so concurrent appends cannot
    # deadlock: a delete waits for this append to commit (and then removes
    # its rows), and two appends for one bot commit in the order they took
    # their ids, so a reader never sees a later id before an earlier one.
    aliases = sorted({alias for alias, _ in entries})
    known: set[str] = set()
    if aliases:
        cursor.execute(
            "SELECT alias FROM relays WHERE alias = ANY(%s) ORDER BY alias FOR NO KEY UPDATE",
            (aliases,),
        )
        known = {alias for (alias,) in cursor.fetchall()}
    epochs = _lease_epochs(
        cursor,
        {alias for (alias, _), fence in zip(entries, fences) if fence is not None}
        | {c.alias for c in checkpoints if c.lease_epoch is not None},
    )
    keep = [
        alias in known and (fence is None or epochs.get(alias) == fence)
        for (alias, _), fence in zip(entries, fences)
    ]
    checkpoints = [
        c for c in checkpoints if c.lease_epoch is None or epochs.get(c.alias) == c.lease_epoch
    ]
    stored = [(alias, payload, now) for (alias, payload), kept in zip(entries, keep) if kept]
    new_ids: list[int] = []
    if stored:
        cursor.executemany(
            "INSERT INTO outbox (alias, payload, created_at) VALUES (%s, %s, %s) RETURNING id",
            stored,
            returning=True,
        )
        while True:
            row = cursor.fetchone()
            assert row is not None
            new_ids.append(row[0])
            if not cursor.nextset():
                break
    if checkpoints:
        cursor.executemany(
            """
            UPDATE sessions SET seq = %s
            WHERE alias = %s AND shard_id = %s AND session_id = %s
                AND (seq IS NULL OR seq < %s)
            """,
            [(c.seq, c.alias, c.shard_id, c.session_id, c.seq) for c in checkpoints],
        )
    given = iter(new_ids)
    return [next(given) if kept else None for kept in keep]


def _lease_epochs(cursor: Cursor, aliases: set[str]) -> dict[str, int]:
    """
    The current lease epoch of each of ``aliases``, its row locked until
    the transaction ends: a claim (which changes the epoch) skips the row
    until the append is committed, or the append sees the claim's epoch.
    """
    if not aliases:
        return {}
    cursor.execute(
        "SELECT alias, epoch FROM leases WHERE alias = ANY(%s) ORDER BY alias FOR SHARE",
        (sorted(aliases),),
    )
    return {alias: epoch for alias, epoch in cursor.fetchall()}


def _outbox_load(cursor: Cursor, alias: str, after_id: int, limit: int) -> list[OutboxEntry]:
    cursor.execute(
        """
        SELECT id, payload, created_at, batch_last FROM outbox
        WHERE alias = %s AND id > %s ORDER BY id LIMIT %s
        """,
        (alias, after_id, max(0, limit)),
    )
    return [
        OutboxEntry(id, bytes(payload), created_at, batch_last)
        for id, payload, created_at, batch_last in cursor.fetchall()
    ]


def _outbox_ack(
    cursor: Cursor, acks: dict[str, int], batches: dict[str, tuple[int, int]]
) -> dict[str, int]:
    removed = {}
    for alias, up_to in acks.items():
        cursor.execute("DELETE FROM outbox WHERE alias = %s AND id <= %s", (alias, up_to))
        removed[alias] = max(0, cursor.rowcount)
    if batches:
        cursor.executemany(
            "UPDATE outbox SET batch_last = %s WHERE alias = %s AND id = %s",
            [(last, alias, first) for alias, (first, last) in batches.items()],
        )
    return removed


def _outbox_trim(
    cursor: Cursor, alias: str, max_count: int, created_before: float | None
) -> Trimmed:
    up_to = 0
    # The newest entry beyond the max_count newest ones.
    cursor.execute(
        "SELECT id FROM outbox WHERE alias = %s ORDER BY id DESC LIMIT 1 OFFSET %s",
        (alias, max(0, max_count)),
    )
    row = cursor.fetchone()
    if row is not None:
        up_to = row[0]
    if created_before is not None:
        # Everything up to the newest entry that is too old: a prefix, even
        # if the clock went backwards between appends.
        cursor.execute(
            "SELECT MAX(id) FROM outbox WHERE alias = %s AND created_at < %s",
            (alias, created_before),
        )
        oldest = cast("tuple[int | None]", cursor.fetchone())[0]
        if oldest is not None:
            up_to = max(up_to, oldest)
    if not up_to:
        return Trimmed(0, 0)
    cursor.execute("DELETE FROM outbox WHERE alias = %s AND id <= %s", (alias, up_to))
    return Trimmed(max(0, cursor.rowcount), up_to)


def _outbox_count(cursor: Cursor, alias: str) -> int:
    cursor.execute("SELECT COUNT(*) FROM outbox WHERE alias = %s", (alias,))
    count: int = cast("tuple[int]", cursor.fetchone())[0]
    return count


def _load_guild_snapshot(cursor: Cursor, alias: str) -> dict[str, bytes]:
    cursor.execute("SELECT part, document FROM guild_snapshots WHERE alias = %s", (alias,))
    return {part: bytes(document) for part, document in cursor.fetchall()}


def _save_guild_snapshots(cursor: Cursor, updates: list[GuildSnapshotUpdate]) -> None:
    # FOR KEY SHARE, in alias order so that concurrent calls cannot
    # deadlock: a delete of one of these bots waits for this transaction,
    # then its cascade removes what this wrote; one that came first is seen
    # here, and its bot skipped.
    cursor.execute(
        "SELECT alias FROM relays WHERE alias = ANY(%s) ORDER BY alias FOR KEY SHARE",
        (sorted({update.alias for update in updates}),),
    )
    known = {alias for (alias,) in cursor.fetchall()}
    for update in updates:
        if update.alias not in known:
            continue
        if update.replace:
            cursor.execute("DELETE FROM guild_snapshots WHERE alias = %s", (update.alias,))
        if update.dropped:
            cursor.execute(
                "DELETE FROM guild_snapshots WHERE alias = %s AND part = ANY(%s)",
                (update.alias, list(update.dropped)),
            )
        if update.parts:
            cursor.executemany(
                """
                INSERT INTO guild_snapshots (alias, part, document) VALUES (%s, %s, %s)
                ON CONFLICT (alias, part) DO UPDATE SET document = excluded.document
                """,
                [(update.alias, name, document) for name, document in update.parts],
            )


# Leases: every time is the database's now(), the start of the transaction,
# so nodes with skewed clocks still agree on who holds what.


def _heartbeat_node(cursor: Cursor, node_id: str, ttl: float) -> None:
    cursor.execute(
        """
        INSERT INTO nodes (node_id, started_at, last_seen, expires_at)
        VALUES (%s, now(), now(), now() + make_interval(secs => %s))
        ON CONFLICT (node_id) DO UPDATE SET
            last_seen = excluded.last_seen,
            expires_at = excluded.expires_at
        """,
        (node_id, ttl),
    )
    # Node ids are per run, so rows of long-gone runs would pile up.
    cursor.execute("DELETE FROM nodes WHERE expires_at < now() - interval '1 day'")


def _live_nodes(cursor: Cursor) -> list[str]:
    cursor.execute("SELECT node_id FROM nodes WHERE expires_at > now() ORDER BY node_id")
    return [node_id for (node_id,) in cursor.fetchall()]


def _forget_node(cursor: Cursor, node_id: str) -> None:
    cursor.execute("DELETE FROM nodes WHERE node_id = %s", (node_id,))
    cursor.execute("DELETE FROM statuses WHERE node_id = %s", (node_id,))
    cursor.execute(
        "UPDATE leases SET owner = NULL, expires_at = NULL WHERE owner = %s", (node_id,)
    )


def _claim_leases(cursor: Cursor, node_id: str, ttl: float, limit: int) -> list[tuple[str, int]]:
    if limit <= 0:
        return []
    # SKIP LOCKED: nodes claiming at once each take different bots instead
    # of queueing behind each other.  A row another node has just claimed
    # (committed) fails the WHERE when it is locked and re-read.
    cursor.execute(
        """
        WITH free AS (
            SELECT alias FROM leases
            WHERE owner IS NULL OR expires_at <= now()
            ORDER BY alias
            LIMIT %s
            FOR UPDATE SKIP LOCKED
        )
        UPDATE leases SET
            owner = %s,
            epoch = nextval('lease_epochs'),
            expires_at = now() + make_interval(secs => %s)
        FROM free WHERE leases.alias = free.alias
        RETURNING leases.alias, leases.epoch
        """,
        (limit, node_id, ttl),
    )
    return sorted((alias, epoch) for alias, epoch in cursor.fetchall())


def _renew_leases(cursor: Cursor, node_id: str, ttl: float) -> list[str]:
    cursor.execute(
        """
        UPDATE leases SET expires_at = now() + make_interval(secs => %s)
        WHERE owner = %s AND expires_at > now()
        RETURNING alias
        """,
        (ttl, node_id),
    )
    return sorted(alias for (alias,) in cursor.fetchall())


def _release_leases(cursor: Cursor, node_id: str, aliases: list[str]) -> list[str]:
    if not aliases:
        return []
    cursor.execute(
        """
        UPDATE leases SET owner = NULL, expires_at = NULL
        WHERE owner = %s AND alias = ANY(%s)
        RETURNING alias
        """,
        (node_id, aliases),
    )
    return sorted(alias for (alias,) in cursor.fetchall())


def _lease_owners(cursor: Cursor) -> dict[str, str]:
    cursor.execute(
        "SELECT alias, owner FROM leases WHERE owner IS NOT NULL AND expires_at > now()"
    )
    return {alias: owner for alias, owner in cursor.fetchall()}


def _notify_change(cursor: Cursor, alias: str) -> None:
    # Sent when this transaction commits, to every listening connection.
    cursor.execute("SELECT pg_notify(%s, %s)", (CHANNEL, alias))


# IDENTIFY slots and statuses: the database's clock too.


def _acquire_identify(cursor: Cursor, key: str, bucket: int, node_id: str, hold: float) -> float:
    # The row is made if missing, then locked: a node asking at the same
    # moment waits here, then reads what this one decided.
    cursor.execute(
        "INSERT INTO identify_slots (key, bucket) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (key, bucket),
    )
    cursor.execute(
        """
        SELECT
            CASE WHEN holder IS NOT NULL AND held_until > now()
                THEN extract(epoch FROM held_until - now())::float8 END,
            CASE WHEN next_free > now()
                THEN extract(epoch FROM next_free - now())::float8 END
        FROM identify_slots WHERE key = %s AND bucket = %s
        FOR UPDATE
        """,
        (key, bucket),
    )
    held_for, free_in = cast("tuple[float | None, float | None]", cursor.fetchone())
    if held_for is not None:
        return max(IDENTIFY_MIN_WAIT, held_for)
    if free_in is not None:
        return max(IDENTIFY_MIN_WAIT, free_in)
    cursor.execute(
        """
        UPDATE identify_slots
        SET holder = %s, held_until = now() + make_interval(secs => %s)
        WHERE key = %s AND bucket = %s
        """,
        (node_id, hold, key, bucket),
    )
    return 0.0


def _finish_identify(
    cursor: Cursor, key: str, bucket: int, node_id: str, sent: bool, window: float
) -> None:
    cursor.execute(
        """
        UPDATE identify_slots SET
            holder = NULL,
            held_until = NULL,
            next_free = CASE WHEN %s THEN now() + make_interval(secs => %s) ELSE next_free END
        WHERE key = %s AND bucket = %s AND holder = %s
        """,
        (bool(sent), window, key, bucket, node_id),
    )


#: With a hash of the node id, the advisory lock that one node's publishes
#: take in turn (the two-key space, apart from the migration's one key).
STATUSES_LOCK = int.from_bytes(b"dcst", "big", signed=True)


def _publish_statuses(cursor: Cursor, node_id: str, statuses: list[tuple[str, str]]) -> None:
    # Two publishes of one node at once would each miss the rows the other
    # inserts, and leave a mix or fail on the primary key: one at a time.
    cursor.execute("SELECT pg_advisory_xact_lock(%s::integer, hashtext(%s))", (STATUSES_LOCK, node_id))
    cursor.execute("DELETE FROM statuses WHERE node_id = %s", (node_id,))
    # Node ids are per run: statuses of runs killed long ago would pile up.
    # SKIP LOCKED: nodes cleaning up at once never wait for each other.
    cursor.execute(
        """
        DELETE FROM statuses WHERE (node_id, alias) IN (
            SELECT node_id, alias FROM statuses
            WHERE published_at < now() - interval '1 day'
                AND node_id NOT IN (SELECT node_id FROM nodes WHERE expires_at > now())
            FOR UPDATE SKIP LOCKED
        )
        """
    )
    if statuses:
        cursor.executemany(
            "INSERT INTO statuses (node_id, alias, status, published_at) VALUES (%s, %s, %s, now())",
            [(node_id, alias, status) for alias, status in statuses],
        )


def _update_statuses(
    cursor: Cursor, node_id: str, changed: list[tuple[str, str]], withdrawn: list[str]
) -> None:
    # One at a time per node, as _publish_statuses.
    cursor.execute("SELECT pg_advisory_xact_lock(%s::integer, hashtext(%s))", (STATUSES_LOCK, node_id))
    if withdrawn:
        cursor.execute(
            "DELETE FROM statuses WHERE node_id = %s AND alias = ANY(%s)", (node_id, withdrawn)
        )
    if changed:
        cursor.executemany(
            """
            INSERT INTO statuses (node_id, alias, status, published_at) VALUES (%s, %s, %s, now())
            ON CONFLICT (node_id, alias) DO UPDATE
                SET status = excluded.status, published_at = excluded.published_at
            """,
            [(node_id, alias, status) for alias, status in changed],
        )


def _load_statuses(cursor: Cursor) -> dict[str, tuple[str, dict[str, Any]]]:
    cursor.execute(
        """
        SELECT DISTINCT ON (s.alias) s.alias, s.node_id, s.status
        FROM statuses AS s
        JOIN nodes AS n ON n.node_id = s.node_id AND n.expires_at > now()
        ORDER BY s.alias, s.published_at DESC, s.node_id
        """
    )
    return {alias: (node_id, json.loads(status)) for alias, node_id, status in cursor.fetchall()}


QUERIES = Queries(
    load_relays=_load_relays,
    create_relay=_create_relay,
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
