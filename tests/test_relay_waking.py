"""
The relay's side of waking bots in time: the typing indicator while a
message waits for a sleeping bot, followed to the moment the bot takes the
message.  (The wakeUrl: tests/test_wake_url.py.)
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from dccrelay.wake import GRACE, INTERVAL

from .relay_harness import RelayHarness


class TypingTests(SynchronousTestCase):
    """
    typingWhileWaking, through the relay.
    """

    def setUp(self) -> None:
        self.harness = RelayHarness()
        self.relay = self.harness.relay(self, typing_while_waking=True)

    def message(self, channel_id: str = "42") -> bytes:
        return self.harness.dispatch(
            "MESSAGE_CREATE", {"channel_id": channel_id, "content": "hi"}
        )

    def test_until_taken(self) -> None:
        """
        Typing shows while the message waits and stops once the bot took
        it, whatever else the channel's figures say.
        """
        self.message()
        self.harness.clock.advance(GRACE)
        self.assertEqual(self.harness.rest.typing, ["42"])
        self.harness.clock.advance(INTERVAL)
        self.assertEqual(self.harness.rest.typing, ["42", "42"])
        self.harness.channel.take()
        self.harness.clock.advance(INTERVAL)
        self.assertEqual(self.harness.rest.typing, ["42", "42"])

    def test_awake_bot(self) -> None:
        """
        A message the bot takes within the grace period shows no typing;
        the next one, which waits, does.
        """
        self.message()
        self.harness.channel.take()
        self.message("43")
        self.harness.clock.advance(GRACE)
        self.assertEqual(self.harness.rest.typing, ["43"])

    def test_newer_message_keeps_typing(self) -> None:
        """
        In one channel, typing lasts until the newest waiting message is
        taken.
        """
        self.message()
        self.message()
        self.harness.channel.take()
        self.harness.clock.advance(GRACE)
        self.assertEqual(self.harness.rest.typing, ["42"])
        self.harness.channel.take()
        self.harness.clock.advance(INTERVAL)
        self.assertEqual(self.harness.rest.typing, ["42"])

    def test_new_channel_same_payloads(self) -> None:
        """
        When a new dst replaces the delivery channel, what the old one held
        is recognised when the new one delivers it.
        """
        payload = self.message()
        self.successResultOf(self.relay.apply(self.harness.settings(
            typing_while_waking=True, dst="wss://elsewhere.example/dcc"
        )))
        new = self.harness.channel
        new.payloads.append(payload)
        new.take()
        self.harness.clock.advance(GRACE)
        self.assertEqual(self.harness.rest.typing, [])
