"""
Tests for :mod:`dccrelay.delivery.feed` and :mod:`dccrelay.delivery.framing`:
where a channel's dispatches wait, and how v1 and v2 frame them.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from typing import Any

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from dccrelay.delivery import ChannelSnapshot
from dccrelay.delivery.feed import IFeed, MemoryFeed
from dccrelay.delivery.framing import IBotFrames, IFraming, V1Framing, V2Framing
from dccrelay.delivery.outbox import BotOutbox, OutboxWriter
from tests.memory_store import MemoryRelayStore


class MemoryFeedTests(SynchronousTestCase):
    """
    MemoryFeed: v1's backlog, with ids of its own.
    """

    def test_interface(self) -> None:
        """
        MemoryFeed and BotOutbox both provide IFeed; only the outbox is
        durable.
        """
        clock = MemoryReactorClock()
        store = MemoryRelayStore()
        feed = MemoryFeed("cookout", 3)
        outbox = BotOutbox(
            alias="cookout", store=store, writer=OutboxWriter(store, clock), clock=clock,
            limit=3, max_age=None,
        )
        verifyObject(IFeed, feed)
        verifyObject(IFeed, outbox)
        self.assertEqual((feed.durable, outbox.durable), (False, True))

    def test_ids_and_take(self) -> None:
        """
        Entries get increasing ids; entries_after skips what was written,
        take forgets up to an id and returns those payloads, oldest first.
        """
        feed = MemoryFeed("cookout", 10)
        for payload in (b"a", b"b", b"c"):
            self.assertTrue(feed.append(payload))
        self.assertEqual(feed.entries_after(0), [(1, b"a"), (2, b"b"), (3, b"c")])
        self.assertEqual(feed.entries_after(1, 1), [(2, b"b")])
        self.assertEqual(feed.take(2), [b"a", b"b"])
        self.assertEqual(feed.take(2), [])
        self.assertEqual((feed.queued, feed.gone_up_to), (1, 2))
        self.assertEqual(feed.entries_after(0), [(3, b"c")])
        self.assertEqual(feed.pending(), [b"c"])

    def test_ids_survive_drops(self) -> None:
        """
        An entry keeps its id when older ones are dropped by the limit, and
        the drop is counted and logged once.
        """
        feed = MemoryFeed("cookout", 2, [b"a"])
        with capturedLogs() as events:
            for payload in (b"b", b"c", b"d"):
                feed.append(payload)
        self.assertEqual(feed.entries_after(0), [(3, b"c"), (4, b"d")])
        self.assertEqual((feed.dropped, feed.gone_up_to), (2, 2))
        self.assertEqual(len([e for e in events if e.get("log_level").name == "warn"]), 1)

    def test_not_bytes(self) -> None:
        """
        A str is refused: it would be re-encoded.
        """
        self.assertRaises(TypeError, MemoryFeed("cookout", 2).append, "{}")

    def test_start_reports_initial(self) -> None:
        """
        start() reports at once what an earlier channel left, and nothing
        when there is nothing.
        """
        ready: list[str] = []
        MemoryFeed("cookout", 2).start(lambda: ready.append("empty"))
        MemoryFeed("cookout", 2, [b"a"]).start(lambda: ready.append("left"))
        self.assertEqual(ready, ["left"])


@implementer(IBotFrames)
class Frames:
    """
    What a framing read from the bot.
    """

    def __init__(self) -> None:
        self.heard: list[Any] = []

    def acked(self, up_to: int) -> None:
        self.heard.append(("ack", up_to))

    def commanded(self, ref: str | int | None, command: Any) -> None:
        self.heard.append(("command", ref, command))


class FramingTests(SynchronousTestCase):
    """
    V1Framing and V2Framing.
    """

    def test_interface(self) -> None:
        """
        Both framings provide IFraming.
        """
        verifyObject(IFraming, V1Framing())
        verifyObject(IFraming, V2Framing())
        verifyObject(IBotFrames, Frames())

    def test_v1(self) -> None:
        """
        v1 writes the payload as it is, counts it taken once written, and
        ignores what the bot says.
        """
        framing = V1Framing()
        payload = b'{"op":0,"d":{"content":"caf\\u00e9"}}'
        self.assertIs(framing.frame(7, payload), payload)
        self.assertTrue(framing.delivered_when_written)
        self.assertIsNone(framing.refusal(None))
        frames = Frames()
        self.assertFalse(framing.received(b'{"op":"ack","id":1}', frames))
        self.assertEqual(frames.heard, [])

    def test_v2(self) -> None:
        """
        v2 wraps the payload's bytes untouched, reads cumulative acks and
        commands (a bad ref becomes null), and refuses a bot without the
        subprotocol.
        """
        framing = V2Framing()
        self.assertEqual(framing.frame(7, b'{"s":1}'), b'{"op":"dispatch","id":7,"d":{"s":1}}')
        self.assertIsNone(framing.refusal("dcc.v2"))
        self.assertIn("dcc.v2", str(framing.refusal(None)))
        frames = Frames()
        self.assertTrue(framing.received(b'{"op":"ack","id":3}', frames))
        self.assertTrue(framing.received(b'{"op":"command","ref":"r","d":{"op":3}}', frames))
        self.assertTrue(framing.received(b'{"op":"command","ref":[1],"d":null}', frames))
        self.assertFalse(framing.received(b'{"op":"ack","id":"3"}', frames))
        self.assertFalse(framing.received(b"not json", frames))
        self.assertEqual(
            frames.heard,
            [("ack", 3), ("command", "r", {"op": 3}), ("command", None, None)],
        )
        self.assertEqual(
            framing.command_result("r", 429, {"error": "slow", "retryAfter": 1.5}),
            b'{"op":"command_result","ref":"r","status":429,"error":"slow","retryAfter":1.5}',
        )


class SnapshotTests(SynchronousTestCase):
    """
    ChannelSnapshot.
    """

    def test_frozen(self) -> None:
        """
        A snapshot cannot change after it was taken.
        """
        snapshot = ChannelSnapshot("idle", 1, 2, 3, None)
        with self.assertRaises(FrozenInstanceError):
            snapshot.queued = 4  # type: ignore[misc]
