"""
The relay's side of waking bots in time: the typing indicator while a
message waits for a sleeping bot, followed to the moment the bot takes the
message, deferred interactions, and the wake economy figures.  (The
wakeUrl: tests/test_wake_url.py.)
"""

from __future__ import annotations

from typing import Any

import orjson
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import CollectorRegistry
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.gateway.rest import DiscordHTTPError
from dccrelay.ops.stats import LatencyHistogram
from dccrelay.waking.typing import GRACE, INTERVAL
from dccrelay.web.metrics import RelayCollector
from dccrelay.web.status_json import public_json

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


def interaction(kind: int = 2, number: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"90{number}",
        "application_id": "1111",
        "type": kind,
        "token": f"interaction-token-{number}",
        "channel_id": "42",
        "data": {"name": "cookout"},
        **extra,
    }


class DeferTests(SynchronousTestCase):
    """
    deferInteractions, through the relay.
    """

    def setUp(self) -> None:
        self.harness = RelayHarness(defer_after=2.0)

    def relay(self, **settings: Any) -> Any:
        settings.setdefault("defer_interactions", True)
        return self.harness.relay(self, **settings)

    def arrive(self, d: dict[str, Any]) -> bytes:
        return self.harness.dispatch("INTERACTION_CREATE", d)

    def test_deferred(self) -> None:
        """
        A slash command not taken within defer_after seconds is answered
        DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE, and the dispatch the bot gets
        says so as its first member; nothing else in it changes.
        """
        relay = self.relay()
        payload = self.arrive(interaction())
        self.harness.clock.advance(1.9)
        self.assertEqual(self.harness.rest.callbacks, [])
        self.harness.clock.advance(0.1)
        self.assertEqual(
            self.harness.rest.callbacks, [("901", "interaction-token-1", {"type": 5})]
        )
        sent = self.harness.channel.sent()
        self.assertTrue(sent.startswith(b'{"dcc":{"deferred":{"type":5,"ephemeral":false}},'))
        parsed = orjson.loads(sent)
        self.assertEqual(parsed.pop("dcc"), {"deferred": {"type": 5, "ephemeral": False}})
        self.assertEqual(parsed, orjson.loads(payload))
        self.assertEqual(public_json(relay.snapshot())["interactions"]["deferred"], 1)

    def test_ephemeral(self) -> None:
        """
        With deferEphemeral, the deferred response is ephemeral (flags 64).
        """
        self.relay(defer_ephemeral=True)
        self.arrive(interaction())
        self.harness.clock.advance(2)
        self.assertEqual(self.harness.rest.callbacks[0][2], {"type": 5, "data": {"flags": 64}})
        self.assertIn(b'"ephemeral":true', self.harness.channel.sent())

    def test_types(self) -> None:
        """
        A button gets DEFERRED_UPDATE_MESSAGE; a modal from a button too, a
        modal from a command the "thinking" kind; autocomplete is never
        deferred.
        """
        self.relay()
        self.arrive(interaction(3, 1))
        self.arrive(interaction(5, 2, message={"id": "77"}))
        self.arrive(interaction(5, 3))
        self.arrive(interaction(4, 4))
        self.harness.clock.advance(2)
        self.assertEqual(
            [(i, r["type"]) for i, _, r in self.harness.rest.callbacks],
            [("901", 6), ("902", 6), ("903", 5)],
        )

    def test_in_time(self) -> None:
        """
        An interaction the bot takes in time is never deferred, and its
        payload is never changed.
        """
        relay = self.relay()
        self.arrive(interaction())
        self.harness.clock.advance(1.5)
        self.harness.channel.take()
        self.harness.clock.advance(10)
        self.assertEqual(self.harness.rest.callbacks, [])
        self.assertEqual(self.harness.channel.sent(), self.harness.channel.payloads[-1])
        self.assertEqual(public_json(relay.snapshot())["interactions"]["inTime"], 1)

    def test_not_asked(self) -> None:
        """
        Without deferInteractions nothing is deferred.
        """
        self.relay(defer_interactions=False)
        self.arrive(interaction())
        self.harness.clock.advance(10)
        self.assertEqual(self.harness.rest.callbacks, [])

    def test_answered_first(self) -> None:
        """
        When Discord says the interaction was answered already (the bot got
        it just in time), nothing is marked and it is counted as such.
        """
        relay = self.relay()
        refusal = DiscordHTTPError(400, "Interaction has already been acknowledged.")
        refusal.code = 40060
        self.harness.rest.refuse = refusal
        payload = self.arrive(interaction())
        self.harness.clock.advance(2)
        self.assertEqual(self.harness.channel.sent(), payload)
        counts = public_json(relay.snapshot())["interactions"]
        self.assertEqual((counts["answeredFirst"], counts["deferFailed"]), (1, 0))

    def test_refused(self) -> None:
        """
        A deferral Discord refuses otherwise is counted as failed.
        """
        relay = self.relay()
        self.harness.rest.refuse = DiscordHTTPError(404, "Unknown interaction")
        self.arrive(interaction())
        self.harness.clock.advance(2)
        self.assertEqual(public_json(relay.snapshot())["interactions"]["deferFailed"], 1)

    def test_not_sent_says_why(self) -> None:
        """
        A deferral the relay could not even send (an id or token it cannot
        put in the URL) is counted as failed, and the log says why.
        """
        relay = self.relay()
        self.harness.rest.refuse = ValueError(  # type: ignore[assignment]
            "the interaction's token is empty or over 512 characters"
        )
        self.arrive(interaction())
        with capturedLogs() as events:
            self.harness.clock.advance(2)
        self.assertEqual(public_json(relay.snapshot())["interactions"]["deferFailed"], 1)
        said = [formatEvent(e) for e in events]
        self.assertTrue(any("token is empty or over 512" in line for line in said), said)

    def test_other_payloads_untouched(self) -> None:
        """
        Once something was deferred, other dispatches still go out as they
        came, the very same bytes.
        """
        self.relay()
        self.arrive(interaction())
        self.harness.clock.advance(2)
        message = self.harness.dispatch("MESSAGE_CREATE", {"channel_id": "42"})
        self.assertIs(self.harness.channel.sent(), message)


