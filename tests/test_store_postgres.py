"""
Tests for :mod:`dccrelay.store.postgres` against a real PostgreSQL server
(see :mod:`tests.postgres` for where it comes from): the shared contract,
and what only the shared store does (migrating once when nodes start
together, refusing a newer schema, hearing other nodes' notices).
"""

from __future__ import annotations

import socket
import threading
from typing import Callable

import psycopg
from psycopg.rows import TupleRow
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater
from twisted.logger import capturedLogs
from twisted.trial.unittest import TestCase

from dccrelay.store import IRelayStore, StoredRelay
from dccrelay.store.errors import SchemaTooNew, StoreClosed, StoreUnreachable
from dccrelay.store.postgres import PostgresStore
from dccrelay.store.postgres_schema import MIGRATIONS

from .postgres import fresh_database
from .test_store import (
    LONG,
    SETTINGS,
    ClusterStoreTestsMixin,
    IRelayStoreTestsMixin,
    deferred_test,
    session,
)


class PostgresStoreTests(IRelayStoreTestsMixin, ClusterStoreTestsMixin, TestCase):
    """
    :class:`PostgresStore` keeps the :class:`IRelayStore` contract, and the
    cluster role's (:class:`IClusterStore`).
    """

    def setUp(self) -> None:
        self.url = fresh_database(self)

    def make_store(self) -> IRelayStore:
        return PostgresStore(self.url, reactor)


def _closed_port() -> int:
    """
    :return: a loopback port where nothing listens.
    """
    # Bound but never listening: connecting to it is refused at once.
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port: int = probe.getsockname()[1]
    probe.close()
    return port


class PostgresDescriptionTests(TestCase):
    """
    What the store says about its database, with no server needed.
    """

    def test_description_without_password(self) -> None:
        """
        The description names the database, host and port, never the
        password.
        """
        store = PostgresStore("postgresql://dcc:s3cret@db.example:6543/relay", reactor)
        self.assertEqual(store.description, "PostgreSQL database 'relay' on db.example:6543")

    @deferred_test
    async def test_unreachable(self) -> None:
        """
        A server that refuses connections fails ``open`` with an error that
        names the database and what to check, without the password.
        """
        port = _closed_port()
        store = PostgresStore(f"postgresql://dcc:s3cret@127.0.0.1:{port}/relay", reactor)
        self.addCleanup(store.close)
        with self.assertRaises(StoreUnreachable) as caught:
            await store.open()
        message = str(caught.exception)
        self.assertIn(f"'relay' on 127.0.0.1:{port}", message)
        self.assertIn("Check the store URL", message)
        self.assertNotIn("s3cret", message)
        await self.assertFailure(store.load_relays(), StoreClosed)


