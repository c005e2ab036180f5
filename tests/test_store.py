"""
Tests for :mod:`dccrelay.store`: a mixin per store role that pins its
contract (registrations, sessions, outbox; the cluster role) for every
implementation of the role, and the SQLite store's own duties (file modes,
WAL, migrations, threads).

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
from twisted.internet.defer import Deferred, ensureDeferred, gatherResults
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from dccrelay.store import (
    IDENTIFY_MIN_WAIT,
    GuildSnapshotUpdate,
    IClusterStore,
    IGuildSnapshots,
    IOutbox,
    IRegistrations,
    IRelayStore,
    ISessions,
    OutboxCheckpoint,
    OutboxEntry,
    SessionState,
    StoredRelay,
    Trimmed,
)
from dccrelay.store import sqlite as sqlite_module
from dccrelay.store.errors import SchemaTooNew, StoreClosed, StoreDamaged
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


#: A lease that lasts the whole test, and one that a test outlives.
LONG = 60.0
SHORT = 0.2


async def _claim(
    store: IRelayStore, node_id: str, ttl: float, limit: int
) -> tuple[str, list[tuple[str, int]]]:
    """
    :return: ``node_id`` and what it claimed.
    """
    return node_id, await store.claim_leases(node_id, ttl, limit)


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


class StoreTestsBase(_Base):
    """
    What every store role's contract tests need: a store over this test's
    database, and time.
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


    async def store_with_bots(self, *aliases: str) -> IRelayStore:
        """
        :return: an opened store with ``aliases`` registered.
        """
        store = await self.open_store()
        for alias in aliases:
            await store.save_relay(alias, {"n": alias})
        return store

    async def pass_time(self, seconds: float) -> None:
        """
        Let ``seconds`` pass on the store's clock (for leases, the
        database's): real time, unless the store has a clock of its own.
        """
        await deferLater(reactor, seconds, lambda: None)

    async def eventually(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """
        Wait (in real time) until ``condition()`` holds; fail after
        ``timeout`` seconds.
        """
        for _ in range(int(timeout / 0.01)):
            if condition():
                return
            await deferLater(reactor, 0.01, lambda: None)
        self.fail(f"still not true after {timeout} s")


class RegistrationsTestsMixin(StoreTestsBase):
    """
    The :class:`IRegistrations` contract, for any implementation.
    """

    @deferred_test
    async def test_provides_registrations(self) -> None:
        """
        The store provides :class:`IRegistrations` and describes itself.
        """
        store = await self.open_store()
        self.assertTrue(verifyObject(IRegistrations, store))
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
    async def test_create_if_absent(self) -> None:
        """
        Creating a free alias registers it, enabled; creating it again
        changes nothing (not its settings, sessions or disabled state) and
        says it was taken.
        """
        store = await self.open_store()
        self.assertIs(await store.create_relay("alpha", {"version": 1}), True)
        self.assertEqual(
            await store.load_relays(), [StoredRelay("alpha", {"version": 1}, True, None)]
        )
        await store.save_session("alpha", session(0))
        await store.disable_relay("alpha", "why")
        self.assertIs(await store.create_relay("alpha", {"version": 2}), False)
        self.assertEqual(
            await store.load_relays(), [StoredRelay("alpha", {"version": 1}, False, "why")]
        )
        await store.delete_relay("alpha")
        self.assertIs(await store.create_relay("alpha", {"version": 3}), True)
        self.assertEqual(
            await store.load_relays(), [StoredRelay("alpha", {"version": 3}, True, None)]
        )

    @deferred_test
    async def test_create_not_json(self) -> None:
        """
        Settings that are not JSON-compatible fail the creation and store
        nothing.
        """
        store = await self.open_store()
        await self.assertFailure(store.create_relay("alpha", {"x": object()}), TypeError)
        self.assertEqual(await store.load_relays(), [])

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


class SessionsTestsMixin(StoreTestsBase):
    """
    The :class:`ISessions` contract, for any implementation.
    """

    @deferred_test
    async def test_provides_sessions(self) -> None:
        """
        The store provides :class:`ISessions`.
        """
        store = await self.open_store()
        self.assertTrue(verifyObject(ISessions, store))

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
    async def test_save_sessions(self) -> None:
        """
        Many shards' sessions are saved in one call, each as save_session
        would: replacing earlier ones, and dropped for an unknown or disabled
        relay without failing the others.
        """
        store = await self.open_store()
        for alias in ("alpha", "beta", "gamma"):
            await store.save_relay(alias, SETTINGS)
        await store.disable_relay("gamma", "fatal close 4014")
        await store.save_session("alpha", session(0, seq=1))
        await store.save_sessions(
            [
                ("alpha", session(0, seq=5)),
                ("alpha", session(1, seq=6)),
                ("beta", session(0, seq=None)),
                ("gamma", session(0)),
                ("ghost", session(0)),
            ]
        )
        self.assertEqual(
            await store.load_sessions("alpha"), {0: session(0, seq=5), 1: session(1, seq=6)}
        )
        self.assertEqual(await store.load_sessions("beta"), {0: session(0, seq=None)})
        self.assertEqual(await store.load_sessions("gamma"), {})
        self.assertEqual(await store.load_sessions("ghost"), {})
        await store.save_sessions([])

    @deferred_test
    async def test_load_all_sessions(self) -> None:
        """
        Every relay's sessions come in one call, keyed by alias and shard;
        relays without any are left out.
        """
        store = await self.open_store()
        self.assertEqual(await store.load_all_sessions(), {})
        for alias in ("alpha", "beta", "gamma"):
            await store.save_relay(alias, SETTINGS)
        await store.save_sessions(
            [("alpha", session(1)), ("alpha", session(0, seq=None)), ("beta", session(0, seq=7))]
        )
        self.assertEqual(
            await store.load_all_sessions(),
            {
                "alpha": {0: session(0, seq=None), 1: session(1)},
                "beta": {0: session(0, seq=7)},
            },
        )

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


class OutboxTestsMixin(StoreTestsBase):
    """
    The :class:`IOutbox` contract, for any implementation.
    """

    @deferred_test
    async def test_provides_outbox(self) -> None:
        """
        The store provides :class:`IOutbox`.
        """
        store = await self.open_store()
        self.assertTrue(verifyObject(IOutbox, store))


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
    async def test_outbox_batch_recorded(self) -> None:
        """
        ``outbox_ack`` records a batch about to be sent on its first entry
        (``batch_last``), after removing what it acknowledges, in the same
        call; it survives a reopen, and goes with its entry.
        """
        store = await self.store_with_bots("alpha", "beta")
        ids = await store.outbox_append([("alpha", b"%d" % i) for i in range(4)], 1.0)
        await store.outbox_append([("beta", b"b")], 1.0)
        removed = await store.outbox_ack({"alpha": ids[0]}, {"alpha": (ids[1], ids[2])})
        self.assertEqual(removed, {"alpha": 1})
        entries = await store.outbox_load("alpha", 0, 10)
        self.assertEqual([e.batch_last for e in entries], [ids[2], None, None])
        self.assertIsNone((await store.outbox_load("beta", 0, 10))[0].batch_last)
        await store.close()
        reopened = await self.open_store()
        self.assertEqual((await reopened.outbox_load("alpha", 0, 1))[0].batch_last, ids[2])
        await reopened.outbox_ack({"alpha": ids[1]})
        self.assertEqual(
            [e.batch_last for e in await reopened.outbox_load("alpha", 0, 10)], [None, None]
        )

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


class GuildSnapshotsTestsMixin(StoreTestsBase):
    """
    The :class:`IGuildSnapshots` contract, for any implementation.
    """

    @deferred_test
    async def test_provides_guild_snapshots(self) -> None:
        """
        The store provides :class:`IGuildSnapshots`; a bot has no parts
        until some are saved.
        """
        store = await self.store_with_bots("alpha")
        self.assertTrue(verifyObject(IGuildSnapshots, store))
        self.assertEqual(await store.load_guild_snapshot("alpha"), {})
        self.assertEqual(await store.load_guild_snapshot("nobody"), {})

    @deferred_test
    async def test_guild_snapshot_round_trip(self) -> None:
        """
        Saved parts load back byte for byte, whatever the bytes.
        """
        store = await self.store_with_bots("alpha")
        parts = (("user", b'{"id":"1"}'), ("guild:2", b"\x00\xff\x80 not JSON"))
        await store.save_guild_snapshots([GuildSnapshotUpdate("alpha", parts)])
        self.assertEqual(await store.load_guild_snapshot("alpha"), dict(parts))

    @deferred_test
    async def test_guild_snapshot_changes(self) -> None:
        """
        An update replaces the parts it names, removes those it drops, and
        leaves the others; ``replace`` starts the bot's snapshot over.
        """
        store = await self.store_with_bots("alpha")
        await store.save_guild_snapshots(
            [GuildSnapshotUpdate("alpha", (("a", b"1"), ("b", b"2"), ("c", b"3")))]
        )
        await store.save_guild_snapshots(
            [GuildSnapshotUpdate("alpha", (("a", b"one"),), dropped=("b", "missing"))]
        )
        self.assertEqual(await store.load_guild_snapshot("alpha"), {"a": b"one", "c": b"3"})
        await store.save_guild_snapshots(
            [GuildSnapshotUpdate("alpha", (("d", b"4"),), replace=True)]
        )
        self.assertEqual(await store.load_guild_snapshot("alpha"), {"d": b"4"})
        await store.save_guild_snapshots([GuildSnapshotUpdate("alpha", replace=True)])
        self.assertEqual(await store.load_guild_snapshot("alpha"), {})

    @deferred_test
    async def test_guild_snapshots_many_bots_in_order(self) -> None:
        """
        One call carries many bots' updates, several per bot applied in
        order, and hundreds of parts; an unregistered bot's update is
        skipped without failing the others.
        """
        store = await self.store_with_bots("alpha", "beta")
        many = tuple((f"guild:{n}", b"%d" % n) for n in range(450))
        await store.save_guild_snapshots(
            [
                GuildSnapshotUpdate("alpha", (("x", b"1"),)),
                GuildSnapshotUpdate("ghost", (("x", b"boo"),)),
                GuildSnapshotUpdate("beta", many),
                GuildSnapshotUpdate("alpha", dropped=("x",)),
                GuildSnapshotUpdate("alpha", (("y", b"2"),)),
                GuildSnapshotUpdate("beta", (("guild:7", b"seven"),), dropped=("guild:8",)),
            ]
        )
        self.assertEqual(await store.load_guild_snapshot("alpha"), {"y": b"2"})
        self.assertEqual(await store.load_guild_snapshot("ghost"), {})
        expected = {**dict(many), "guild:7": b"seven"}
        del expected["guild:8"]
        self.assertEqual(await store.load_guild_snapshot("beta"), expected)

    @deferred_test
    async def test_guild_snapshot_follows_registration(self) -> None:
        """
        Disabling a bot keeps its snapshot; deleting it removes the
        snapshot, so the alias registered again starts with none.
        """
        store = await self.store_with_bots("alpha")
        await store.save_guild_snapshots([GuildSnapshotUpdate("alpha", (("user", b"u"),))])
        await store.disable_relay("alpha", "why")
        self.assertEqual(await store.load_guild_snapshot("alpha"), {"user": b"u"})
        await store.delete_relay("alpha")
        await store.save_relay("alpha", {"n": "again"})
        self.assertEqual(await store.load_guild_snapshot("alpha"), {})

    @deferred_test
    async def test_guild_snapshot_reopen(self) -> None:
        """
        A relay restart (a new store over the same database) finds the
        snapshot saved before.
        """
        store = await self.store_with_bots("alpha")
        await store.save_guild_snapshots([GuildSnapshotUpdate("alpha", (("user", b"u"),))])
        await store.close()
        again = await self.open_store()
        self.assertEqual(await again.load_guild_snapshot("alpha"), {"user": b"u"})

    @deferred_test
    async def test_guild_snapshot_wrong_types(self) -> None:
        """
        A document that is not bytes, or something that is not an update,
        fails the call with :class:`TypeError` naming it, and nothing of
        the call is stored.
        """
        store = await self.store_with_bots("alpha")
        text = GuildSnapshotUpdate("alpha", (("user", "text"),))  # type: ignore[arg-type]
        good = GuildSnapshotUpdate("alpha", (("user", b"u"),))
        failure = await self.assertFailure(store.save_guild_snapshots([good, text]), TypeError)
        self.assertIn("bytes", str(failure))
        await self.assertFailure(
            store.save_guild_snapshots([("alpha", b"x")]), TypeError  # type: ignore[list-item]
        )
        self.assertEqual(await store.load_guild_snapshot("alpha"), {})

    @deferred_test
    async def test_guild_snapshots_closed(self) -> None:
        """
        A closed store fails the guild snapshot calls with :class:`StoreClosed`.
        """
        store = await self.store_with_bots("alpha")
        await store.close()
        await self.assertFailure(store.load_guild_snapshot("alpha"), StoreClosed)
        await self.assertFailure(
            store.save_guild_snapshots([GuildSnapshotUpdate("alpha")]), StoreClosed
        )


class IRelayStoreTestsMixin(
    RegistrationsTestsMixin, SessionsTestsMixin, OutboxTestsMixin, GuildSnapshotsTestsMixin
):
    """
    The :class:`IRelayStore` contract: every role a node alone needs, and
    opening and closing.
    """

    @deferred_test
    async def test_provides_interface(self) -> None:
        """
        The store provides :class:`IRelayStore` and describes itself.
        """
        store = await self.open_store()
        self.assertTrue(verifyObject(IRelayStore, store))
        self.assertIsInstance(store.description, str)
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
        await self.assertFailure(store.create_relay("a", {}), StoreClosed)
        await self.assertFailure(store.save_session("a", session()), StoreClosed)
        await self.assertFailure(store.open(), StoreClosed)


class ClusterStoreTestsMixin(StoreTestsBase):
    """
    The :class:`IClusterStore` contract, for any implementation (whose
    registrations it follows: :meth:`make_store` gives a store of both).
    """

    @deferred_test
    async def test_provides_cluster(self) -> None:
        """
        The store provides :class:`IClusterStore`.
        """
        store = await self.open_store()
        self.assertTrue(verifyObject(IClusterStore, store))


    @deferred_test
    async def test_outbox_append_fenced(self) -> None:
        """
        An entry (and checkpoint) fenced with a lease epoch is stored only
        while that epoch is the bot's lease's: once the lease is claimed
        again (another epoch), the old owner's append stores nothing for
        the bot, and the others' entries are not held up.
        """
        store = await self.store_with_bots("alpha", "beta")
        await store.save_session("alpha", session(0, seq=1))
        claimed = dict(await store.claim_leases("node-a", LONG, 10))
        old = claimed["alpha"]
        ids = await store.outbox_append(
            [("alpha", b"a1"), ("beta", b"b1")], 1.0,
            [OutboxCheckpoint("alpha", 0, "session-0", 5, old)], [old, None],
        )
        self.assertNotIn(None, ids)
        self.assertEqual((await store.load_sessions("alpha"))[0].seq, 5)
        await store.release_leases("node-a", ["alpha"])
        new = dict(await store.claim_leases("node-b", LONG, 10))["alpha"]
        self.assertNotEqual(new, old)
        ids = await store.outbox_append(
            [("alpha", b"a2"), ("beta", b"b2"), ("alpha", b"a3")], 2.0,
            [OutboxCheckpoint("alpha", 0, "session-0", 9, old)], [old, None, new],
        )
        self.assertIsNone(ids[0])
        self.assertIsNotNone(ids[1])
        self.assertIsNotNone(ids[2])
        self.assertEqual((await store.load_sessions("alpha"))[0].seq, 5)
        self.assertEqual(
            [e.payload for e in await store.outbox_load("alpha", 0, 10)], [b"a1", b"a3"]
        )

    @deferred_test
    async def test_leases_of_new_bots(self) -> None:
        """
        Every registered bot, enabled or not, has a lease for a node to
        claim; once claimed, another node finds nothing to claim.
        """
        store = await self.store_with_bots("beta", "alpha")
        await store.disable_relay("beta", "why")
        self.assertEqual(await store.lease_owners(), {})
        claimed = await store.claim_leases("node-a", LONG, 10)
        self.assertEqual([alias for alias, _ in claimed], ["alpha", "beta"])
        self.assertEqual(await store.lease_owners(), {"alpha": "node-a", "beta": "node-a"})
        other = await self.open_store()
        self.assertEqual(await other.claim_leases("node-b", LONG, 10), [])
        self.assertEqual(await other.claim_leases("node-a", LONG, 10), [])

    @deferred_test
    async def test_created_bot_has_lease(self) -> None:
        """
        A bot made by ``create_relay`` has its lease too; creating it again
        leaves the lease with its owner.
        """
        store = await self.open_store()
        self.assertIs(await store.create_relay("alpha", {}), True)
        self.assertEqual([a for a, _ in await store.claim_leases("node-a", LONG, 10)], ["alpha"])
        self.assertIs(await store.create_relay("alpha", {"n": 2}), False)
        self.assertEqual(await store.lease_owners(), {"alpha": "node-a"})

    @deferred_test
    async def test_claim_limit(self) -> None:
        """
        A claim takes at most ``limit`` bots, and the next claims take the
        others: the nodes' shares never overlap.
        """
        aliases = [f"bot{i}" for i in range(5)]
        store_a = await self.store_with_bots(*aliases)
        store_b = await self.open_store()
        first = await store_a.claim_leases("node-a", LONG, 2)
        second = await store_b.claim_leases("node-b", LONG, 2)
        third = await store_a.claim_leases("node-a", LONG, 10)
        self.assertEqual([len(first), len(second), len(third)], [2, 2, 1])
        self.assertEqual(await store_a.claim_leases("node-a", LONG, 0), [])
        taken = [alias for alias, _ in first + second + third]
        self.assertEqual(sorted(taken), aliases)
        self.assertEqual(
            await store_b.lease_owners(),
            {alias: "node-b" if (alias, epoch) in second else "node-a" for alias, epoch in first + second + third},
        )

    @deferred_test
    async def test_concurrent_claims_never_overlap(self) -> None:
        """
        Two nodes claiming at the same time, round after round, never take
        the same bot, and between them take every bot.
        """
        aliases = [f"bot{i:02d}" for i in range(30)]
        store_a = await self.store_with_bots(*aliases)
        store_b = await self.open_store()
        taken: dict[str, list[str]] = {"node-a": [], "node-b": []}
        for _ in range(10):
            results = await gatherResults(
                [
                    Deferred.fromCoroutine(_claim(store, node, LONG, 4))
                    for store, node in [(store_a, "node-a"), (store_b, "node-b")]
                    for _ in range(2)
                ]
            )
            for node, claimed in results:
                taken[node] += [alias for alias, _ in claimed]
        everything = taken["node-a"] + taken["node-b"]
        self.assertEqual(sorted(everything), aliases)
        owners = await store_a.lease_owners()
        self.assertEqual(owners, {alias: node for node, held in taken.items() for alias in held})

    @deferred_test
    async def test_takeover_after_expiry(self) -> None:
        """
        When a node's lease expires, another node may claim the bot, with a
        higher epoch; the old owner can then neither renew nor release it.
        """
        store_a = await self.store_with_bots("alpha", "beta")
        store_b = await self.open_store()
        old = dict(await store_a.claim_leases("node-a", SHORT, 10))
        await self.pass_time(SHORT * 2)
        self.assertEqual(await store_a.lease_owners(), {})
        new = dict(await store_b.claim_leases("node-b", LONG, 10))
        self.assertEqual(sorted(new), ["alpha", "beta"])
        for alias in new:
            self.assertGreater(new[alias], old[alias])
        self.assertEqual(await store_a.renew_leases("node-a", LONG), [])
        self.assertEqual(await store_a.release_leases("node-a", ["alpha"]), [])
        self.assertEqual(await store_a.lease_owners(), {"alpha": "node-b", "beta": "node-b"})
        self.assertEqual(await store_b.renew_leases("node-b", LONG), ["alpha", "beta"])

    @deferred_test
    async def test_renew_after_expiry_fails(self) -> None:
        """
        A node cannot renew a lease that has expired, even if nobody took
        it: it must claim it again, and gets a new epoch.
        """
        store = await self.store_with_bots("alpha")
        ((_, first),) = await store.claim_leases("node-a", SHORT, 10)
        await self.pass_time(SHORT * 2)
        self.assertEqual(await store.renew_leases("node-a", LONG), [])
        self.assertEqual(await store.lease_owners(), {})
        ((_, second),) = await store.claim_leases("node-a", LONG, 10)
        self.assertGreater(second, first)

    @deferred_test
    async def test_renew_keeps_leases(self) -> None:
        """
        Renewing before expiry extends every lease the node holds, and only
        its own; the renewed leases outlive their first ttl.
        """
        store_a = await self.store_with_bots("alpha", "beta", "gamma")
        store_b = await self.open_store()
        await store_a.claim_leases("node-a", SHORT, 2)
        await store_b.claim_leases("node-b", LONG, 10)
        self.assertEqual(await store_a.renew_leases("node-a", LONG), ["alpha", "beta"])
        await self.pass_time(SHORT * 2)
        self.assertEqual(await store_b.claim_leases("node-b", LONG, 10), [])
        self.assertEqual(await store_a.renew_leases("node-a", LONG), ["alpha", "beta"])
        self.assertEqual(await store_b.renew_leases("node-b", LONG), ["gamma"])

    @deferred_test
    async def test_release(self) -> None:
        """
        A node releases only leases it holds; another node may claim them at
        once, with a higher epoch.
        """
        store_a = await self.store_with_bots("alpha", "beta")
        store_b = await self.open_store()
        old = dict(await store_a.claim_leases("node-a", LONG, 10))
        self.assertEqual(await store_b.release_leases("node-b", ["alpha"]), [])
        self.assertEqual(
            await store_a.release_leases("node-a", ["alpha", "ghost", "alpha"]), ["alpha"]
        )
        self.assertEqual(await store_a.lease_owners(), {"beta": "node-a"})
        ((alias, epoch),) = await store_b.claim_leases("node-b", LONG, 10)
        self.assertEqual(alias, "alpha")
        self.assertGreater(epoch, old["alpha"])
        self.assertEqual(await store_a.renew_leases("node-a", LONG), ["beta"])
        self.assertEqual(await store_a.release_leases("node-a", []), [])

    @deferred_test
    async def test_leases_follow_registration(self) -> None:
        """
        Saving or disabling a bot keeps its lease; deleting it drops the
        lease, and the bot registered again starts unowned, with epochs
        above any given before.
        """
        store = await self.store_with_bots("alpha")
        ((_, first),) = await store.claim_leases("node-a", LONG, 10)
        await store.save_relay("alpha", {"version": 2})
        await store.disable_relay("alpha", "why")
        self.assertEqual(await store.renew_leases("node-a", LONG), ["alpha"])
        await store.delete_relay("alpha")
        self.assertEqual(await store.lease_owners(), {})
        self.assertEqual(await store.renew_leases("node-a", LONG), [])
        await store.save_relay("alpha", {})
        ((_, again),) = await store.claim_leases("node-b", LONG, 10)
        self.assertGreater(again, first)

    @deferred_test
    async def test_nodes(self) -> None:
        """
        A node is live while its heartbeat lasts; forgetting a node removes
        it and releases its leases at once.
        """
        store_a = await self.store_with_bots("alpha", "beta")
        store_b = await self.open_store()
        self.assertEqual(await store_a.live_nodes(), [])
        await store_a.heartbeat_node("node-a", LONG)
        await store_b.heartbeat_node("node-b", SHORT)
        await store_b.heartbeat_node("node-c", SHORT)
        self.assertEqual(await store_a.live_nodes(), ["node-a", "node-b", "node-c"])
        await store_b.heartbeat_node("node-b", LONG)
        await self.pass_time(SHORT * 2)
        self.assertEqual(await store_b.live_nodes(), ["node-a", "node-b"])
        await store_a.claim_leases("node-a", LONG, 10)
        await store_a.forget_node("node-a")
        self.assertEqual(await store_b.live_nodes(), ["node-b"])
        self.assertEqual(await store_b.lease_owners(), {})
        self.assertEqual(len(await store_b.claim_leases("node-b", LONG, 10)), 2)

    @deferred_test
    async def test_change_notices(self) -> None:
        """
        A change notified through one store reaches the listeners of every
        store on the database, on the reactor thread.
        """
        store_a = await self.open_store()
        store_b = await self.open_store()
        heard: list[tuple[str | None, int]] = []
        await store_a.listen_changes(lambda alias: heard.append((alias, threading.get_ident())))
        await store_b.notify_change("alpha")
        await store_a.notify_change("beta")
        await self.eventually(lambda: len(heard) >= 2)
        self.assertEqual(heard, [("alpha", threading.get_ident()), ("beta", threading.get_ident())])

    @deferred_test
    async def test_leases_closed(self) -> None:
        """
        A closed store fails the lease and notice calls with
        :class:`StoreClosed`.
        """
        store = await self.store_with_bots("alpha")
        await store.close()
        await self.assertFailure(store.heartbeat_node("node-a", LONG), StoreClosed)
        await self.assertFailure(store.live_nodes(), StoreClosed)
        await self.assertFailure(store.forget_node("node-a"), StoreClosed)
        await self.assertFailure(store.claim_leases("node-a", LONG, 1), StoreClosed)
        await self.assertFailure(store.renew_leases("node-a", LONG), StoreClosed)
        await self.assertFailure(store.release_leases("node-a", ["alpha"]), StoreClosed)
        await self.assertFailure(store.lease_owners(), StoreClosed)
        await self.assertFailure(store.notify_change("alpha"), StoreClosed)
        await self.assertFailure(store.listen_changes(lambda alias: None), StoreClosed)

    # -- IDENTIFY slots ------------------------------------------------------------

    @deferred_test
    async def test_identify_granted_once(self) -> None:
        """
        A free slot is granted (``0.0``); while it is held, every node, the
        holder included, is told to wait until the hold runs out.  Other
        buckets and other keys are slots of their own.
        """
        store_a = await self.open_store()
        store_b = await self.open_store()
        self.assertEqual(await store_a.acquire_identify("hash-1", 0, "node-a", LONG), 0.0)
        for store, node in [(store_b, "node-b"), (store_a, "node-a")]:
            wait = await store.acquire_identify("hash-1", 0, node, LONG)
            self.assertGreater(wait, LONG - 10)
            self.assertLessEqual(wait, LONG)
        self.assertEqual(await store_b.acquire_identify("hash-1", 1, "node-b", LONG), 0.0)
        self.assertEqual(await store_b.acquire_identify("hash-2", 0, "node-b", LONG), 0.0)

    @deferred_test
    async def test_identify_sent_starts_window(self) -> None:
        """
        Finishing with ``sent`` releases the hold and keeps the slot closed
        for ``window`` seconds, to every node.
        """
        store_a = await self.open_store()
        store_b = await self.open_store()
        await store_a.acquire_identify("hash-1", 0, "node-a", SHORT)
        await store_a.finish_identify("hash-1", 0, "node-a", True, LONG)
        for store, node in [(store_b, "node-b"), (store_a, "node-a")]:
            wait = await store.acquire_identify("hash-1", 0, node, SHORT)
            self.assertGreater(wait, LONG - 10)
            self.assertLessEqual(wait, LONG)
        await self.pass_time(SHORT * 2)
        self.assertGreater(await store_b.acquire_identify("hash-1", 0, "node-b", SHORT), LONG - 10)
        self.assertEqual(await store_b.acquire_identify("hash-1", 1, "node-b", SHORT), 0.0)

    @deferred_test
    async def test_identify_window_passes(self) -> None:
        """
        Once the window has passed, the slot is granted again.
        """
        store = await self.open_store()
        await store.acquire_identify("hash-1", 0, "node-a", LONG)
        await store.finish_identify("hash-1", 0, "node-a", True, SHORT)
        wait = await store.acquire_identify("hash-1", 0, "node-b", LONG)
        self.assertGreaterEqual(wait, IDENTIFY_MIN_WAIT)
        self.assertLessEqual(wait, SHORT)
        await self.pass_time(SHORT * 2)
        self.assertEqual(await store.acquire_identify("hash-1", 0, "node-b", LONG), 0.0)

    @deferred_test
    async def test_identify_not_sent(self) -> None:
        """
        Finishing without ``sent`` releases the hold and opens no window:
        the slot is granted again at once, to any node.
        """
        store_a = await self.open_store()
        store_b = await self.open_store()
        await store_a.acquire_identify("hash-1", 0, "node-a", LONG)
        await store_a.finish_identify("hash-1", 0, "node-a", False, LONG)
        self.assertEqual(await store_b.acquire_identify("hash-1", 0, "node-b", LONG), 0.0)
        await store_b.finish_identify("hash-1", 0, "node-b", False, LONG)
        self.assertEqual(await store_a.acquire_identify("hash-1", 0, "node-a", LONG), 0.0)

    @deferred_test
    async def test_identify_finish_by_others(self) -> None:
        """
        A node that does not hold the slot changes nothing by finishing it,
        sent or not, nor does finishing a slot nobody asked for.
        """
        store_a = await self.open_store()
        store_b = await self.open_store()
        await store_b.finish_identify("hash-9", 0, "node-b", True, LONG)
        self.assertEqual(await store_b.acquire_identify("hash-9", 0, "node-b", LONG), 0.0)
        await store_a.acquire_identify("hash-1", 0, "node-a", LONG)
        await store_b.finish_identify("hash-1", 0, "node-b", False, LONG)
        self.assertGreater(await store_b.acquire_identify("hash-1", 0, "node-b", LONG), 0.0)
        await store_b.finish_identify("hash-1", 0, "node-b", True, LONG)
        await store_a.finish_identify("hash-1", 0, "node-a", False, LONG)
        self.assertEqual(await store_b.acquire_identify("hash-1", 0, "node-b", LONG), 0.0)

    @deferred_test
    async def test_identify_hold_runs_out(self) -> None:
        """
        A hold that has run out counts as none: another node is granted the
        slot, and the late finish of the old holder then changes nothing.
        A holder that finishes late, before anyone took over, still starts
        the window.
        """
        store_a = await self.open_store()
        store_b = await self.open_store()
        await store_a.acquire_identify("hash-1", 0, "node-a", SHORT)
        wait = await store_b.acquire_identify("hash-1", 0, "node-b", SHORT)
        self.assertGreaterEqual(wait, IDENTIFY_MIN_WAIT)
        self.assertLessEqual(wait, SHORT)
        await self.pass_time(SHORT * 2)
        self.assertEqual(await store_b.acquire_identify("hash-1", 0, "node-b", LONG), 0.0)
        await store_a.finish_identify("hash-1", 0, "node-a", True, LONG)
        await store_b.finish_identify("hash-1", 0, "node-b", False, LONG)
        self.assertEqual(await store_a.acquire_identify("hash-1", 0, "node-a", SHORT), 0.0)

        await self.pass_time(SHORT * 2)
        await store_a.finish_identify("hash-1", 0, "node-a", True, LONG)
        self.assertGreater(await store_b.acquire_identify("hash-1", 0, "node-b", LONG), LONG - 10)

    @deferred_test
    async def test_identify_concurrent(self) -> None:
        """
        Nodes asking for one slot at the same moment, round after round,
        are granted it once per round between them.
        """
        store_a = await self.open_store()
        store_b = await self.open_store()
        for round in range(5):
            key = f"hash-{round}"
            waits = await gatherResults(
                [
                    store.acquire_identify(key, 0, f"{node}-{i}", LONG)
                    for store, node in [(store_a, "node-a"), (store_b, "node-b")]
                    for i in range(3)
                ]
            )
            self.assertEqual(waits.count(0.0), 1, waits)
            self.assertTrue(all(wait >= IDENTIFY_MIN_WAIT for wait in waits if wait), waits)

    @deferred_test
    async def test_identify_reopen(self) -> None:
        """
        A slot's state is in the database: a restarted node finds it.
        """
        store = await self.open_store()
        await store.acquire_identify("hash-1", 0, "node-a", SHORT)
        await store.finish_identify("hash-1", 0, "node-a", True, LONG)
        await store.close()
        again = await self.open_store()
        self.assertGreater(await again.acquire_identify("hash-1", 0, "node-b", LONG), LONG - 10)

    # -- public status ---------------------------------------------------------------

    @deferred_test
    async def test_statuses_round_trip(self) -> None:
        """
        What live nodes published loads back, each status with its node,
        equal to what was given; nothing published, nothing loaded.
        """
        store_a = await self.open_store()
        store_b = await self.open_store()
        self.assertEqual(await store_a.load_statuses(), {})
        await store_a.heartbeat_node("node-a", LONG)
        await store_b.heartbeat_node("node-b", LONG)
        alpha = {"state": "ready", "shards": [{"id": 0, "seq": None}], "name": "Ünïcode ✓"}
        beta = {"state": "disabled", "latency": 0.25, "nul": "a\x00b", "ok": False}
        await store_a.publish_statuses("node-a", {"alpha": alpha, "beta": beta})
        await store_b.publish_statuses("node-b", {"gamma": {}})
        expected = {"alpha": ("node-a", alpha), "beta": ("node-a", beta), "gamma": ("node-b", {})}
        self.assertEqual(await store_a.load_statuses(), expected)
        self.assertEqual(await store_b.load_statuses(), expected)

    @deferred_test
    async def test_statuses_replace(self) -> None:
        """
        A node's publish replaces all it published before, and only its
        own; publishing nothing withdraws them.
        """
        store_a = await self.open_store()
        store_b = await self.open_store()
        await store_a.heartbeat_node("node-a", LONG)
        await store_b.heartbeat_node("node-b", LONG)
        await store_a.publish_statuses("node-a", {"alpha": {"n": 1}, "beta": {"n": 1}})
        await store_b.publish_statuses("node-b", {"gamma": {"n": 1}})
        await store_a.publish_statuses("node-a", {"alpha": {"n": 2}, "delta": {"n": 2}})
        self.assertEqual(
            await store_b.load_statuses(),
            {
                "alpha": ("node-a", {"n": 2}),
                "delta": ("node-a", {"n": 2}),
                "gamma": ("node-b", {"n": 1}),
            },
        )
        await store_a.publish_statuses("node-a", {})
        self.assertEqual(await store_b.load_statuses(), {"gamma": ("node-b", {"n": 1})})

    @deferred_test
    async def test_statuses_update(self) -> None:
        """
        An update changes only the aliases it names: changed ones replaced
        or added, withdrawn ones gone, the node's others kept; another
        node's untouched.  The newer publish of an alias wins, whichever
        way it was made.
        """
        store_a = await self.open_store()
        store_b = await self.open_store()
        await store_a.heartbeat_node("node-a", LONG)
        await store_b.heartbeat_node("node-b", LONG)
        await store_a.publish_statuses("node-a", {"alpha": {"n": 1}, "beta": {"n": 1}})
        await store_b.publish_statuses("node-b", {"gamma": {"n": 1}})
        await store_a.update_statuses("node-a", {"beta": {"n": 2}, "delta": {"n": 2}}, ["alpha"])
        self.assertEqual(
            await store_b.load_statuses(),
            {
                "beta": ("node-a", {"n": 2}),
                "delta": ("node-a", {"n": 2}),
                "gamma": ("node-b", {"n": 1}),
            },
        )
        # gamma moves to node-a: its newer status wins over node-b's
        await self.pass_time(0.01)
        await store_a.update_statuses("node-a", {"gamma": {"n": 3}}, [])
        self.assertEqual((await store_b.load_statuses())["gamma"], ("node-a", {"n": 3}))
        await store_a.update_statuses("node-a", {}, [])
        self.assertEqual(len(await store_b.load_statuses()), 3)
        with self.assertRaises((TypeError, ValueError)):
            await store_a.update_statuses("node-a", {"beta": {"n": object()}}, ["delta"])
        self.assertIn("delta", await store_b.load_statuses())

    @deferred_test
    async def test_statuses_of_live_nodes_only(self) -> None:
        """
        Statuses of a node that never heartbeated, whose heartbeat expired,
        or that was forgotten are not loaded; a node that heartbeats again
        in time has its statuses back.
        """
        store_a = await self.open_store()
        store_b = await self.open_store()
        await store_a.heartbeat_node("node-a", LONG)
        await store_b.heartbeat_node("node-b", SHORT)
        await store_a.publish_statuses("node-a", {"alpha": {}})
        await store_b.publish_statuses("node-b", {"beta": {}})
        await store_b.publish_statuses("node-c", {"gamma": {}})
        self.assertEqual(set(await store_a.load_statuses()), {"alpha", "beta"})
        await self.pass_time(SHORT * 2)
        self.assertEqual(set(await store_a.load_statuses()), {"alpha"})
        await store_b.heartbeat_node("node-b", LONG)
        await store_b.heartbeat_node("node-c", LONG)
        self.assertEqual(set(await store_a.load_statuses()), {"alpha", "beta", "gamma"})
        await store_a.forget_node("node-a")
        self.assertEqual(set(await store_b.load_statuses()), {"beta", "gamma"})
        # Forgotten, not just hidden: a node id is never live again in
        # practice, but if it were, its old statuses stay gone.
        await store_a.heartbeat_node("node-a", LONG)
        self.assertEqual(set(await store_b.load_statuses()), {"beta", "gamma"})

    @deferred_test
    async def test_statuses_latest_wins(self) -> None:
        """
        An alias published by two live nodes (a bot changing hands) loads
        with the status published last.
        """
        store_a = await self.open_store()
        store_b = await self.open_store()
        await store_a.heartbeat_node("node-a", LONG)
        await store_b.heartbeat_node("node-b", LONG)
        await store_b.publish_statuses("node-b", {"alpha": {"by": "b"}})
        await self.pass_time(0.05)
        await store_a.publish_statuses("node-a", {"alpha": {"by": "a"}})
        self.assertEqual(await store_b.load_statuses(), {"alpha": ("node-a", {"by": "a"})})
        await self.pass_time(0.05)
        await store_b.publish_statuses("node-b", {"alpha": {"by": "b", "again": True}})
        self.assertEqual(
            await store_a.load_statuses(), {"alpha": ("node-b", {"by": "b", "again": True})}
        )
        await store_b.publish_statuses("node-b", {})
        self.assertEqual(await store_a.load_statuses(), {"alpha": ("node-a", {"by": "a"})})

    @deferred_test
    async def test_statuses_not_json(self) -> None:
        """
        A status that is not JSON-compatible fails the publish, which
        changes nothing; a status changed after publishing is not seen.
        """
        store = await self.open_store()
        await store.heartbeat_node("node-a", LONG)
        status: dict[str, Any] = {"n": 1}
        await store.publish_statuses("node-a", {"alpha": status})
        status["n"] = 2
        await self.assertFailure(
            store.publish_statuses("node-a", {"beta": {"when": object()}}), TypeError
        )
        await self.assertFailure(
            store.publish_statuses("node-a", {"beta": {"ratio": float("inf")}}), ValueError
        )
        await self.assertFailure(
            store.publish_statuses("node-a", {"beta": "ready"}), TypeError  # type: ignore[dict-item]
        )
        loaded = await store.load_statuses()
        self.assertEqual(loaded, {"alpha": ("node-a", {"n": 1})})
        loaded["alpha"][1]["n"] = 3
        self.assertEqual(await store.load_statuses(), {"alpha": ("node-a", {"n": 1})})

    @deferred_test
    async def test_identify_and_statuses_closed(self) -> None:
        """
        A closed store fails the IDENTIFY slot and status calls with
        :class:`StoreClosed`.
        """
        store = await self.open_store()
        await store.close()
        await self.assertFailure(store.acquire_identify("hash-1", 0, "node-a", LONG), StoreClosed)
        await self.assertFailure(
            store.finish_identify("hash-1", 0, "node-a", True, LONG), StoreClosed
        )
        await self.assertFailure(store.publish_statuses("node-a", {}), StoreClosed)
        await self.assertFailure(store.load_statuses(), StoreClosed)


class SQLiteStoreTests(IRelayStoreTestsMixin, TestCase):
    """
    :class:`SQLiteStore` keeps the :class:`IRelayStore` contract.
    """

    def setUp(self) -> None:
        self.path = os.path.join(self.mktemp(), "relay.sqlite")

    def make_store(self) -> IRelayStore:
        return SQLiteStore(self.path, reactor)

    def test_no_cluster_role(self) -> None:
        """
        One node uses a SQLite file: the store offers no cluster role (no
        leases, notices, IDENTIFY slots or statuses to share).
        """
        store = self.make_store()
        self.assertFalse(IClusterStore.providedBy(store))
        self.assertFalse(hasattr(store, "claim_leases"))


class SQLitePerRowStoreTests(SQLiteStoreTests):
    """
    With an SQLite too old for the outbox's batched statements
    (:data:`dccrelay.store.sqlite.BATCHED_STATEMENTS`), the store runs one
    statement per row and keeps the same contract.
    """

    def setUp(self) -> None:
        super().setUp()
        self.patch(sqlite_module, "BATCHED_STATEMENTS", False)


class SQLiteOutboxStatementTests(TestCase):
    """
    The outbox's batches run as a few statements whatever their size: each
    statement gives up the GIL, and under load taking it back from a busy
    reactor thread is slow, so per-row statements held the outbox up.
    """

    async def traced_store(self) -> tuple[SQLiteStore, list[str]]:
        """
        :return: an opened store with 40 bots, each with a session, and the
            list that gets every statement it runs from now on.
        """
        store = SQLiteStore(os.path.join(self.mktemp(), "relay.sqlite"), reactor)
        self.addCleanup(store.close)
        await store.open()
        for n in range(40):
            await store.save_relay(f"bot{n}", {})
            await store.save_session(f"bot{n}", session(0, seq=1))
        statements: list[str] = []

        def trace(connection: Any) -> None:
            connection._connection.set_trace_callback(statements.append)

        await store._pool.runWithConnection(trace)
        return store, statements

    @deferred_test
    async def test_append(self) -> None:
        """
        Appending 400 dispatches of 40 bots (and one unregistered), with a
        checkpoint each, takes a handful of statements; every entry and
        checkpoint is stored.
        """
        store, statements = await self.traced_store()
        aliases = [f"bot{n}" for n in range(40)]
        entries = [(alias, b"%d" % i) for i in range(10) for alias in aliases]
        ids = await store.outbox_append(
            entries + [("ghost", b"g")],
            1.0,
            [OutboxCheckpoint(alias, 0, "session-0", 7) for alias in aliases],
        )
        self.assertLessEqual(len(statements), 10, statements[:20])
        self.assertIsNone(ids[-1])
        self.assertEqual(sorted(ids[:-1]), ids[:-1])  # type: ignore[type-var]
        self.assertEqual(len(set(ids[:-1])), 400)
        loaded = await store.outbox_load("bot3", 0, 100)
        self.assertEqual([entry.payload for entry in loaded], [b"%d" % i for i in range(10)])
        self.assertEqual((await store.load_sessions("bot39"))[0].seq, 7)

    @deferred_test
    async def test_ack(self) -> None:
        """
        Acknowledging for 40 bots takes a handful of statements, and counts
        what each bot's ack removed.
        """
        store, statements = await self.traced_store()
        ids = await store.outbox_append(
            [(f"bot{n}", b"x") for _ in range(3) for n in range(40)], 1.0
        )
        del statements[:]
        # bot n's entries are ids[n], ids[40 + n], ids[80 + n]: ack the first two
        removed = await store.outbox_ack({f"bot{n}": ids[40 + n] for n in range(40)})  # type: ignore[misc]
        self.assertLessEqual(len(statements), 6, statements[:20])
        self.assertEqual(removed, {f"bot{n}": 2 for n in range(40)})
        self.assertEqual(await store.outbox_count("bot0"), 1)


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
            tables,
            [
                ("guild_snapshots",),
                ("identify_slots",),
                ("lease_epoch",),
                ("leases",),
                ("nodes",),
                ("outbox",),
                ("relays",),
                ("sessions",),
                ("sqlite_sequence",),
                ("statuses",),
            ],
        )

    @deferred_test
    async def test_migrates_version_1(self) -> None:
        """
        A database of schema version 1 (before the outbox) keeps its relays
        and sessions and gains an empty outbox, and a free lease for each
        relay.
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
        leases = "SELECT alias, owner, epoch, expires_at FROM leases"
        self.assertEqual(self.inspect().execute(leases).fetchall(), [("alpha", None, 0, None)])
        (version,) = self.inspect().execute("PRAGMA user_version").fetchone()
        self.assertEqual(version, len(MIGRATIONS))

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
    async def test_damaged_file(self) -> None:
        """
        A database cut short (a full disk, a bad copy) fails to open, or to
        load, with :class:`StoreDamaged` naming the file and what to do; it
        is not mistaken for a passing fault.
        """
        store = await self.open_store()
        for n in range(200):
            await store.save_relay(f"bot{n}", SETTINGS)
        await store.close()
        for size in (os.path.getsize(self.path) // 2, 1000):
            os.truncate(self.path, size)
            store = SQLiteStore(self.path, reactor)
            self.addCleanup(store.close)
            with self.assertRaises(StoreDamaged) as caught:
                await store.open()
                await store.load_relays()
            self.assertIn(f"SQLite database at {self.path} is damaged or not a database",
                          str(caught.exception))
            self.assertIn("restore it from a backup", str(caught.exception))

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


class MemoryRelayStoreTests(IRelayStoreTestsMixin, ClusterStoreTestsMixin, TestCase):
    """
    The in-memory store that unit tests use keeps the same contracts,
    the cluster role's included.
    """

    def setUp(self) -> None:
        from tests.memory_store import MemoryDatabase

        self.clock = Clock()
        self.database = MemoryDatabase(now=self.clock.seconds)

    async def pass_time(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def make_store(self) -> IRelayStore:
        from tests.memory_store import MemoryRelayStore

        return MemoryRelayStore(self.database)
