"""
Tests for :mod:`dccrelay.delivery.outbox`: the node-wide batching writer and
one bot's view of its outbox, over the in-memory store on a
``MemoryReactorClock``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.delivery.outbox import BotOutbox, OutboxNotStored, OutboxWriter
from dccrelay.store import OutboxCheckpoint, SessionState
from tests.memory_store import MemoryRelayStore


class CountingStore(MemoryRelayStore):
    """
    The in-memory store, counting outbox calls; while ``hold`` is set,
    appends wait until :meth:`release`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.appends: list[list[tuple[str, bytes]]] = []
        self.acks: list[dict[str, int]] = []
        self.loads: list[tuple[str, int, int]] = []
        self.hold = False
        self.held: list[tuple[Deferred[Any], Deferred[Any]]] = []
        self.fail_appends = False
        self.hold_loads = False

    def outbox_append(
        self, entries: Any, now: float, checkpoints: Any = (), fences: Any = None
    ) -> Deferred[Any]:
        self.appends.append(list(entries))
        if self.fail_appends:
            from twisted.internet.defer import fail

            return fail(OSError("disk full"))
        d = super().outbox_append(entries, now, checkpoints, fences)
        if not self.hold:
            return d
        waiting: Deferred[Any] = Deferred()
        self.held.append((d, waiting))
        return waiting

    def release(self) -> None:
        held, self.held = self.held, []
        for inner, outer in held:
            inner.chainDeferred(outer)

    def outbox_ack(self, acks: Any, batches: Any = None) -> Deferred[Any]:
        self.acks.append(dict(acks))
        return super().outbox_ack(acks, batches)

    def outbox_load(self, alias: str, after_id: int, limit: int) -> Deferred[Any]:
        self.loads.append((alias, after_id, limit))
        d = super().outbox_load(alias, after_id, limit)
        if not self.hold_loads:
            return d
        # answered with what was stored when asked, like a real database
        waiting: Deferred[Any] = Deferred()
        self.held.append((d, waiting))
        return waiting


