"""
Tests for :mod:`dccrelay.waking.typing`: typing indicators while a bot wakes, on a
``MemoryReactorClock``.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.gateway.rest import DiscordHTTPError
from dccrelay.waking.typing import GRACE, INTERVAL, LIMIT, TypingWhileWaking


class TypingTests(SynchronousTestCase):
    """
    TypingWhileWaking.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.posts: list[tuple[float, str]] = []
        self.answer: Deferred[None] | None = None
        self.typing = TypingWhileWaking(self.clock, self.post, alias="cookout")
        self.delivered = False

    def post(self, channel_id: str) -> Deferred[None]:
        self.posts.append((self.clock.seconds(), channel_id))
        return self.answer if self.answer is not None else succeed(None)

    def is_delivered(self) -> bool:
        return self.delivered

    def run_for(self, seconds: float) -> None:
        for _ in range(int(seconds * 2)):
            self.clock.advance(0.5)

    def test_no_typing_for_an_awake_bot(self) -> None:
        """
        A message that reaches the bot within the grace period shows no
        typing.
        """
        self.typing.waiting("42", self.is_delivered)
        self.clock.advance(GRACE / 2)
        self.delivered = True
        self.run_for(60)
        self.assertEqual(self.posts, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_typing_until_delivered(self) -> None:
        """
        Past the grace period typing is triggered, then every INTERVAL
        seconds, and stops once the message has reached the bot.
        """
        self.typing.waiting("42", self.is_delivered)
        self.run_for(GRACE + 2 * INTERVAL)
        self.assertEqual(
            self.posts, [(GRACE, "42"), (GRACE + INTERVAL, "42"), (GRACE + 2 * INTERVAL, "42")]
        )
        self.delivered = True
        self.run_for(60)
        self.assertEqual(len(self.posts), 3)
        self.assertEqual(self.typing.channels, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_at_most_limit(self) -> None:
        """
        A bot that never wakes gets typing for at most LIMIT seconds.
        """
        self.typing.waiting("42", self.is_delivered)
        self.run_for(5 * LIMIT)
        self.assertTrue(all(when < LIMIT for when, _ in self.posts), self.posts)
        self.assertGreaterEqual(len(self.posts), 3)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_one_indicator_per_channel(self) -> None:
        """
        Several messages waiting in one channel share one indicator, which
        lasts until the newest reached the bot; other channels get their own.
        """
        first = [False]
        self.typing.waiting("42", lambda: first[0])
        self.clock.advance(0.5)
        self.typing.waiting("42", self.is_delivered)
        self.typing.waiting("7", self.is_delivered)
        self.clock.advance(GRACE)
        self.assertEqual(sorted(c for _, c in self.posts), ["42", "7"])
        first[0] = True
        self.run_for(INTERVAL)
        self.assertEqual(sorted(c for _, c in self.posts), ["42", "42", "7", "7"])

    def test_new_message_after_delivery(self) -> None:
        """
        A new message in a channel whose earlier one already reached the
        bot (its indicator not yet cleared) shows typing after the grace
        period, not at the old indicator's next beat.
        """
        self.typing.waiting("42", self.is_delivered)
        self.run_for(GRACE)
        self.delivered = True
        self.clock.advance(2)
        later = [False]
        self.typing.waiting("42", lambda: later[0])
        self.clock.advance(GRACE)
        self.assertEqual([channel for _, channel in self.posts], ["42", "42"])
        self.assertEqual(self.posts[-1][0], GRACE + 2 + GRACE)

    def test_refused(self) -> None:
        """
        When Discord refuses (no permission, rate limited) the indicator in
        that channel stops; nothing is raised.
        """
        self.answer = fail(DiscordHTTPError(403, "Missing Permissions"))
        self.typing.waiting("42", self.is_delivered)
        self.run_for(LIMIT)
        self.assertEqual(len(self.posts), 1)
        self.assertEqual(self.typing.channels, [])

    def test_stop(self) -> None:
        """
        stop() ends every indicator and leaves no timer.
        """
        self.typing.waiting("42", self.is_delivered)
        self.typing.stop()
        self.run_for(LIMIT)
        self.assertEqual(self.posts, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])
