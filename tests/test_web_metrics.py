"""
Tests for :mod:`dccrelay.web.metrics` (``GET /metrics``) and
:mod:`dccrelay.web.status_page` (``GET /``), against a real relay manager
whose neighbours (Discord's REST and gateway, the bot, the store) are in
memory and driven frame by frame on a fake clock.
"""

from __future__ import annotations

from random import Random
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.template import flattenString

from dccrelay.delivery import ChannelSnapshot
from dccrelay.filters import compile_criteria
from dccrelay.ops.stats import LatencyHistogram
from dccrelay.relay.manager import RelayManager
from dccrelay.relay.relay import RelayEnvironment
from dccrelay.relay.settings import parse_settings
from dccrelay.relay.snapshots import DispatchCounts, RelaySnapshot, ShardSnapshot
from dccrelay.web.metrics import MetricsPage
from dccrelay.web.status_page import StatusPage, format_duration, render_status
from tests.memory_store import MemoryRelayStore
from tests.relay_harness import FakeREST

TOKEN = "MTExMTExMTExMTExMTExMTEx.Gg1234.metrics-token"
SECRET = "admin:bWV0cmljcy1zZWNyZXQ="
HELLO = orjson.dumps({"op": 10, "d": {"heartbeat_interval": 41250}})


def body(**changes: Any) -> dict[str, Any]:
    return {
        "token": TOKEN,
        "intents": 4608,
        "criteria": {"t": "MESSAGE_CREATE", "d.content": {"$regex": "^cookout"}},
        "dst": "wss://bot.example/dcc/v1/cookout",
        "clientSecret": SECRET,
        **changes,
    }


def dispatch(s: int, content: str) -> bytes:
    return orjson.dumps(
        {"op": 0, "s": s, "t": "MESSAGE_CREATE", "d": {"content": content, "channel_id": "1"}}
    )


class FakeConnection:
    """
    A gateway connection that the other side closes at once when asked.
    """

    def __init__(self, listener: Any, clock: MemoryReactorClock) -> None:
        self.listener = listener
        self.clock = clock

    def send(self, payload: dict[str, Any]) -> None:
        pass

    def close(self, code: int) -> None:
        self.clock.callLater(0, self.listener.connection_closed, code, "")

    def abort(self) -> None:
        self.clock.callLater(0, self.listener.connection_closed, None, "")


