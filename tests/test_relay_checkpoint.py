"""
Tests for the periodic save of where each shard can resume from
(:meth:`dccrelay.relay.relay.Relay.resume_points` and the manager's checkpoint).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request

from dccrelay.delivery.factory import DeliveryFactory
from dccrelay.delivery.outbox import OutboxWriter
from dccrelay.relay.checkpoints import CHECKPOINT_INTERVAL
from dccrelay.relay.manager import RelayManager
from dccrelay.store import SessionState
from tests.memory_store import MemoryRelayStore
from tests.relay_harness import RelayHarness

MESSAGE = {"content": "cookout", "channel_id": "1"}


class CountingStore(MemoryRelayStore):
    """
    A memory store that keeps every ``save_sessions`` call, and fails them
    while ``failing`` is set.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[tuple[str, SessionState]]] = []
        self.failing = False

    def save_sessions(self, states: Sequence[tuple[str, SessionState]]) -> Deferred[None]:
        self.calls.append(list(states))
        if self.failing:
            return fail(OSError("disk full"))
        return super().save_sessions(states)


class ResumePointsTests(SynchronousTestCase):
    """
    A relay offers only the resume points that moved since they were saved.
    """

    def setUp(self) -> None:
        self.harness = RelayHarness()
        self.relay = self.harness.relay(self)

    def test_nothing_moved_after_ready(self) -> None:
        """
        READY saves the session itself: an idle bot has nothing to save.
        """
        self.assertEqual(self.relay.resume_points(), [])

    def test_dispatch_moves_the_point(self) -> None:
        """
        After a dispatch the shard's latest seq is offered, once.
        """
        self.harness.dispatch("TYPING_START", {})
        [point] = self.relay.resume_points()
        self.assertEqual((point.shard_id, point.session_id, point.seq), (0, "session0", 2))
        self.assertEqual(self.relay.resume_points(), [])

    def test_held_back_until_delivered(self) -> None:
        """
        A matched dispatch still queued holds the point back before it; once
        the bot has it, the point moves on with no new dispatch.
        """
        self.harness.dispatch("TYPING_START", {})
        self.harness.dispatch("MESSAGE_CREATE", MESSAGE)
        [point] = self.relay.resume_points()
        self.assertEqual(point.seq, 2)
        self.assertEqual(self.relay.resume_points(), [])
        self.harness.channel.take()
        [point] = self.relay.resume_points()
        self.assertEqual(point.seq, 3)
        self.assertEqual(self.relay.resume_points(), [])

    def test_unsaved_points_offered_again(self) -> None:
        """
        Points whose save failed are offered at the next checkpoint.
        """
        self.harness.dispatch("TYPING_START", {})
        points = self.relay.resume_points()
        self.relay.resume_points_unsaved(points)
        self.assertEqual(self.relay.resume_points(), points)