class Fixture(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.store = CountingStore()
        self.successResultOf(self.store.open())
        for alias in ("alpha", "beta"):
            self.successResultOf(self.store.save_relay(alias, {}))
        self.writer = OutboxWriter(self.store, self.clock)


class OutboxWriterTests(Fixture):
    """
    OutboxWriter.
    """

    def test_one_call_per_turn(self) -> None:
        """
        Appends from several bots in one reactor turn go to the store in one
        call, in order, and each caller gets its own id.
        """
        ds = [self.writer.append(alias, b"%d" % i) for i, alias in enumerate(["alpha", "beta"] * 5)]
        self.assertEqual(self.store.appends, [])
        self.clock.advance(0)
        self.assertEqual(len(self.store.appends), 1)
        self.assertEqual(len(self.store.appends[0]), 10)
        ids = [self.successResultOf(d) for d in ds]
        self.assertEqual(ids, sorted(ids))
        entries = self.successResultOf(self.store.outbox_load("alpha", 0, 10))
        self.assertEqual([e.payload for e in entries], [b"0", b"2", b"4", b"6", b"8"])

    def test_batches_while_busy(self) -> None:
        """
        While a call is in flight, new appends gather and go together in the
        next call, which starts once the first one is done.
        """
        self.store.hold = True
        first = self.writer.append("alpha", b"1")
        self.clock.advance(0)
        later = [self.writer.append("beta", b"%d" % i) for i in range(20)]
        self.clock.advance(0)
        self.assertEqual(len(self.store.appends), 1)
        self.assertNoResult(first)
        self.store.hold = False
        self.store.release()
        self.successResultOf(first)
        self.clock.advance(0)
        self.assertEqual([len(call) for call in self.store.appends], [1, 20])
        self.assertEqual(len({self.successResultOf(d) for d in later}), 20)

    def test_unknown_alias(self) -> None:
        """
        An append for an alias that is not registered fires with None.
        """
        d = self.writer.append("ghost", b"x")
        self.clock.advance(0)
        self.assertIsNone(self.successResultOf(d))

    def test_refused_append_retried(self) -> None:
        """
        An append the store refuses is neither failed nor dropped: it is
        tried again after the retry policy's delay (logged), in order ahead
        of appends made meanwhile, with its resume point, in one call.
        """
        self.successResultOf(
            self.store.save_session("alpha", SessionState(0, 1, "s", 1, "wss://r"))
        )
        self.store.fail_appends = True
        first = self.writer.append("alpha", b"x", OutboxCheckpoint("alpha", 0, "s", 5))
        with capturedLogs() as events:
            self.clock.advance(0)
        self.assertNoResult(first)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertIn("trying again in 0.1 s", formatEvent(events[-1]))
        self.assertEqual(self.writer.append_retries, 1)
        second = self.writer.append("alpha", b"y", OutboxCheckpoint("alpha", 0, "s", 6))
        # Nothing goes before the refused one, however often it is asked.
        self.clock.advance(0)
        self.assertEqual(len(self.store.appends), 1)
        self.clock.advance(0.1)
        self.assertEqual(len(self.store.appends), 2)
        self.assertNoResult(first)
        self.store.fail_appends = False
        with capturedLogs() as events:
            self.clock.advance(0.2)
        self.assertEqual(self.store.appends[-1], [("alpha", b"x"), ("alpha", b"y")])
        one, two = self.successResultOf(first), self.successResultOf(second)
        assert one is not None and two is not None
        self.assertLess(one, two)
        sessions = self.successResultOf(self.store.load_sessions("alpha"))
        self.assertEqual(sessions[0].seq, 6)
        self.assertIn("after 2 refused tries", formatEvent(events[0]))
        self.successResultOf(self.writer.idle())

    def test_retry_delay_is_bounded(self) -> None:
        """
        The delay grows with each refusal, up to 5 s.
        """
        self.store.fail_appends = True
        self.writer.append("alpha", b"x")
        self.clock.advance(0)
        delays = []
        for _ in range(12):
            before = len(self.store.appends)
            waited = 0.0
            while len(self.store.appends) == before:
                self.clock.advance(0.05)
                waited += 0.05
            delays.append(round(waited, 1))
        self.flushLoggedErrors(OSError)
        self.assertEqual(delays[:3], [0.1, 0.2, 0.4])
        self.assertEqual(max(delays), 5.0)

    def test_idle_waits_for_retry(self) -> None:
        """
        ``idle()`` does not fire while a refused append waits for its
        next try.
        """
        self.store.fail_appends = True
        self.writer.append("alpha", b"x")
        self.clock.advance(0)
        self.flushLoggedErrors(OSError)
        d = self.writer.idle()
        self.assertNoResult(d)
        self.store.fail_appends = False
        self.clock.advance(0.1)
        self.clock.advance(0)
        self.successResultOf(d)

    def test_stop_gives_up(self) -> None:
        """
        Once the node stops, an append waiting for its next try gets one
        more at once; refused again, it fails with OutboxNotStored, and every
        later append fails too (so that no later resume point is stored
        past it).
        """
        self.store.fail_appends = True
        first = self.writer.append("alpha", b"x")
        self.clock.advance(0)
        self.writer.stop()
        self.assertNoResult(first)
        self.clock.advance(0)
        self.assertEqual(len(self.store.appends), 2)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 2)
        self.failureResultOf(first, OutboxNotStored)
        self.store.fail_appends = False
        later = self.writer.append("alpha", b"y", OutboxCheckpoint("alpha", 0, "s", 9))
        self.clock.advance(0)
        self.failureResultOf(later, OutboxNotStored)
        self.assertEqual(len(self.store.appends), 2)
        self.successResultOf(self.writer.idle())

    def test_stopping_stores_what_the_store_takes(self) -> None:
        """
        Stopping changes nothing for appends the store takes; one refused
        while stopping is given up at once, logged.
        """
        self.writer.stop()
        d = self.writer.append("alpha", b"x")
        self.clock.advance(0)
        self.assertIsNotNone(self.successResultOf(d))
        self.store.fail_appends = True
        d = self.writer.append("alpha", b"y")
        self.clock.advance(0)
        self.failureResultOf(d, OutboxNotStored)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_acks_coalesce(self) -> None:
        """
        Acks of one turn go in one call, the highest id per bot; the last
        ack of a bot gets the count removed.
        """
        ds = [self.writer.append("alpha", b"%d" % i) for i in range(4)]
        self.clock.advance(0)
        ids = [self.successResultOf(d) for d in ds]
        a = self.writer.ack("alpha", ids[0])
        b = self.writer.ack("alpha", ids[2])
        self.clock.advance(0)
        self.assertEqual(self.store.acks, [{"alpha": ids[2]}])
        self.assertEqual((self.successResultOf(a), self.successResultOf(b)), (0, 3))

    def test_checkpoints(self) -> None:
        """
        The newest checkpoint of each shard goes with the appends of the
        same call.
        """
        self.successResultOf(
            self.store.save_session("alpha", SessionState(0, 1, "s", 1, "wss://r"))
        )
        for seq in (5, 7, 6):
            self.writer.append("alpha", b"x", OutboxCheckpoint("alpha", 0, "s", seq))
        self.clock.advance(0)
        sessions = self.successResultOf(self.store.load_sessions("alpha"))
        self.assertEqual(sessions[0].seq, 7)

    def test_idle(self) -> None:
        """
        ``idle()`` fires once everything given so far is written.
        """
        self.successResultOf(self.writer.idle())
        self.writer.append("alpha", b"x")
        d = self.writer.idle()
        self.assertNoResult(d)
        self.clock.advance(0)
        self.successResultOf(d)


