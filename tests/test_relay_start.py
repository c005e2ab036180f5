"""
Tests for how a relay opens its gateway session
(:meth:`dccrelay.relay.relay.Relay.start`): a relay with a stored session for
every shard resumes them without asking Discord anything first.
"""

from __future__ import annotations

from dataclasses import replace

from twisted.internet.defer import Deferred, fail
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from dccrelay.gateway import codes
from dccrelay.gateway.rest import DiscordHTTPError, GatewayInfo
from dccrelay.gateway.session import IGatewayOwner
from dccrelay.gateway.shard import IShardOwner
from dccrelay.relay.handle import IRelayHandle
from dccrelay.relay.manager import (
    START_BURST,
    START_RATE,
    START_SLICE,
    START_WINDOW,
    RelayManager,
)
from dccrelay.relay.relay import Relay
from dccrelay.store import SessionState
from dccrelay.web.status_json import public_json
from tests.memory_store import MemoryRelayStore
from tests.relay_harness import FakeConnection, FakeREST, RelayHarness

RESUME_URL = "wss://resume.example"


def stored(shard_id: int, count: int = 1) -> SessionState:
    return SessionState(shard_id, count, f"session{shard_id}", 41, RESUME_URL)


def resume(connection: FakeConnection) -> None:
    """
    Play Discord for a shard that resumes: HELLO, then RESUMED.
    """
    connection.frame({"op": 10, "d": {"heartbeat_interval": 41250}})
    connection.frame({"op": 0, "t": "RESUMED", "s": 42, "d": {}})


class FlakyREST(FakeREST):
    """
    ``GET /gateway/bot`` fails ``failures`` times, then answers.
    """

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def get_gateway_bot(self, token: str) -> Deferred[GatewayInfo]:
        if self.failures:
            self.calls += 1
            self.failures -= 1
            return fail(DiscordHTTPError(502, "bad gateway"))
        return super().get_gateway_bot(token)


class StartTests(SynchronousTestCase):
    """
    Stored sessions for every shard: RESUME at once; ``GET /gateway/bot`` only
    if a shard must IDENTIFY after all.
    """

    def setUp(self) -> None:
        self.harness = RelayHarness()

    def start(self, sessions: dict[int, SessionState], **settings: object) -> Relay:
        harness = self.harness
        relay = Relay(
            "cookout", harness.settings(**settings), harness.env,
            on_fatal=lambda alias, reason: harness.fatal.append(reason),
        )
        self.successResultOf(harness.store.save_relay("cookout", relay.settings.to_json()))
        for session in sessions.values():
            self.successResultOf(harness.store.save_session("cookout", session))
        self.successResultOf(relay.start())
        harness.clock.advance(0)
        return relay

    def until(self, condition: object, limit: float = 30.0) -> None:
        """
        Let time pass until ``condition()`` holds.
        """
        waited = 0.0
        while not condition():  # type: ignore[operator]
            self.assertLess(waited, limit, "gave up waiting")
            self.harness.clock.advance(0.25)
            waited += 0.25

    def hello(self, n: int = -1) -> None:
        self.harness.connections[n].frame({"op": 10, "d": {"heartbeat_interval": 41250}})

    def test_interfaces(self) -> None:
        """
        A relay is what its gateway session reports to and what the manager
        and the web layer hold; its session is what its shards report to.
        """
        relay = self.harness.relay(self)
        verifyObject(IGatewayOwner, relay)
        verifyObject(IRelayHandle, relay)
        verifyObject(IShardOwner, relay.gateway)

    def test_resumes_without_asking(self) -> None:
        """
        Every shard has a stored session: each connects to its resume URL and
        sends RESUME; Discord's REST API is not called.
        """
        self.start({0: stored(0, 2), 1: stored(1, 2)})
        self.assertEqual(self.harness.rest.calls, 0)
        self.assertEqual(len(self.harness.connections), 2)
        for n, connection in enumerate(self.harness.connections):
            self.assertTrue(connection.url.startswith(RESUME_URL))
            self.hello(n)
            [resume] = [p for p in connection.sent if p["op"] == 6]
            self.assertEqual((resume["d"]["session_id"], resume["d"]["seq"]), (f"session{n}", 41))

    def test_identify_after_refused_resume_asks_first(self) -> None:
        """
        A RESUME refused (op 9, not resumable) makes the relay ask Discord
        for its limits and gateway URL, once, before it IDENTIFYs there.
        """
        self.start({0: stored(0)})
        self.hello()
        self.harness.connections[-1].frame({"op": 9, "d": False})
        self.until(lambda: len(self.harness.connections) == 2)
        self.assertEqual(self.harness.rest.calls, 1)
        connection = self.harness.connections[-1]
        self.assertTrue(connection.url.startswith("wss://gateway.example"))
        self.hello()
        self.assertEqual([p["op"] for p in connection.sent if p["op"] in (2, 6)], [2])

    def test_asking_retried(self) -> None:
        """
        If Discord's REST API fails then, the relay asks again after a while
        and says why in the meantime.
        """
        self.harness.rest = FlakyREST(failures=1)
        self.harness.env = replace(self.harness.env, rest=self.harness.rest)
        relay = self.start({0: stored(0)})
        self.hello()
        self.harness.connections[-1].frame({"op": 9, "d": False})
        self.until(lambda: self.harness.rest.calls == 1)
        self.assertIn("HTTP 502", public_json(relay.snapshot())["gatewayError"])
        self.assertEqual(len(self.harness.connections), 1)
        self.until(lambda: len(self.harness.connections) == 2)
        self.assertEqual(self.harness.rest.calls, 2)
        self.hello()
        self.assertEqual([p["op"] for p in self.harness.connections[-1].sent if p["op"] == 2], [2])

    def test_missing_shard_session(self) -> None:
        """
        A shard without a stored session must IDENTIFY: the relay asks
        Discord first, as for a new bot, and still resumes the other.
        """
        self.harness.rest.shards = 2
        self.start({0: stored(0, 2)})
        self.assertEqual(self.harness.rest.calls, 1)
        urls = [c.url for c in self.harness.connections]
        self.assertTrue(urls[0].startswith(RESUME_URL))
        self.assertTrue(urls[1].startswith("wss://gateway.example"))

    def test_registered_shard_count_changed(self) -> None:
        """
        Sessions stored for another shard count than the registration's are
        not resumed.
        """
        self.start({0: stored(0)}, shards=2)
        self.assertEqual(self.harness.rest.calls, 1)
        self.until(lambda: len(self.harness.connections) == 2)
        self.assertTrue(all(c.url.startswith("wss://gateway.example")
                            for c in self.harness.connections))