class WakeEconomyTests(SynchronousTestCase):
    """
    What waking a bot costs and gains, per bot: in its status and in
    /metrics.
    """

    def setUp(self) -> None:
        self.harness = RelayHarness(defer_after=2.0, wake_interval=60.0)
        self.relay = self.harness.relay(
            self, typing_while_waking=True, defer_interactions=True,
            wake_url="https://bot.example/healthz",
        )

    def message(self) -> bytes:
        return self.harness.dispatch("MESSAGE_CREATE", {"channel_id": "42"})

    def test_status(self) -> None:
        """
        Dispatches that matched while the bot was not connected are timed
        to their delivery; those for a connected bot are not; wake
        requests, typing calls and deferred interactions are counted.
        """
        self.message()
        self.harness.dispatch("INTERACTION_CREATE", interaction())
        self.harness.clock.advance(6.5)
        self.harness.channel.take(2)
        self.harness.channel.state = "connected"
        self.message()
        self.harness.channel.take()
        wake = public_json(self.relay.snapshot())["wake"]
        self.assertEqual(wake["asleepDeliveries"]["count"], 2)
        self.assertEqual(wake["asleepDeliveries"]["sumSeconds"], 13.0)
        self.assertEqual(wake["asleepDeliveries"]["maxSeconds"], 6.5)
        buckets = wake["asleepDeliveries"]["buckets"]
        self.assertEqual((buckets["5.0"], buckets["7.5"], buckets["+Inf"]), (0, 2, 2))
        self.assertEqual(wake["wakeRequests"], 1)
        self.assertEqual(wake["typingCalls"], 1)
        self.assertEqual(wake["deferredInteractions"], 1)

    def test_counts_survive_a_new_wake_url(self) -> None:
        """
        A new wakeUrl does not reset the count of wake requests.
        """
        self.message()
        self.successResultOf(self.relay.apply(self.harness.settings(
            typing_while_waking=True, defer_interactions=True,
            wake_url="https://bot.example/other",
        )))
        self.message()
        self.assertEqual(public_json(self.relay.snapshot())["wake"]["wakeRequests"], 2)

    def test_metrics(self) -> None:
        """
        /metrics has the bot's wake time histogram and its counters, and
        node totals.
        """
        self.message()
        self.harness.clock.advance(3)
        self.harness.channel.take()

        relay = self.relay

        class Manager:
            relays = {"cookout": relay}
            max_relays = 10
            delivery_latency = LatencyHistogram()

            def uptime(self) -> float:
                return 1.0

            def local_relays(self) -> list[Any]:
                return [relay]

        registry = CollectorRegistry()
        registry.register(RelayCollector(Manager()))  # type: ignore[arg-type]
        text = generate_latest(registry).decode()
        self.assertIn('dcc_bot_wake_seconds_bucket{alias="cookout",le="3.0"} 1.0', text)
        self.assertIn('dcc_bot_wake_seconds_count{alias="cookout"} 1.0', text)
        self.assertIn('dcc_bot_wake_requests_total{alias="cookout"} 1.0', text)
        self.assertIn('dcc_bot_typing_calls_total{alias="cookout"} 1.0', text)
        self.assertIn('dcc_bot_interactions_deferred_total{alias="cookout"} 0.0', text)
        self.assertIn("dcc_wake_requests_total 1.0", text)


class TypingOnlyWhileAsleepTests(SynchronousTestCase):
    """
    Typing is for a bot that is waking.
    """

    def test_connected_bot(self) -> None:
        """
        A message for a connected bot shows no typing, however long the
        bot takes to acknowledge it.
        """
        harness = RelayHarness()
        harness.relay(self, typing_while_waking=True)
        harness.channel.state = "connected"
        harness.dispatch("MESSAGE_CREATE", {"channel_id": "42"})
        harness.clock.advance(INTERVAL * 2)
        self.assertEqual(harness.rest.typing, [])