class ManagerCheckpointTests(SynchronousTestCase):
    """
    The manager saves every relay's moved resume point in one store call.
    """

    def setUp(self) -> None:
        self.store = CountingStore()
        self.harness = RelayHarness(store=self.store)
        self.manager = RelayManager(self.harness.env, self.store, max_relays=10)
        self.store.open()
        self.manager.startService()
        self.addCleanup(self.manager.stopService)
        self.aliases = ["alpha", "beta", "gamma"]
        for alias in self.aliases:
            self.successResultOf(self.manager.put(alias, self.harness.settings()))
        self.harness.clock.advance(0)
        for n, connection in enumerate(self.harness.connections):
            connection.frame({"op": 10, "d": {"heartbeat_interval": 41250}})
            connection.frame(
                {
                    "op": 0, "t": "READY", "s": 1,
                    "d": {"session_id": f"s{n}", "resume_gateway_url": "wss://resume.example"},
                }
            )
        self.store.calls.clear()

    def dispatch(self, connection: Any, seq: int) -> None:
        connection.frame({"op": 0, "t": "TYPING_START", "s": seq, "d": {}})

    def test_one_call_for_every_bot(self) -> None:
        """
        Dispatches on every bot's shard lead to one ``save_sessions`` call
        holding each bot's latest seq.
        """
        for connection in self.harness.connections:
            self.dispatch(connection, 7)
        self.harness.clock.advance(CHECKPOINT_INTERVAL)
        [call] = self.store.calls
        self.assertEqual(sorted((alias, s.seq) for alias, s in call),
                         [(alias, 7) for alias in self.aliases])
        for alias in self.aliases:
            self.assertEqual(self.store.database.sessions[alias][0].seq, 7)

    def test_idle_bots_write_nothing(self) -> None:
        """
        With no dispatch since the last checkpoint nothing is written; a
        single busy bot is the only one saved.
        """
        self.harness.clock.advance(CHECKPOINT_INTERVAL)
        self.assertEqual(self.store.calls, [])
        self.dispatch(self.harness.connections[1], 9)
        self.harness.clock.advance(CHECKPOINT_INTERVAL)
        [call] = self.store.calls
        self.assertEqual([(alias, s.seq) for alias, s in call], [("beta", 9)])

    def test_failed_save_retried(self) -> None:
        """
        A checkpoint the store refused is written at the next one.
        """
        self.dispatch(self.harness.connections[0], 5)
        self.store.failing = True
        self.harness.clock.advance(CHECKPOINT_INTERVAL)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.store.failing = False
        self.harness.clock.advance(CHECKPOINT_INTERVAL)
        self.assertEqual(self.store.database.sessions["alpha"][0].seq, 5)


class DurableResumePointTests(SynchronousTestCase):
    """
    For a durable (webhook) bot, the saved resume point never passes a
    dispatch that is not in the outbox.
    """

    def setUp(self) -> None:
        self.store = RefusingStore()
        self.harness = RelayHarness(store=self.store)
        self.successResultOf(self.store.save_relay("cookout", {}))
        self.hook = Answering()
        writer = OutboxWriter(self.store, self.harness.clock)
        self.harness.env = replace(
            self.harness.env,
            make_delivery=DeliveryFactory(
                self.harness.clock, store=self.store, writer=writer, http=StubTreq(self.hook)
            ),
        )
        self.relay = self.harness.relay(self, dst="https://bot.example/hook")

    def stored_seq(self) -> int | None:
        return self.successResultOf(self.store.load_sessions("cookout"))[0].seq

    def test_refused_append_holds_the_point(self) -> None:
        """
        While the store refuses a dispatch's append, no resume point past
        it is offered (before, the failed append was forgotten and the next
        checkpoint saved the latest seq: Discord would never replay it);
        once the retry stores it, the point moves with it.
        """
        self.assertEqual(self.stored_seq(), 1)
        self.store.fail_appends = True
        self.harness.dispatch("MESSAGE_CREATE", MESSAGE)
        self.harness.clock.advance(0)
        self.flushLoggedErrors(OSError)
        for _ in range(3):
            self.assertEqual(self.relay.resume_points(), [])
            self.harness.clock.advance(0.05)
        self.assertEqual(self.stored_seq(), 1)
        self.store.fail_appends = False
        self.harness.clock.advance(1)
        self.assertEqual(self.stored_seq(), 2)
        self.assertEqual(len(self.hook.bodies), 1)


class RefusingStore(MemoryRelayStore):
    """A memory store that refuses outbox appends while ``fail_appends``."""

    fail_appends = False

    def outbox_append(
        self, entries: Any, now: float, checkpoints: Any = (), fences: Any = None
    ) -> Deferred[Any]:
        if self.fail_appends:
            return fail(OSError("database is locked"))
        return super().outbox_append(entries, now, checkpoints, fences)


class Answering(Resource):
    """A webhook bot that answers 204, keeping the bodies."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []

    def render_POST(self, request: Request) -> bytes:
        assert request.content is not None
        self.bodies.append(request.content.read())
        request.setResponseCode(204)
        return b""