class PostgresSchemaTests(TestCase):
    """
    The schema: created, migrated once, refused when too new.
    """

    def setUp(self) -> None:
        self.url = fresh_database(self)

    def inspect(self) -> psycopg.Connection[TupleRow]:
        """
        :return: a connection to the test's database, closed after the test.
        """
        connection = psycopg.connect(self.url, autocommit=True)
        self.addCleanup(connection.close)
        return connection

    async def open_store(self) -> PostgresStore:
        """
        :return: an opened store, closed after the test.
        """
        store = PostgresStore(self.url, reactor)
        self.addCleanup(store.close)
        await store.open()
        return store

    def tables(self) -> list[str]:
        """
        :return: the names of the database's own tables, sorted.
        """
        rows = self.inspect().execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
        return [name for (name,) in rows]

    def version(self) -> int:
        """
        :return: the schema version the database records.
        """
        (version,) = self.inspect().execute("SELECT version FROM dccrelay_schema").fetchall()
        return int(version[0])

    @deferred_test
    async def test_migrates_empty_database(self) -> None:
        """
        An empty database gets every table, at the latest version.
        """
        await self.open_store()
        self.assertEqual(
            self.tables(),
            [
                "dccrelay_schema",
                "guild_snapshots",
                "identify_slots",
                "leases",
                "nodes",
                "outbox",
                "relays",
                "sessions",
                "statuses",
            ],
        )
        self.assertEqual(self.version(), len(MIGRATIONS))

    @deferred_test
    async def test_concurrent_start_migrates_once(self) -> None:
        """
        Several nodes opening one empty database at the same moment all
        open it, and exactly one of them migrates it.
        """
        stores = [PostgresStore(self.url, reactor) for _ in range(4)]
        for store in stores:
            self.addCleanup(store.close)
        with capturedLogs() as events:
            await gatherResults([store.open() for store in stores])
        migrations = [e for e in events if "Migrated" in e.get("log_format", "")]
        self.assertEqual(len(migrations), 1)
        self.assertEqual((migrations[0]["before"], migrations[0]["after"]), (0, len(MIGRATIONS)))
        await stores[1].save_relay("alpha", SETTINGS)
        self.assertEqual(
            await stores[2].load_relays(), [StoredRelay("alpha", SETTINGS, True, None)]
        )

    @deferred_test
    async def test_reopen_does_not_migrate(self) -> None:
        """
        Opening a database at the latest version changes nothing and logs
        no migration.
        """
        store = await self.open_store()
        await store.save_relay("alpha", SETTINGS)
        await store.close()
        with capturedLogs() as events:
            again = await self.open_store()
        self.assertEqual([e for e in events if "Migrated" in e.get("log_format", "")], [])
        self.assertEqual(len(await again.load_relays()), 1)

    @deferred_test
    async def test_refuses_newer_schema(self) -> None:
        """
        A database migrated by a newer dccrelay fails to open with the same
        error as SQLite's, naming the database and both versions, and is
        left as it was.
        """
        newer = len(MIGRATIONS) + 1
        connection = self.inspect()
        connection.execute(
            "CREATE TABLE dccrelay_schema (one boolean PRIMARY KEY DEFAULT true, version integer)"
        )
        connection.execute("INSERT INTO dccrelay_schema (version) VALUES (%s)", (newer,))
        store = PostgresStore(self.url, reactor)
        self.addCleanup(store.close)
        with self.assertRaises(SchemaTooNew) as caught:
            await store.open()
        self.assertEqual((caught.exception.found, caught.exception.known), (newer, len(MIGRATIONS)))
        self.assertIn(store.description, str(caught.exception))
        self.assertEqual(self.tables(), ["dccrelay_schema"])
        self.assertEqual(self.version(), newer)