class BotOutboxTests(Fixture):
    """
    BotOutbox.
    """

    def outbox(self, alias: str = "alpha", **kwargs: Any) -> BotOutbox:
        self.ready = 0

        def on_ready() -> None:
            self.ready += 1

        options: dict[str, Any] = {
            "alias": alias,
            "store": self.store,
            "writer": self.writer,
            "clock": self.clock,
            "limit": 1000,
            "max_age": None,
            "on_ready": on_ready,
        }
        options.update(kwargs)
        on_ready = options.pop("on_ready")
        outbox = BotOutbox(**options)
        outbox.start(on_ready)
        return outbox

    def stored(self, alias: str, *payloads: bytes) -> list[int]:
        ids = self.successResultOf(
            self.store.outbox_append([(alias, p) for p in payloads], self.clock.seconds())
        )
        return [i for i in ids if i is not None]

    def test_loads_what_is_stored(self) -> None:
        """
        A new outbox (after a restart) finds the bot's stored entries, counts
        them and tells the channel.
        """
        ids = self.stored("alpha", b"a", b"b")
        self.stored("beta", b"other")
        outbox = self.outbox()
        self.assertEqual(outbox.queued, 2)
        self.assertEqual(outbox.entries_after(0), [(ids[0], b"a"), (ids[1], b"b")])
        self.assertEqual(outbox.entries_after(ids[0]), [(ids[1], b"b")])
        # told on the next turn, never from inside the constructor
        self.assertEqual(self.ready, 0)
        self.clock.advance(0)
        self.assertEqual(self.ready, 1)

    def test_append(self) -> None:
        """
        An appended payload is counted at once, and comes into memory (and
        the channel hears of it) once stored.
        """
        outbox = self.outbox()
        self.assertFalse(outbox.has_work())
        outbox.append(b"x")
        self.assertEqual(outbox.queued, 1)
        self.assertTrue(outbox.has_work())
        self.assertEqual(outbox.entries_after(0), [])
        self.clock.advance(0)
        [(entry_id, payload)] = outbox.entries_after(0)
        self.assertEqual(payload, b"x")
        self.assertEqual(self.ready, 1)

    def test_initial(self) -> None:
        """
        Initial payloads are appended after what was stored, in order.
        """
        self.stored("alpha", b"old")
        outbox = self.outbox(initial=[b"1", b"2"])
        self.clock.advance(0)
        self.assertEqual([p for _, p in outbox.entries_after(0)], [b"old", b"1", b"2"])

    def test_ack(self) -> None:
        """
        Acking removes entries from memory at once and from the store; the
        backlog follows.
        """
        outbox = self.outbox()
        for i in range(3):
            outbox.append(b"%d" % i)
        self.clock.advance(0)
        ids = [i for i, _ in outbox.entries_after(0)]
        self.assertEqual(len(outbox.take(ids[1])), 2)
        self.assertEqual(outbox.entries_after(0), [(ids[2], b"2")])
        self.clock.advance(0)
        self.assertEqual(outbox.queued, 1)
        self.assertEqual(self.successResultOf(self.store.outbox_count("alpha")), 1)

    def test_window_pages_in_order(self) -> None:
        """
        Past the window, entries stay in the store and are paged in as acks
        make room: every entry is seen once, in order.
        """
        self.stored("alpha", *[b"s%d" % i for i in range(7)])
        outbox = self.outbox(window=4)
        for i in range(7):
            outbox.append(b"a%d" % i)
        self.clock.advance(0)
        seen: list[bytes] = []
        for _ in range(20):
            entries = outbox.entries_after(0)
            if not entries:
                break
            self.assertLessEqual(len(entries), 4)
            seen += [p for _, p in entries]
            outbox.take(entries[-1][0])
            self.clock.advance(0)
        self.assertEqual(seen, [b"s%d" % i for i in range(7)] + [b"a%d" % i for i in range(7)])
        self.assertEqual(outbox.queued, 0)

    def test_append_during_load(self) -> None:
        """
        An entry stored while a page is being loaded (so the page does not
        have it) is paged in next: not lost from memory.
        """
        self.stored("alpha", *[b"s%d" % i for i in range(3)])
        self.store.hold_loads = True
        outbox = self.outbox(window=4)
        outbox.append(b"new")
        self.clock.advance(0)
        self.assertEqual(outbox.entries_after(0), [])
        self.store.hold_loads = False
        self.store.release()
        self.clock.advance(0)
        seen = []
        for _ in range(10):
            entries = outbox.entries_after(0)
            if not entries:
                break
            seen += [p for _, p in entries]
            outbox.take(entries[-1][0])
            self.clock.advance(0)
        self.assertEqual(seen, [b"s0", b"s1", b"s2", b"new"])

    def test_count_limit_drops_oldest(self) -> None:
        """
        Past the count limit the oldest entries are dropped, from the store
        and from memory, and counted.
        """
        outbox = self.outbox(limit=3)
        for i in range(5):
            outbox.append(b"%d" % i)
        self.clock.advance(0)
        self.assertEqual(outbox.dropped, 2)
        self.assertEqual(outbox.queued, 3)
        self.assertEqual([p for _, p in outbox.entries_after(0)], [b"2", b"3", b"4"])
        self.assertEqual(self.successResultOf(self.store.outbox_count("alpha")), 3)

    def test_age_limit_drops_old(self) -> None:
        """
        Entries older than the age limit are dropped and counted.
        """
        outbox = self.outbox(max_age=10.0)
        outbox.append(b"old")
        self.clock.advance(0)
        self.clock.advance(6)
        outbox.append(b"young")
        self.clock.advance(0)
        self.clock.advance(5)
        self.assertEqual(outbox.dropped, 1)
        self.assertEqual([p for _, p in outbox.entries_after(0)], [b"young"])
        self.clock.advance(10)
        self.assertEqual(outbox.dropped, 2)
        self.assertEqual(outbox.queued, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_deleted_bot(self) -> None:
        """
        An append for a bot deleted meanwhile is dropped and counted.
        """
        outbox = self.outbox()
        self.successResultOf(self.store.delete_relay("alpha"))
        outbox.append(b"x")
        self.clock.advance(0)
        self.assertEqual((outbox.dropped, outbox.queued), (1, 0))

    def test_not_bytes(self) -> None:
        """
        A payload that is not bytes is refused at once.
        """
        outbox = self.outbox()
        self.assertRaises(TypeError, outbox.append, "text")

    def test_stop_waits_for_writes(self) -> None:
        """
        ``stop()`` fires once the appends made so far are stored; appends
        after it are still stored, but the channel is not told.
        """
        outbox = self.outbox()
        outbox.append(b"1")
        d = outbox.stop()
        self.assertNoResult(d)
        self.clock.advance(0)
        self.successResultOf(d)
        outbox.append(b"2")
        self.clock.advance(0)
        self.assertEqual(self.ready, 0)
        self.assertEqual(self.successResultOf(self.store.outbox_count("alpha")), 2)

    def test_stop_tries_once_more(self) -> None:
        """
        An append waiting for its next try when the node stops is stored
        if the store takes it now.
        """
        self.store.fail_appends = True
        d = self.writer.append("alpha", b"x")
        self.clock.advance(0)
        self.flushLoggedErrors(OSError)
        self.store.fail_appends = False
        self.writer.stop()
        self.clock.advance(0)
        self.assertIsNotNone(self.successResultOf(d))

    def test_unstored_while_refused(self) -> None:
        """
        A refused append counts as not stored while it waits for its next
        try, and comes into memory once the store takes it; one given up
        as the node stops counts as not stored for good, so that the bot's
        resume point is never saved past it.
        """
        outbox = self.outbox()
        self.store.fail_appends = True
        outbox.append(b"x")
        self.clock.advance(0)
        self.flushLoggedErrors(OSError)
        self.assertEqual(outbox.unstored(), 1)
        self.store.fail_appends = False
        self.clock.advance(0.1)
        self.clock.advance(0)
        self.assertEqual(outbox.unstored(), 0)
        self.assertEqual([p for _, p in outbox.entries_after(0)], [b"x"])
        self.store.fail_appends = True
        outbox.append(b"y")
        self.clock.advance(0)
        self.writer.stop()
        self.clock.advance(0)
        self.flushLoggedErrors(OSError)
        self.assertEqual(outbox.unstored(), 1)
        self.assertEqual(outbox.dropped, 1)
        self.successResultOf(outbox.stop())