class CountingChannel:
    """
    A delivery channel whose figures the test sets.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.payloads: list[bytes] = []
        self.figures = {"state": "idle", "queued": 0, "dropped": 0, "delivered": 0,
                        "lastError": None}

    def start(self) -> None:
        pass

    @property
    def connected(self) -> bool:
        return self.figures["state"] == "connected"

    def deliver(self, payload: bytes) -> None:
        self.payloads.append(payload)

    def stop(self) -> Deferred[None]:
        return succeed(None)

    def pending(self) -> list[bytes]:
        return []

    def snapshot(self) -> ChannelSnapshot:
        figures: dict[str, Any] = self.figures
        return ChannelSnapshot(
            figures["state"], figures["queued"], figures["dropped"], figures["delivered"],
            figures["lastError"],
        )


class Node:
    """
    A relay manager with in-memory neighbours.
    """

    def __init__(self, case: SynchronousTestCase) -> None:
        self.clock = MemoryReactorClock()
        self.clock.advance(1000)
        self.rest = FakeREST()
        self.connections: list[FakeConnection] = []
        self.channels: dict[str, CountingChannel] = {}
        self.latency = LatencyHistogram()
        store = MemoryRelayStore()
        env = RelayEnvironment(
            clock=self.clock,
            random=Random(0),
            store=store,
            rest=self.rest,  # type: ignore[arg-type]
            connect=self.connect,
            compile_filter=compile_criteria,
            make_delivery=self.make_delivery,
            retry_policy=lambda attempt: 1.0,
        )
        self.manager = RelayManager(env, store, max_relays=10, delivery_latency=self.latency)
        store.open()
        self.manager.startService()
        case.addCleanup(self.manager.stopService)
        self.case = case

    def connect(self, url: str, listener: Any) -> Deferred[Any]:
        connection = FakeConnection(listener, self.clock)
        self.connections.append(connection)
        return succeed(connection)

    def make_delivery(self, **kwargs: Any) -> CountingChannel:
        channel = CountingChannel(**kwargs)
        self.channels[kwargs["alias"]] = channel
        return channel

    def settle(self, d: Deferred[Any]) -> Any:
        """
        Let connections close, then the result of ``d``.
        """
        self.clock.advance(0)
        return self.case.successResultOf(d)

    def register(self, alias: str, **changes: Any) -> None:
        settings = parse_settings(
            body(**changes), compile_filter=compile_criteria, allow_private_dst=False
        )
        self.settle(self.manager.put(alias, settings))

    def ready(self, alias: str, shard_id: int = 0) -> Any:
        shard = self.manager.relays[alias].shards[shard_id]
        shard.frame_received(HELLO)
        shard.frame_received(
            orjson.dumps({"op": 0, "s": 1, "t": "READY", "d": {
                "session_id": f"s-{alias}-{shard_id}",
                "resume_gateway_url": "wss://resume.example"}})
        )
        return shard


class MetricsTests(SynchronousTestCase):
    """
    ``GET /metrics`` reads the live relays in Prometheus' text format.
    """

    def setUp(self) -> None:
        self.node = Node(self)
        root = Resource()
        root.putChild(b"metrics", MetricsPage(self.node.manager))
        self.treq = StubTreq(root)

    def scrape(self) -> dict[str, Any]:
        """
        The samples of one scrape, as ``{name: {labels: value}}``.
        """
        response = self.successResultOf(self.treq.get("http://relay.example/metrics"))
        self.assertEqual(response.code, 200)
        self.assertTrue(
            response.headers.getRawHeaders("Content-Type")[0].startswith("text/plain")
        )
        text = self.successResultOf(response.text())
        for hidden in (TOKEN, SECRET, "bot.example", "cookout bring"):
            self.assertNotIn(hidden, text)
        samples: dict[str, Any] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = tuple(sorted(sample.labels.items()))
                samples.setdefault(sample.name, {})[key] = sample.value
        return samples

    def test_relays_and_shards_by_state(self) -> None:
        """
        Relays are counted enabled and disabled; shards by state, every
        state present even at zero.
        """
        node = self.node
        node.register("cookout")
        node.register("other")
        node.ready("cookout")
        node.settle(node.manager.disable("other", "Discord rejected the token"))
        samples = self.scrape()
        self.assertEqual(
            samples["dcc_relays"], {(("state", "enabled"),): 1, (("state", "disabled"),): 1}
        )
        shards = samples["dcc_shards"]
        self.assertEqual(shards[(("state", "ready"),)], 1)
        self.assertEqual(shards[(("state", "waiting for identify slot"),)], 0)
        self.assertEqual(sum(shards.values()), 1)
        self.assertEqual(samples["dcc_bot_enabled"][(("alias", "other"),)], 0)
        self.assertEqual(samples["dcc_relays_max"][()], 10)
        self.assertEqual(samples["dcc_uptime_seconds"][()], 0)
        node.clock.advance(42)
        self.assertEqual(self.scrape()["dcc_uptime_seconds"][()], 42)

    def test_dispatch_counters(self) -> None:
        """
        Received, matched, delivered and dropped, per bot (by alias) and in
        total, with the queue depth.
        """
        node = self.node
        node.register("cookout")
        shard = node.ready("cookout")
        shard.frame_received(dispatch(2, "cookout bring buns"))
        shard.frame_received(dispatch(3, "just chatting"))
        channel = node.channels["cookout"]
        self.assertEqual(len(channel.payloads), 1)
        channel.figures.update(delivered=1, queued=4, dropped=2)
        samples = self.scrape()
        bot = (("alias", "cookout"),)
        self.assertEqual(
            [samples[f"dcc_bot_dispatches_{k}_total"][bot]
             for k in ("received", "matched", "delivered", "dropped")],
            [2, 1, 1, 2],
        )
        self.assertEqual(
            [samples[f"dcc_dispatches_{k}_total"][()]
             for k in ("received", "matched", "delivered", "dropped")],
            [2, 1, 1, 2],
        )
        self.assertEqual(samples["dcc_bot_queued"][bot], 4)
        self.assertEqual(samples["dcc_queued"][()], 4)

    def test_totals_survive_deletion_and_new_channels(self) -> None:
        """
        Node totals never go down: a deleted bot's counts stay in them, and
        a bot's counts survive a new delivery channel (a rotated secret).
        """
        node = self.node
        node.register("cookout")
        node.register("other")
        for alias in ("cookout", "other"):
            node.ready(alias).frame_received(dispatch(2, "cookout bring buns"))
            node.channels[alias].figures.update(delivered=1)
        self.scrape()
        # More arrives for "other" after that scrape, then it is deleted.
        node.manager.relays["other"].shards[0].frame_received(dispatch(3, "cookout more"))
        node.settle(node.manager.delete("other"))
        node.register("cookout", clientSecret="admin:cm90YXRlZC1zZWNyZXQ=")
        samples = self.scrape()
        self.assertEqual(samples["dcc_dispatches_received_total"][()], 3)
        self.assertEqual(samples["dcc_dispatches_delivered_total"][()], 2)
        self.assertNotIn((("alias", "other"),), samples["dcc_bot_dispatches_received_total"])
        # The new channel has delivered nothing yet; the bot's count holds.
        self.assertEqual(
            samples["dcc_bot_dispatches_delivered_total"][(("alias", "cookout"),)], 1
        )

    def test_reconnects_by_close_code(self) -> None:
        """
        Gateway connections that end are counted by close code; a lost
        connection without a close frame is "none"; the relay's own stop is
        not counted.
        """
        node = self.node
        node.register("cookout")
        shard = node.ready("cookout")
        shard.connection_closed(4000, "unknown error")
        node.clock.advance(5)
        node.ready("cookout")
        shard.connection_closed(None, "")
        node.clock.advance(5)
        node.ready("cookout")
        shard.connection_closed(4000, "")
        node.clock.advance(5)
        samples = self.scrape()
        self.assertEqual(
            samples["dcc_gateway_reconnects_total"],
            {(("code", "4000"),): 2, (("code", "none"),): 1},
        )
        node.settle(node.manager.disable("cookout", "a reason"))
        samples = self.scrape()
        self.assertEqual(sum(samples["dcc_gateway_reconnects_total"].values()), 3)

    def test_identify_waits(self) -> None:
        """
        A shard that must wait for the bot's identify slot is counted, with
        how long it waited.
        """
        node = self.node
        node.rest.shards = 2
        node.register("cookout")
        samples = self.scrape()
        self.assertEqual(samples["dcc_identify_waits_total"][()], 1)
        self.assertEqual(
            samples["dcc_shards"][(("state", "waiting for identify slot"),)], 1
        )
        node.ready("cookout", 0)
        node.clock.advance(6)
        samples = self.scrape()
        self.assertEqual(samples["dcc_identify_waits_total"][()], 1)
        self.assertGreater(samples["dcc_identify_wait_seconds_total"][()], 5)

    def test_latency_histogram(self) -> None:
        """
        Delivery latency is a histogram with cumulative buckets.
        """
        for seconds in (0.0005, 0.02, 0.02, 12.0, 1000.0):
            self.node.latency.observe(seconds)
        samples = self.scrape()
        buckets = samples["dcc_delivery_latency_seconds_bucket"]
        self.assertEqual(buckets[(("le", "0.001"),)], 1)
        self.assertEqual(buckets[(("le", "0.025"),)], 3)
        self.assertEqual(buckets[(("le", "30.0"),)], 4)
        self.assertEqual(buckets[(("le", "+Inf"),)], 5)
        self.assertEqual(samples["dcc_delivery_latency_seconds_count"][()], 5)
        self.assertAlmostEqual(
            samples["dcc_delivery_latency_seconds_sum"][()], 1012.0405, places=6
        )

    def test_process_metrics(self) -> None:
        """
        The process' own figures (memory, CPU) come along.
        """
        self.assertIn("process_resident_memory_bytes", self.scrape())


class FakeRelay:
    """A bot whose snapshot is made from the API JSON it should render as."""

    def __init__(self, status: dict[str, Any]) -> None:
        self.status = status

    def snapshot(self, private: bool = False) -> RelaySnapshot:
        s = self.status
        return RelaySnapshot(
            alias=s["alias"],
            enabled=s["enabled"],
            disable_reason=s["lastDisableReason"],
            gateway_error=s["gatewayError"],
            node=s.get("node"),
            shards=tuple(ShardSnapshot(x["id"], x["state"], x["lastClose"]) for x in s["shards"]),
            delivery=ChannelSnapshot(
                s["delivery"]["state"], s["queued"], s["dropped"], s["counters"]["delivered"],
                s["lastDeliveryError"],
            ),
            counters=DispatchCounts(**s["counters"]),
        )


class FakeManager:
    def __init__(self, *statuses: dict[str, Any]) -> None:
        self.relays = {s["alias"]: FakeRelay(s) for s in statuses}
        self.max_relays = 5

    def uptime(self) -> float | None:
        return 3 * 86400 + 4 * 3600 + 5


def status(alias: str, **changes: Any) -> dict[str, Any]:
    return {
        "alias": alias,
        "enabled": True,
        "lastDisableReason": None,
        "gatewayError": None,
        "shards": [{"id": 0, "state": "ready", "lastClose": None}],
        "delivery": {"state": "connected"},
        "queued": 0,
        "dropped": 0,
        "lastDeliveryError": None,
        "counters": {"received": 5, "matched": 3, "delivered": 2},
        **changes,
    }


class StatusPageTests(SynchronousTestCase):
    """
    ``GET /`` shows a person each bot's state in colour, its counters and
    its last reasons, and the node's uptime, everything escaped.
    """

    def render(self, manager: Any) -> str:
        html: bytes = self.successResultOf(flattenString(None, render_status(manager)))
        return html.decode("utf-8")

    def test_states_and_counters(self) -> None:
        """
        Enabled bots and ready shards are green, disabled bots red; counters,
        totals and uptime are shown.
        """
        html = self.render(FakeManager(
            status("cookout"),
            status("sleepy", enabled=False, lastDisableReason="Discord rejected the token",
                   shards=[], delivery={"state": "idle"}, dropped=7),
        ))
        self.assertIn('<span class="state ok">enabled</span>', html)
        self.assertIn('<span class="state bad">disabled</span>', html)
        self.assertIn('0: <span class="state ok">ready</span>', html)
        self.assertIn('<span class="state idle">idle</span>', html)
        self.assertIn('<span class="state bad">7</span>', html)
        self.assertIn("disabled: Discord rejected the token", html)
        self.assertIn("3 d 4 h", html)
        self.assertIn("2 of at most 5: 1 enabled, 1 disabled", html)
        self.assertIn("10 received, 6 matched, 4 delivered, 7 dropped, 0 queued", html)

    def test_reasons(self) -> None:
        """
        Every last reason is listed: why the bot was disabled (kept after it
        was re-enabled), the gateway's, each shard's and delivery's.
        """
        html = self.render(FakeManager(status(
            "cookout",
            lastDisableReason="invalid intents",
            gatewayError="GET /gateway/bot failed: HTTP 502",
            shards=[{"id": 0, "state": "reconnecting", "lastClose": "closed with code 4000"}],
            lastDeliveryError="bot answered HTTP 503 to the websocket handshake",
        )))
        for reason in (
            "last disabled: invalid intents",
            "gateway: GET /gateway/bot failed: HTTP 502",
            "shard 0: closed with code 4000",
            "delivery: bot answered HTTP 503 to the websocket handshake",
        ):
            self.assertIn(f"<li>{reason}</li>", html)
        self.assertIn('<span class="state busy">reconnecting</span>', html)

    def test_escaping(self) -> None:
        """
        An alias cannot inject HTML, and reasons holding '<' (from a close
        frame or a bot's host) are shown as text.
        """
        html = self.render(FakeManager(status(
            "<script>alert(1)</script>",
            shards=[{"id": 0, "state": "<b>odd</b>", "lastClose": "closed (<img src=x>)"}],
            lastDeliveryError='bot said "<html>" & left',
        )))
        self.assertNotIn("<script>", html)
        self.assertNotIn("<img", html)
        self.assertNotIn("<b>", html)
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;", html)
        self.assertIn("closed (&lt;img src=x&gt;)", html)
        self.assertIn("bot said \"&lt;html&gt;\" &amp; left", html)

    def test_empty(self) -> None:
        """
        With no bots the page says so.
        """
        self.assertIn("No bots are registered yet.", self.render(FakeManager()))

    def test_durations(self) -> None:
        """
        Uptime reads as a person would say it.
        """
        self.assertEqual(
            [format_duration(s) for s in (5, 65, 3 * 3600 + 60, 2 * 86400 + 7200)],
            ["5 s", "1 min 5 s", "3 h 1 min", "2 d 2 h"],
        )

    def test_served_without_secrets(self) -> None:
        """
        Served from a real manager, the page is HTML with no token, secret
        or dst in it.
        """
        node = Node(self)
        node.register("cookout")
        root = Resource()
        root.putChild(b"", StatusPage(node.manager))
        response = self.successResultOf(StubTreq(root).get("http://relay.example/"))
        self.assertEqual(
            response.headers.getRawHeaders("Content-Type"), ["text/html; charset=utf-8"]
        )
        html = self.successResultOf(response.text())
        self.assertTrue(html.startswith("<!DOCTYPE html>"))
        self.assertIn("cookout", html)
        for hidden in (TOKEN, SECRET, "bot.example"):
            self.assertNotIn(hidden, html)