class CountingSessionsStore(MemoryRelayStore):
    """
    Counts the calls that load sessions.
    """

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []

    def load_sessions(self, alias: str) -> Deferred[dict[int, SessionState]]:
        self.loads.append(alias)
        return super().load_sessions(alias)

    def load_all_sessions(self) -> Deferred[dict[str, dict[int, SessionState]]]:
        self.loads.append("*")
        return super().load_all_sessions()


class ManagerRestartTests(SynchronousTestCase):
    """
    A node restarted with bots in its store loads every bot's sessions in
    one call and resumes them at the pacer's pace, asking Discord nothing.
    """

    def store_resumable(self, store: MemoryRelayStore, harness: RelayHarness, count: int) -> None:
        """Store ``count`` bots, each with a session to resume."""
        for n in range(count):
            alias = f"bot{n}"
            self.successResultOf(store.save_relay(alias, harness.settings().to_json()))
            self.successResultOf(store.save_session(alias, stored(0)))

    def test_restart(self) -> None:
        """
        One load for all; a burst of connections at once, the rest one
        pacing interval later, while fewer than the window are still
        opening; every one to its resume URL.
        """
        store = CountingSessionsStore()
        harness = RelayHarness(store=store)
        store.open()
        first = min(START_BURST, START_WINDOW)
        count = first + 5
        self.store_resumable(store, harness, count)
        store.loads.clear()
        manager = RelayManager(harness.env, store, max_relays=100)
        manager.startService()
        self.addCleanup(manager.stopService)
        harness.clock.advance(0)
        self.assertEqual(store.loads, ["*"])
        self.assertEqual(len(harness.connections), first)
        if first < START_BURST:
            # The window is full: nothing more until some have resumed.
            harness.clock.advance(START_BURST / START_RATE)
            self.assertEqual(len(harness.connections), first)
            for connection in harness.connections[:5]:
                resume(connection)
        harness.clock.advance(START_BURST / START_RATE)
        self.assertEqual(len(harness.connections), count)
        self.assertEqual(harness.rest.calls, 0)
        self.assertTrue(all(c.url.startswith(RESUME_URL) for c in harness.connections))

    def test_window(self) -> None:
        """
        A session counts against the start window while it connects and
        resumes, not once it has resumed, nor while it waits to reconnect
        after a failed connection; start-up is over once none waits.
        """
        store = CountingSessionsStore()
        harness = RelayHarness(store=store)
        store.open()
        count = START_WINDOW + 2
        self.store_resumable(store, harness, count)
        manager = RelayManager(harness.env, store, max_relays=100)
        manager.startService()
        self.addCleanup(manager.stopService)
        interval = START_BURST / START_RATE
        harness.clock.advance(0)
        opened = len(harness.connections)
        self.assertLessEqual(opened, START_WINDOW)
        # Filling the window at the pace, then waiting.
        for _ in range(START_WINDOW):
            harness.clock.advance(interval)
        self.assertEqual(len(harness.connections), START_WINDOW)
        self.assertFalse(manager.started_up())
        # One resumes, one's connection drops before HELLO (it waits for its
        # retry): two places free.
        resume(harness.connections[0])
        harness.connections[1].drop()
        self.assertEqual(
            [r.opening for r in manager.local_relays()[:2]], [False, False]
        )
        harness.clock.advance(interval)
        self.assertEqual(len(harness.connections), count)
        self.assertTrue(manager.started_up())

    def test_stop_in_slices(self) -> None:
        """
        Stopping a node closes its bots' gateway connections a slice at a
        time, with a reactor turn between slices; every one resumably, and
        the stop is over once all are closed.
        """
        harness = RelayHarness()
        store = harness.store
        count = START_SLICE + 3
        self.store_resumable(store, harness, count)
        manager = RelayManager(harness.env, store, max_relays=100)
        manager.startService()
        while len(harness.connections) < count:
            harness.clock.advance(START_BURST / START_RATE)
            for connection in harness.connections:
                if not connection.sent:
                    resume(connection)
        stopped = manager.stopService()
        closed = [c for c in harness.connections if c.closed is not None]
        self.assertEqual(len(closed), START_SLICE)
        self.assertNoResult(stopped)
        harness.clock.advance(0)
        self.assertEqual(
            {c.closed for c in harness.connections}, {codes.RESUMABLE_CLOSE}
        )
        harness.clock.advance(0)
        self.successResultOf(stopped)

    def test_change_before_load_waits(self) -> None:
        """
        A registration change that comes before the manager has loaded the
        relays (the HTTP API listens before the store is open) waits for
        the load, so the bot is not made twice.
        """
        store = CountingSessionsStore()
        harness = RelayHarness(store=store)
        settings = harness.settings()
        self.successResultOf(store.save_relay("alpha", settings.to_json()))
        self.successResultOf(store.disable_relay("alpha", "why"))
        manager = RelayManager(harness.env, store, max_relays=100)
        put = manager.put("alpha", settings)
        self.assertNoResult(put)
        manager.startService()
        self.addCleanup(manager.stopService)
        self.assertIs(self.successResultOf(put), False)
        self.assertEqual(manager.local_relays(), [manager.relays["alpha"]])
        self.assertTrue(manager.relays["alpha"].enabled)


