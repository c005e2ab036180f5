"""
Tests for :mod:`dccrelay.store`: one mixin that pins the :class:`IRelayStore`
contract for every implementation, and the SQLite store's own duties (file
modes, WAL, migrations, threads).

These use the real reactor: the stores run their queries on thread pools.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from functools import wraps
from typing import TYPE_CHECKING, Any, Callable, Coroutine, TypeVar

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from dccrelay.store import (
    IRelayStore,
    OutboxCheckpoint,
    OutboxEntry,
    SessionState,
    StoredRelay,
    Trimmed,
)
from dccrelay.store.errors import SchemaTooNew, StoreClosed
from dccrelay.store.sqlite import MEMORY, MIGRATIONS, SQLiteStore

_Self = TypeVar("_Self")

# The mixin needs TestCase's methods, but trial must not collect it alone.
if TYPE_CHECKING:
    _Base = TestCase
else:
    _Base = object

SETTINGS = {
    "token_ref": "bot-1",
    "dst": "https://bot.example/wake",
    "criteria": {"all": [{"event": "MESSAGE_CREATE"}], "limit": 3.5},
    "intents": 513,
    "name": "Ünïcode ✓",
    "quiet": None,
    "flags": [True, False],
}


def deferred_test(
    test: Callable[[_Self], Coroutine[Any, Any, None]]
) -> Callable[[_Self], Deferred[None]]:
    """
    Let trial run an ``async def`` test.
    """

    @wraps(test)
    def run(self: _Self) -> Deferred[None]:
        return ensureDeferred(test(self))

    return run


def session(shard_id: int = 0, seq: int | None = 42) -> SessionState:
    """
    A session state for shard ``shard_id`` of two.
    """
    return SessionState(
        shard_id=shard_id,
        shard_count=2,
        session_id=f"session-{shard_id}",
        seq=seq,
        resume_url="wss://gateway-resume.example/",
    )


class IRelayStoreTestsMixin(_Base):
    """
    The :class:`IRelayStore` contract, for any implementation.
    """

    def make_store(self) -> IRelayStore:
        """
        :return: a new, unopened store over this test's database.  Every call
            in one test reaches the same database; each test starts with an
            empty one.
        """
        raise NotImplementedError

    async def open_store(self) -> IRelayStore:
        """
        :return: a store from :meth:`make_store`, opened, closed after the
            test.
        """
        store = self.make_store()
        self.addCleanup(store.close)
        await store.open()
        return store

    @deferred_test
    async def test_provides_interface(self) -> None:
        """
        The store provides :class:`IRelayStore` and describes itself.
        """
        store = await self.open_store()
        self.assertTrue(verifyObject(IRelayStore, store))
        self.assertIsInstance(store.description, str)

    @deferred_test
    async def test_empty(self) -> None:
        """
        A new database has no relays and no sessions.
        """
        store = await self.open_store()
        self.assertEqual(await store.load_relays(), [])
        self.assertEqual(await store.load_sessions("nobody"), {})

    @deferred_test
    async def test_relay_round_trip(self) -> None:
        """
        A saved relay loads back enabled, with no reason and equal settings.
        """
        store = await self.open_store()
        await store.save_relay("alpha", SETTINGS)
        self.assertEqual(
            await store.load_relays(), [StoredRelay("alpha", SETTINGS, True, None)]
        )

    @deferred_test
    async def test_sorted_by_alias(self) -> None:
        """
        Relays load sorted by alias in code point order.
        """
        store = await self.open_store()
        for alias in ["b", "a", "B", "ä"]:
            await store.save_relay(alias, {"n": alias})
        relays = await store.load_relays()
        self.assertEqual([relay.alias for relay in relays], ["B", "a", "b", "ä"])

    @deferred_test
    async def test_save_replaces_settings(self) -> None:
        """
        Saving an existing alias replaces its settings instead of adding a
        relay.
        """
        store = await self.open_store()
        await store.save_relay("alpha", {"version": 1})
        await store.save_relay("alpha", {"version": 2})
        self.assertEqual(
            await store.load_relays(),
            [StoredRelay("alpha", {"version": 2}, True, None)],
        )

    @deferred_test
    async def test_save_keeps_sessions(self) -> None:
        """
        Saving new settings for a relay keeps its sessions, so an update does
        not cost a fresh IDENTIFY.
        """
        store = await self.open_store()
        await store.save_relay("alpha", {"version": 1})
        await store.save_session("alpha", session(0))
        await store.save_relay("alpha", {"version": 2})
        self.assertEqual(await store.load_sessions("alpha"), {0: session(0)})

    @deferred_test
    async def test_settings_not_json(self) -> None:
        """
        Settings that are not JSON-compatible fail the Deferred and store
        nothing.
        """
        store = await self.open_store()
        await self.assertFailure(
            store.save_relay("alpha", {"when": object()}), TypeError
        )
        await self.assertFailure(
            store.save_relay("alpha", {"ratio": float("nan")}), ValueError
        )
        self.assertEqual(await store.load_relays(), [])

    @deferred_test
    async def test_disable(self) -> None:
        """
        A disabled relay loads disabled, with its reason.
        """
        store = await self.open_store()
        await store.save_relay("alpha", SETTINGS)
        await store.disable_relay("alpha", "Discord said the token is invalid")
        self.assertEqual(
            await store.load_relays(),
            [
                StoredRelay(
                    "alpha", SETTINGS, False, "Discord said the token is invalid"
                )
            ],
        )

    @deferred_test
    async def test_save_enables_and_keeps_reason(self) -> None:
        """
        Saving a disabled relay enables it again and keeps the last reason it
        was disabled.
        """
        store = await self.open_store()
        await store.save_relay("alpha", {"version": 1})
        await store.disable_relay("alpha", "intents not allowed")
        await store.save_relay("alpha", {"version": 2})
        self.assertEqual(
            await store.load_relays(),
            [StoredRelay("alpha", {"version": 2}, True, "intents not allowed")],
        )

    @deferred_test
    async def test_disable_forgets_sessions(self) -> None:
        """
        Disabling a relay forgets its sessions, and only its own.
        """
        store = await self.open_store()
        for alias in ["alpha", "beta"]:
            await store.save_relay(alias, SETTINGS)
            await store.save_session(alias, session(0))
            await store.save_session(alias, session(1))
        await store.disable_relay("alpha", "fatal close 4004")
        self.assertEqual(await store.load_sessions("alpha"), {})
        self.assertEqual(
            await store.load_sessions("beta"), {0: session(0), 1: session(1)}
        )

    @deferred_test
    async def test_disable_unknown(self) -> None:
        """
        Disabling an unknown alias does nothing.
        """
        store = await self.open_store()
        await store.disable_relay("ghost", "whatever")
        self.assertEqual(await store.load_relays(), [])

    @deferred_test
    async def test_delete(self) -> None:
        """
        Deleting a relay forgets it and says it existed; deleting it again
        says it did not.
        """
        store = await self.open_store()
        await store.save_relay("alpha", SETTINGS)
        await store.save_relay("beta", SETTINGS)
        self.assertIs(await store.delete_relay("alpha"), True)
        self.assertIs(await store.delete_relay("alpha"), False)
        self.assertEqual(
            await store.load_relays(), [StoredRelay("beta", SETTINGS, True, None)]
        )

    @deferred_test
    async def test_delete_cascades_to_sessions(self) -> None:
        """
        Deleting a relay forgets its sessions: a new relay under the same
        alias starts without them.
        """
        store = await self.open_store()
        await store.save_relay("alpha", SETTINGS)
        await store.save_session("alpha", session(0))
        await store.delete_relay("alpha")
        await store.save_relay("alpha", SETTINGS)
        self.assertEqual(await store.load_sessions("alpha"), {})

    @deferred_test
    async def test_session_round_trip(self) -> None:
        """
        Saved sessions load back keyed by shard id, each relay's apart, with
        a missing sequence number kept as ``None``.
        """
        store = await self.open_store()
        await store.save_relay("alpha", SETTINGS)
        await store.save_relay("beta", SETTINGS)
        await store.save_session("alpha", session(1))
        await store.save_session("alpha", session(0, seq=None))
        await store.save_session("beta", session(0, seq=7))
        self.assertEqual(
            await store.load_sessions("alpha"),
            {0: session(0, seq=None), 1: session(1)},
        )
        self.assertEqual(await store.load_sessions("beta"), {0: session(0, seq=7)})

    @deferred_test
    async def test_save_session_replaces(self) -> None:
        """
        Saving a shard's session again replaces it.
        """
        store = await self.open_store()
        await store.save_relay("alpha", SETTINGS)
        await store.save_session("alpha", session(0, seq=1))
        newer = SessionState(0, 4, "other", 99, "wss://elsewhere.example/")
        await store.save_session("alpha", newer)
        self.assertEqual(await store.load_sessions("alpha"), {0: newer})

    @deferred_test
    async def test_save_session_ignored_when_not_enabled(self) -> None:
        """
        A session saved for an unknown or disabled relay is dropped, so a
        shard still winding down cannot undo a disable.
        """
        store = await self.open_store()
        await store.save_session("ghost", session(0))
        await store.save_relay("alpha", SETTINGS)
        await store.disable_relay("alpha", "fatal close 4014")
        await store.save_session("alpha", session(0))
        self.assertEqual(await store.load_sessions("ghost"), {})
        self.assertEqual(await store.load_sessions("alpha"), {})

    @deferred_test
    async def test_forget_session(self) -> None:
        """
        Forgetting a shard's session drops only that shard's; forgetting an
        unknown one does nothing.
        """
        store = await self.open_store()
        await store.save_relay("alpha", SETTINGS)
        await store.save_session("alpha", session(0))
        await store.save_session("alpha", session(1))
        await store.forget_session("alpha", 0)
        await store.forget_session("alpha", 5)
        await store.forget_session("ghost", 0)
        self.assertEqual(await store.load_sessions("alpha"), {1: session(1)})

    @deferred_test
    async def test_reopen_keeps_data(self) -> None:
        """
        A relay restart (close, then a new store over the same database)
        finds the relays and sessions saved before.
        """
        store = await self.open_store()
        await store.save_relay("alpha", SETTINGS)
        await store.save_relay("beta", {"x": 1})
        await store.disable_relay("beta", "why")
        await store.save_session("alpha", session(0))
        await store.close()

        again = await self.open_store()
        self.assertEqual(
            await again.load_relays(),
            [
                StoredRelay("alpha", SETTINGS, True, None),
                StoredRelay("beta", {"x": 1}, False, "why"),
            ],
        )
        self.assertEqual(await again.load_sessions("alpha"), {0: session(0)})

    @deferred_test
    async def test_close_twice(self) -> None:
        """
        Closing twice, even before the first close finished, is harmless.
        """
        store = await self.open_store()
        first = store.close()
        second = store.close()
        await first
        await second
        await store.close()

    @deferred_test
    async def test_closed(self) -> None:
        """
        A closed store fails every call with :class:`StoreClosed`.
        """
        store = await self.open_store()
        await store.close()
        await self.assertFailure(store.load_relays(), StoreClosed)
        await self.assertFailure(store.save_relay("a", {}), StoreClosed)
        await self.assertFailure(store.save_session("a", session()), StoreClosed)
        await self.assertFailure(store.open(), StoreClosed)


    # -- the outbox ------------------------------------------------------------

    async def store_with_bots(self, *aliases: str) -> IRelayStore:
        """
        :return: an opened store with ``aliases`` registered.
        """
        store = await self.open_store()
        for alias in aliases:
            await store.save_relay(alias, {"n": alias})
        return store

    @deferred_test
    async def test_outbox_empty(self) -> None:
        """
        A bot with nothing appended has an empty outbox.
        """
        store = await self.store_with_bots("alpha")
        self.assertEqual(await store.outbox_count("alpha"), 0)
        self.assertEqual(await store.outbox_load("alpha", 0, 10), [])
        self.assertEqual(await store.outbox_ack({"alpha": 5}), {"alpha": 0})
        self.assertEqual(await store.outbox_trim("alpha", 0, 1e12), Trimmed(0, 0))

    @deferred_test
    async def test_outbox_append_load(self) -> None:
        """
        Appended payloads load back byte for byte, oldest first, with their
        ids and creation time; ``after_id`` and ``limit`` page through them.
        """
        store = await self.store_with_bots("alpha")
        payloads = [b'{"s":1}', b'{"t": "X",  "d":"h\xc3\xa9"}', b"\x00\xff not even utf-8"]
        ids = await store.outbox_append([("alpha", p) for p in payloads], 1000.5)
        self.assertEqual(len(ids), 3)
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(len(set(ids)), 3)
        entries = await store.outbox_load("alpha", 0, 10)
        self.assertEqual(entries, [OutboxEntry(i, p, 1000.5) for i, p in zip(ids, payloads)])
        for entry in entries:
            self.assertIs(type(entry.payload), bytes)
        self.assertEqual(await store.outbox_load("alpha", 0, 2), entries[:2])
        self.assertEqual(await store.outbox_load("alpha", ids[0], 10), entries[1:])
        self.assertEqual(await store.outbox_load("alpha", ids[2], 10), [])
        self.assertEqual(await store.outbox_count("alpha"), 3)

    @deferred_test
    async def test_outbox_many_bots_one_call(self) -> None:
        """
        One call appends for several bots; each bot sees its own entries in
        the order given, with increasing ids, and an unknown alias stores
        nothing (``None``) without failing the others.
        """
        store = await self.store_with_bots("alpha", "beta")
        ids = await store.outbox_append(
            [("alpha", b"a1"), ("beta", b"b1"), ("ghost", b"g1"), ("alpha", b"a2"), ("beta", b"b2")],
            5.0,
        )
        self.assertIsNone(ids[2])
        alpha = await store.outbox_load("alpha", 0, 10)
        beta = await store.outbox_load("beta", 0, 10)
        self.assertEqual([(e.id, e.payload) for e in alpha], [(ids[0], b"a1"), (ids[3], b"a2")])
        self.assertEqual([(e.id, e.payload) for e in beta], [(ids[1], b"b1"), (ids[4], b"b2")])
        self.assertLess(alpha[0].id, alpha[1].id)
        self.assertEqual(await store.outbox_count("ghost"), 0)
        self.assertEqual(await store.outbox_append([], 5.0), [])

    @deferred_test
    async def test_outbox_ids_never_reused(self) -> None:
        """
        Ids keep growing after everything was acknowledged, and after the
        bot was deleted and registered again.
        """
        store = await self.store_with_bots("alpha")
        (first,) = await store.outbox_append([("alpha", b"1")], 1.0)
        await store.outbox_ack({"alpha": first})
        (second,) = await store.outbox_append([("alpha", b"2")], 1.0)
        self.assertGreater(second, first)
        await store.delete_relay("alpha")
        await store.save_relay("alpha", {})
        (third,) = await store.outbox_append([("alpha", b"3")], 1.0)
        self.assertGreater(third, second)

    @deferred_test
    async def test_outbox_ack(self) -> None:
        """
        Acknowledging removes a bot's entries up to the id given, for several
        bots in one call, and says how many went.
        """
        store = await self.store_with_bots("alpha", "beta")
        ids = await store.outbox_append(
            [("alpha", b"a1"), ("beta", b"b1"), ("alpha", b"a2"), ("alpha", b"a3")], 1.0
        )
        removed = await store.outbox_ack({"alpha": ids[2], "beta": ids[0]})
        self.assertEqual(removed, {"alpha": 2, "beta": 0})
        self.assertEqual([e.payload for e in await store.outbox_load("alpha", 0, 9)], [b"a3"])
        self.assertEqual([e.payload for e in await store.outbox_load("beta", 0, 9)], [b"b1"])
        self.assertEqual(await store.outbox_ack({"alpha": ids[2]}), {"alpha": 0})

    @deferred_test
    async def test_outbox_trim_count(self) -> None:
        """
        Trimming to a count drops the oldest entries and reports how many
        and up to which id.
        """
        store = await self.store_with_bots("alpha", "beta")
        ids = await store.outbox_append([("alpha", b"%d" % i) for i in range(5)], 1.0)
        await store.outbox_append([("beta", b"b")], 1.0)
        self.assertEqual(await store.outbox_trim("alpha", 2), Trimmed(3, ids[2]))
        self.assertEqual([e.payload for e in await store.outbox_load("alpha", 0, 9)], [b"3", b"4"])
        self.assertEqual(await store.outbox_trim("alpha", 2), Trimmed(0, 0))
        self.assertEqual(await store.outbox_count("beta"), 1)

    @deferred_test
    async def test_outbox_trim_age(self) -> None:
        """
        Trimming by age drops the entries created before the limit, and
        everything older than them even if the clock went backwards in
        between: always a prefix.
        """
        store = await self.store_with_bots("alpha")
        ids = []
        for now in [100.0, 50.0, 200.0, 300.0]:
            ids += await store.outbox_append([("alpha", b"x")], now)
        self.assertEqual(await store.outbox_trim("alpha", 10, 150.0), Trimmed(2, ids[1]))
        self.assertEqual(await store.outbox_trim("alpha", 10, 150.0), Trimmed(0, 0))
        # count and age together: whichever drops more
        self.assertEqual(await store.outbox_trim("alpha", 0, 250.0), Trimmed(2, ids[3]))
        self.assertEqual(await store.outbox_count("alpha"), 0)

    @deferred_test
    async def test_outbox_follows_registration(self) -> None:
        """
        Disabling a bot keeps its outbox; deleting it drops it.
        """
        store = await self.store_with_bots("alpha")
        await store.outbox_append([("alpha", b"1")], 1.0)
        await store.disable_relay("alpha", "why")
        self.assertEqual(await store.outbox_count("alpha"), 1)
        await store.outbox_append([("alpha", b"2")], 1.0)
        self.assertEqual(await store.outbox_count("alpha"), 2)
        await store.delete_relay("alpha")
        self.assertEqual(await store.outbox_count("alpha"), 0)

    @deferred_test
    async def test_outbox_checkpoint(self) -> None:
        """
        A checkpoint raises the stored seq of the same session in the append
        transaction; a lower seq, another session id or an unknown shard
        changes nothing.
        """
        store = await self.store_with_bots("alpha")
        await store.save_session("alpha", session(0, seq=10))
        await store.save_session("alpha", session(1, seq=None))
        await store.outbox_append(
            [("alpha", b"x")],
            1.0,
            [
                OutboxCheckpoint("alpha", 0, "session-0", 12),
                OutboxCheckpoint("alpha", 1, "another-session", 7),
                OutboxCheckpoint("alpha", 3, "session-3", 7),
            ],
        )
        await store.outbox_append([], 1.0, [OutboxCheckpoint("alpha", 0, "session-0", 11)])
        sessions = await store.load_sessions("alpha")
        self.assertEqual(sessions, {0: session(0, seq=12), 1: session(1, seq=None)})
        await store.outbox_append([], 1.0, [OutboxCheckpoint("alpha", 1, "session-1", 3)])
        self.assertEqual((await store.load_sessions("alpha"))[1], session(1, seq=3))

    @deferred_test
    async def test_outbox_reopen(self) -> None:
        """
        The outbox survives a restart, and ids keep growing after it.
        """
        store = await self.store_with_bots("alpha")
        ids = await store.outbox_append([("alpha", b"1"), ("alpha", b"2")], 1.0)
        await store.outbox_ack({"alpha": ids[0]})
        await store.close()
        again = await self.open_store()
        self.assertEqual(await again.outbox_load("alpha", 0, 9), [OutboxEntry(ids[1], b"2", 1.0)])
        (later,) = await again.outbox_append([("alpha", b"3")], 1.0)
        self.assertGreater(later, ids[1])

    @deferred_test
    async def test_outbox_payload_must_be_bytes(self) -> None:
        """
        A payload that is not bytes is refused, and nothing of that call is
        stored.
        """
        store = await self.store_with_bots("alpha")
        with self.assertRaises(TypeError):
            await store.outbox_append([("alpha", b"ok"), ("alpha", "text")], 1.0)  # type: ignore[list-item]
        self.assertEqual(await store.outbox_count("alpha"), 0)

    @deferred_test
    async def test_outbox_closed(self) -> None:
        """
        A closed store fails the outbox calls with :class:`StoreClosed`.
        """
        store = await self.store_with_bots("alpha")
        await store.close()
        await self.assertFailure(store.outbox_append([("alpha", b"1")], 1.0), StoreClosed)
        await self.assertFailure(store.outbox_load("alpha", 0, 1), StoreClosed)
        await self.assertFailure(store.outbox_ack({"alpha": 1}), StoreClosed)
        await self.assertFailure(store.outbox_trim("alpha", 1), StoreClosed)
        await self.assertFailure(store.outbox_count("alpha"), StoreClosed)


class SQLiteStoreTests(IRelayStoreTestsMixin, TestCase):
    """
    :class:`SQLiteStore` keeps the :class:`IRelayStore` contract.
    """

    def setUp(self) -> None:
        self.path = os.path.join(self.mktemp(), "relay.sqlite")

    def make_store(self) -> IRelayStore:
        return SQLiteStore(self.path, reactor)


def read_only(path: str) -> sqlite3.Connection:
    """
    Open the database at ``path`` to inspect it, without ever creating it.
    """
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def file_mode(path: str) -> int:
    """
    :return: the permission bits of ``path``.
    """
    return stat.S_IMODE(os.stat(path).st_mode)


class SQLiteFileTests(TestCase):
    """
    What :class:`SQLiteStore` does with its file.
    """

    def setUp(self) -> None:
        self.directory = self.mktemp()
        self.path = os.path.join(self.directory, "relay.sqlite")

    async def open_store(
        self, now: Callable[[], float] | None = None, path: str | None = None
    ) -> SQLiteStore:
        """
        :return: an opened store over ``path`` (default ``self.path``), closed
            after the test.
        """
        store = SQLiteStore(path or self.path, reactor, now=now)
        self.addCleanup(store.close)
        await store.open()
        return store

    def inspect(self) -> sqlite3.Connection:
        """
        :return: a read-only connection to the database, closed after the test.
        """
        connection = read_only(self.path)
        self.addCleanup(connection.close)
        return connection

    def test_description(self) -> None:
        """
        The description names the file.
        """
        store = SQLiteStore("data/relay.sqlite", reactor)
        self.addCleanup(store.close)
        self.assertEqual(store.description, "SQLite database at data/relay.sqlite")

    @deferred_test
    async def test_private_files(self) -> None:
        """
        Even under a permissive umask, a missing directory is created 0700 and
        the database and its WAL files 0600.
        """
        old_umask = os.umask(0)
        self.addCleanup(os.umask, old_umask)
        store = await self.open_store()
        await store.save_relay("alpha", SETTINGS)
        self.assertEqual(file_mode(self.directory), 0o700)
        for suffix in ["", "-wal", "-shm"]:
            self.assertEqual(file_mode(self.path + suffix), 0o600, suffix)

    @deferred_test
    async def test_tightens_existing_file(self) -> None:
        """
        An existing database file readable by others, in an existing
        directory, is made 0600; the directory's mode is left alone.
        """
        os.mkdir(self.directory, 0o755)
        os.chmod(self.directory, 0o755)
        with open(self.path, "wb"):
            pass
        os.chmod(self.path, 0o644)
        await self.open_store()
        self.assertEqual(file_mode(self.path), 0o600)
        self.assertEqual(file_mode(self.directory), 0o755)

    @deferred_test
    async def test_write_ahead_log(self) -> None:
        """
        The database uses write-ahead logging.
        """
        await self.open_store()
        (mode,) = self.inspect().execute("PRAGMA journal_mode").fetchone()
        self.assertEqual(mode, "wal")

    @deferred_test
    async def test_migrates_empty_file(self) -> None:
        """
        An empty file is migrated to the latest schema version, with every
        table.
        """
        os.mkdir(self.directory)
        with open(self.path, "wb"):
            pass
        await self.open_store()
        connection = self.inspect()
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        tables = connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ).fetchall()
        self.assertEqual(version, len(MIGRATIONS))
        self.assertEqual(
            tables, [("outbox",), ("relays",), ("sessions",), ("sqlite_sequence",)]
        )

    @deferred_test
    async def test_migrates_version_1(self) -> None:
        """
        A database of schema version 1 (before the outbox) keeps its relays
        and sessions and gains an empty outbox.
        """
        os.mkdir(self.directory)
        with sqlite3.connect(self.path) as connection:
            for statement in MIGRATIONS[0]:
                connection.execute(statement)
            connection.execute(
                "INSERT INTO relays VALUES ('alpha', '{}', 1, NULL, 1.0, 1.0)"
            )
            connection.execute("PRAGMA user_version = 1")
        connection.close()
        store = await self.open_store()
        self.assertEqual(await store.load_relays(), [StoredRelay("alpha", {}, True, None)])
        self.assertEqual(await store.outbox_count("alpha"), 0)
        self.assertIsNotNone((await store.outbox_append([("alpha", b"x")], 1.0))[0])
        (version,) = self.inspect().execute("PRAGMA user_version").fetchone()
        self.assertEqual(version, 2)

    @deferred_test
    async def test_reopen_does_not_migrate_again(self) -> None:
        """
        Opening a database at the latest version leaves its schema alone.
        """
        store = await self.open_store()
        await store.save_relay("alpha", SETTINGS)
        await store.close()
        await self.open_store()
        (version,) = self.inspect().execute("PRAGMA user_version").fetchone()
        self.assertEqual(version, len(MIGRATIONS))

    @deferred_test
    async def test_refuses_newer_schema(self) -> None:
        """
        A database migrated by a newer dccrelay fails to open with an error
        naming the file and both versions, and is left as it was.
        """
        os.mkdir(self.directory)
        with sqlite3.connect(self.path) as connection:
            connection.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
        connection.close()
        with self.assertRaises(SchemaTooNew) as caught:
            await self.open_store()
        error = caught.exception
        self.assertEqual(error.found, len(MIGRATIONS) + 1)
        self.assertEqual(error.known, len(MIGRATIONS))
        self.assertIn(f"SQLite database at {self.path}", str(error))
        self.assertIn(f"version {len(MIGRATIONS) + 1}", str(error))
        connection = self.inspect()
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        tables = connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        ).fetchall()
        self.assertEqual((version, tables), (len(MIGRATIONS) + 1, []))

    @deferred_test
    async def test_timestamps(self) -> None:
        """
        A relay's creation time is kept when it is saved again or disabled,
        and its update time follows the injected clock.
        """
        times = iter([100.0, 200.0, 300.0])
        store = await self.open_store(now=lambda: next(times))
        await store.save_relay("alpha", {"version": 1})
        await store.save_relay("alpha", {"version": 2})
        stamps = self.inspect().execute(
            "SELECT created_at, updated_at FROM relays"
        ).fetchall()
        self.assertEqual(stamps, [(100.0, 200.0)])
        await store.disable_relay("alpha", "why")
        stamps = self.inspect().execute(
            "SELECT created_at, updated_at FROM relays"
        ).fetchall()
        self.assertEqual(stamps, [(100.0, 300.0)])

    @deferred_test
    async def test_queries_off_reactor_thread(self) -> None:
        """
        Every statement the store runs runs off the reactor thread.
        """
        store = await self.open_store()
        threads: list[int] = []

        def trace(connection: Any) -> None:
            connection.set_trace_callback(
                lambda statement: threads.append(threading.get_ident())
            )

        # The only peek inside: SQLite reports every statement it runs to the
        # trace callback, on the thread that runs it.
        await store._pool.runWithConnection(trace)
        await store.save_relay("alpha", SETTINGS)
        await store.load_relays()
        await store.save_session("alpha", session(0))
        await store.load_sessions("alpha")
        await store.forget_session("alpha", 0)
        await store.disable_relay("alpha", "why")
        await store.delete_relay("alpha")
        self.assertGreaterEqual(len(threads), 7)
        self.assertNotIn(threading.get_ident(), threads)

    @deferred_test
    async def test_path_with_uri_characters(self) -> None:
        """
        A path with characters that mean something in a URI names that very
        file.
        """
        path = os.path.join(self.directory, "odd ?#% dir", "relay?.sqlite")
        store = await self.open_store(path=path)
        await store.save_relay("alpha", SETTINGS)
        self.assertEqual(file_mode(path), 0o600)
        self.assertEqual(
            sorted(os.listdir(os.path.dirname(path))),
            ["relay?.sqlite", "relay?.sqlite-shm", "relay?.sqlite-wal"],
        )

    @deferred_test
    async def test_memory(self) -> None:
        """
        ``:memory:`` gives a working store with no file.
        """
        store = await self.open_store(path=MEMORY)
        await store.save_relay("alpha", SETTINGS)
        await store.save_session("alpha", session(0))
        self.assertEqual(
            await store.load_relays(), [StoredRelay("alpha", SETTINGS, True, None)]
        )
        self.assertEqual(await store.load_sessions("alpha"), {0: session(0)})
        self.assertFalse(os.path.exists(MEMORY))


class MemoryRelayStoreTests(IRelayStoreTestsMixin, TestCase):
    """
    The in-memory store that unit tests use keeps the same contract.
    """

    def setUp(self) -> None:
        from dccrelay.testing.memory_store import MemoryDatabase

        self.database = MemoryDatabase()

    def make_store(self) -> IRelayStore:
        from dccrelay.testing.memory_store import MemoryRelayStore

        return MemoryRelayStore(self.database)