class PostgresNodeTests(TestCase):
    """
    Several nodes on one database, beyond the contract.
    """

    def setUp(self) -> None:
        self.url = fresh_database(self)

    async def open_store(self) -> PostgresStore:
        """
        :return: an opened store, closed after the test.
        """
        store = PostgresStore(self.url, reactor)
        self.addCleanup(store.close)
        await store.open()
        return store

    async def eventually(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """
        Wait until ``condition()`` holds; fail after ``timeout`` seconds.
        """
        for _ in range(int(timeout / 0.01)):
            if condition():
                return
            await deferLater(reactor, 0.01, lambda: None)
        self.fail(f"still not true after {timeout} s")

    @deferred_test
    async def test_listener_reconnects(self) -> None:
        """
        When its connection is cut, the listener connects again, calls back
        with ``None`` (notices may have been lost) and then hears notices
        again.
        """
        store_a = await self.open_store()
        store_b = await self.open_store()
        heard: list[str | None] = []
        await store_a.listen_changes(heard.append)
        admin = psycopg.connect(self.url, autocommit=True)
        self.addCleanup(admin.close)
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query LIKE 'LISTEN%%'"
        )
        await self.eventually(lambda: heard == [None])
        await store_b.notify_change("alpha")
        await self.eventually(lambda: heard == [None, "alpha"])

    @deferred_test
    async def test_close_stops_listening(self) -> None:
        """
        After ``close``, the listener's connection is gone and nothing is
        called back.
        """
        store_a = await self.open_store()
        store_b = await self.open_store()
        heard: list[str | None] = []
        await store_a.listen_changes(heard.append)
        await store_a.close()
        await store_b.notify_change("alpha")
        admin = psycopg.connect(self.url, autocommit=True)
        self.addCleanup(admin.close)
        # The server may take a moment to notice the connection is gone.
        await self.eventually(
            lambda: admin.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN%%'"
            ).fetchone() == (0,)
        )
        await deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(heard, [])
        self.assertNotIn("dccrelay-postgres-listen", [t.name for t in threading.enumerate()])

    @deferred_test
    async def test_close_waits_for_calls(self) -> None:
        """
        Calls under way when ``close`` is called finish and succeed; calls
        after it fail.
        """
        store = await self.open_store()
        await store.save_relay("alpha", SETTINGS)
        pending = [store.save_session("alpha", session(i)) for i in range(8)]
        closed = store.close()
        await gatherResults(pending)
        await closed
        await self.assertFailure(store.load_sessions("alpha"), StoreClosed)
        again = await self.open_store()
        self.assertEqual(len(await again.load_sessions("alpha")), 8)

    @deferred_test
    async def test_close_while_opening(self) -> None:
        """
        A store closed while it is still opening fails the open with
        :class:`StoreClosed` and leaves no connection behind.
        """
        store = PostgresStore(self.url, reactor)
        opening = store.open()
        await store.close()
        await self.assertFailure(opening, StoreClosed)
        admin = psycopg.connect(self.url, autocommit=True)
        self.addCleanup(admin.close)
        await self.eventually(
            lambda: admin.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone() == (0,)
        )

    @deferred_test
    async def test_append_racing_delete(self) -> None:
        """
        An append racing a delete of the same bot on another node either
        lands before the delete (and is deleted with it) or is not stored:
        a bot registered again under the alias never finds its dispatches.
        """
        store_a = await self.open_store()
        store_b = await self.open_store()
        for _ in range(20):
            await store_a.save_relay("alpha", SETTINGS)
            await gatherResults(
                [
                    store_a.outbox_append([("alpha", b"x")] * 5, 1.0),
                    store_b.delete_relay("alpha"),
                    store_a.outbox_append([("alpha", b"y")] * 5, 1.0),
                ]
            )
            self.assertEqual(await store_b.outbox_count("alpha"), 0)

    @deferred_test
    async def test_save_session_racing_disable(self) -> None:
        """
        A session saved while another node disables the bot never survives
        the disable.
        """
        store_a = await self.open_store()
        store_b = await self.open_store()
        for _ in range(20):
            await store_a.save_relay("alpha", SETTINGS)
            await gatherResults(
                [
                    store_a.save_session("alpha", session(0)),
                    store_b.disable_relay("alpha", "why"),
                    store_a.save_session("alpha", session(1)),
                ]
            )
            self.assertEqual(await store_b.load_sessions("alpha"), {})

    @deferred_test
    async def test_identify_racing_nodes(self) -> None:
        """
        Many nodes asking for one new slot at the same moment, round after
        round, are granted it once per round between them; finishing
        without sending lets exactly one more in.
        """
        stores = [await self.open_store() for _ in range(4)]

        def ask(key: str) -> Deferred[list[float]]:
            return gatherResults(
                [
                    store.acquire_identify(key, 0, f"node-{n}-{i}", LONG)
                    for n, store in enumerate(stores)
                    for i in range(4)
                ]
            )

        for round in range(20):
            key = f"hash-{round}"
            waits = await ask(key)
            self.assertEqual(waits.count(0.0), 1, waits)
            holder = f"node-{waits.index(0.0) // 4}-{waits.index(0.0) % 4}"
            await stores[0].finish_identify(key, 0, holder, False, LONG)
            self.assertEqual((await ask(key)).count(0.0), 1)

    @deferred_test
    async def test_publishes_of_one_node_racing(self) -> None:
        """
        Publishes of one node at the same moment (say from a node's two
        connections) never fail and never mix: what loads is exactly one
        of them.
        """
        stores = [await self.open_store() for _ in range(3)]
        await stores[0].heartbeat_node("node-a", LONG)
        sets = [{f"bot{n}-{i}": {"n": n} for i in range(5)} for n in range(6)]
        for _ in range(10):
            await gatherResults(
                [stores[n % 3].publish_statuses("node-a", statuses) for n, statuses in enumerate(sets)]
            )
            loaded = await stores[0].load_statuses()
            self.assertIn({alias: status for alias, (_, status) in loaded.items()}, sets)

    @deferred_test
    async def test_stale_statuses_dropped(self) -> None:
        """
        A publish drops the statuses of nodes that have not been live for a
        day; those of live nodes stay, however old.
        """
        store = await self.open_store()
        await store.heartbeat_node("lasting", LONG)
        await store.publish_statuses("killed", {"alpha": {}})
        await store.publish_statuses("lasting", {"beta": {}})
        admin = psycopg.connect(self.url, autocommit=True)
        self.addCleanup(admin.close)
        admin.execute("UPDATE statuses SET published_at = now() - interval '25 hours'")
        await store.publish_statuses("other", {"gamma": {}})
        rows = admin.execute("SELECT node_id FROM statuses ORDER BY node_id").fetchall()
        self.assertEqual(rows, [("lasting",), ("other",)])