class RefusedCriteriaTests(SynchronousTestCase):
    """
    A registration stored under looser filter limits (an older version, or
    an operator who lowered them) is restored disabled, saying why, instead
    of vanishing from the node.
    """

    def test_restored_disabled(self) -> None:
        harness = RelayHarness()
        store = harness.store
        over_the_limits = harness.settings(
            criteria={"d.content": {"$regex": ".{1,1000}x{1,1000}z"}}
        )
        self.successResultOf(store.save_relay("alpha", over_the_limits.to_json()))
        self.successResultOf(store.save_relay("beta", harness.settings().to_json()))
        manager = RelayManager(harness.env, store, max_relays=100)
        manager.startService()
        self.addCleanup(manager.stopService)
        harness.clock.advance(START_BURST / START_RATE)

        alpha = manager.relays["alpha"]
        self.assertFalse(alpha.enabled)
        self.assertIn("its stored criteria are refused", alpha.disable_reason)
        self.assertIn("repetition count 1000", alpha.disable_reason)
        self.assertEqual(alpha.shards, [])
        stored_alpha = self.successResultOf(store.load_relays())
        self.assertEqual(
            [(r.alias, r.enabled, r.disable_reason) for r in stored_alpha if r.alias == "alpha"],
            [("alpha", False, alpha.disable_reason)],
        )
        # the other bot runs as usual
        self.assertTrue(manager.relays["beta"].enabled)
        self.assertEqual(len(harness.connections), 1)
