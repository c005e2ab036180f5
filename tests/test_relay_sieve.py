"""
Tests for the relay's sieve (:mod:`dccrelay.gateway.sieve`): dispatches of
types the bot's criteria cannot match are not parsed, yet counted, and
their sequence numbers kept for resuming.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from dccrelay.web.status_json import public_json

from .relay_harness import RelayHarness


class RelaySieveTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.harness = RelayHarness()

    def received(self) -> int:
        return int(public_json(self.harness.relay_.snapshot())["counters"]["received"])

    def test_other_types_counted_not_delivered(self) -> None:
        """
        With criteria on MESSAGE_CREATE, a TYPING_START passes unparsed: it
        is counted as received, its seq is where the shard would resume,
        and the next message is delivered as before.
        """
        relay = self.harness.relay(self, criteria={"t": "MESSAGE_CREATE"})
        self.assertEqual(relay.gateway.sieve.wanted, {
            b"MESSAGE_CREATE", b"READY", b"RESUMED", b"GUILD_MEMBERS_CHUNK", b"RATE_LIMITED",
        })
        self.harness.dispatch("TYPING_START", {"user_id": "5"})
        self.assertEqual(self.harness.channel.payloads, [])
        self.assertEqual(self.received(), 1)
        session = relay.shards[0].session
        assert session is not None
        self.assertEqual(session.seq, self.harness.seq + 1)
        [point] = relay.gateway.resume_points()
        self.assertEqual(point.seq, self.harness.seq + 1)
        message = self.harness.dispatch("MESSAGE_CREATE", {"content": "hi"})
        self.assertEqual(self.harness.channel.payloads, [message])
        self.assertEqual(self.received(), 2)

    def test_new_criteria_new_types(self) -> None:
        """Criteria changed to another type: that type is parsed and delivered."""
        relay = self.harness.relay(self, criteria={"t": "MESSAGE_CREATE"})
        self.successResultOf(relay.apply(self.harness.settings(criteria={"t": "TYPING_START"})))
        typing = self.harness.dispatch("TYPING_START", {"user_id": "5"})
        self.harness.dispatch("MESSAGE_CREATE", {"content": "hi"})
        self.assertEqual(self.harness.channel.payloads, [typing])

    def test_everything_parsed_when_untold(self) -> None:
        """
        Criteria that do not name their types, and a kept guild snapshot
        (which reads guild events), have every dispatch parsed.
        """
        relay = self.harness.relay(self, criteria={"d.content": "hi"})
        self.assertIsNone(relay.gateway.sieve.wanted)
        typing = self.harness.dispatch("TYPING_START", {"content": "hi"})
        self.assertEqual(self.harness.channel.payloads, [typing])
        # (the new session the snapshot needs opens later)
        relay.apply(self.harness.settings(criteria={"t": "MESSAGE_CREATE"}, guild_snapshot=True))
        self.assertIsNone(relay.gateway.sieve.wanted)
