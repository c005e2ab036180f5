"""
Tests for the several-nodes mode of :mod:`dccrelay.relay.manager`: managers of
three nodes sharing one in-memory store, on one fake clock.
"""

from __future__ import annotations

from random import Random
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.cluster import coordinator
from dccrelay.cluster.coordinator import ClusterCoordinator, ClusterNode
from dccrelay.filters import compile_criteria
from dccrelay.relay.manager import RelayManager
from dccrelay.relay.relay import Relay, RelayEnvironment
from dccrelay.relay.remote import RemoteRelay
from dccrelay.relay.settings import RelaySettings
from dccrelay.store.leases import LeaseTiming
from dccrelay.web.status_json import public_json
from tests.memory_store import MemoryDatabase, MemoryRelayStore
from tests.relay_harness import FakeREST, RecordingChannel

TIMING = LeaseTiming()


def settings(n: int) -> RelaySettings:
    return RelaySettings(
        token=f"token-{n}", dst="wss://bot.example/", client_secret="admin:secret-secret"
    )


class Node:
    """
    One relay node: its manager and what it asked of Discord.
    """

    def __init__(self, name: str, clock: MemoryReactorClock, database: MemoryDatabase) -> None:
        self.name = name
        self.store = MemoryRelayStore(database)
        self.rest = FakeREST()
        self.gateway_urls: list[str] = []
        env = RelayEnvironment(
            clock=clock,
            random=Random(0),
            store=self.store,
            rest=self.rest,  # type: ignore[arg-type]
            connect=self.connect,
            compile_filter=compile_criteria,
            make_delivery=lambda **kwargs: RecordingChannel(**kwargs),
            retry_policy=lambda attempt: 1.0,
        )
        self.coordinator = ClusterCoordinator(ClusterNode(name, TIMING), self.store, self.store, clock)
        self.manager = RelayManager(env, self.store, 100, placement=self.coordinator)

    def connect(self, url: str, listener: Any) -> Deferred[Any]:
        self.gateway_urls.append(url)
        return Deferred()

    def running(self) -> set[str]:
        return {r.alias for r in self.manager.relays.values() if isinstance(r, Relay)}


class ClusterTests(SynchronousTestCase):
    """
    Each bot runs on exactly one live node; bots spread evenly, move
    gradually, and survive a node's death.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.database = MemoryDatabase(now=self.clock.seconds)
        self.nodes: list[Node] = []

    def start(self, name: str) -> Node:
        node = Node(name, self.clock, self.database)
        node.store.open()
        node.manager.startService()
        self.nodes.append(node)
        return node

    def settle(self, seconds: float = 10.0) -> None:
        for _ in range(int(seconds / 0.5)):
            self.clock.advance(0.5)

    def assert_each_bot_once(self, count: int) -> None:
        running = [alias for node in self.nodes if node.manager.running for alias in node.running()]
        self.assertEqual(sorted(running), sorted(set(running)))
        self.assertEqual(len(running), count)

    def register(self, node: Node, count: int) -> None:
        for n in range(count):
            self.successResultOf(node.manager.put(f"bot_{n}", settings(n)))

    def test_registration_through_any_node_runs_once(self) -> None:
        """
        A bot registered through node A runs on exactly one node, and every
        node knows it.
        """
        a = self.start("a")
        self.start("b")
        self.start("c")
        self.register(a, 1)
        self.settle(1)
        self.assert_each_bot_once(1)
        for node in self.nodes:
            self.assertIn("bot_0", node.manager.relays)

    def test_even_spread(self) -> None:
        """
        30 bots on three nodes: ten each.
        """
        a = self.start("a")
        self.start("b")
        self.start("c")
        self.settle(1)
        self.register(a, 30)
        self.settle(10)
        self.assert_each_bot_once(30)
        self.assertEqual(sorted(len(node.running()) for node in self.nodes), [10, 10, 10])

    def test_join_rebalances_gradually(self) -> None:
        """
        A node joining a busy one takes bots over a few at a time, each
        handed over resumably (stopped, lease released, claimed again).
        """
        a = self.start("a")
        self.register(a, 20)
        self.settle(3)
        self.assertEqual(len(a.running()), 20)
        b = self.start("b")
        self.clock.advance(TIMING.claim_interval)
        self.assertLess(len(b.running()), 10)
        self.assertGreater(len(b.running()) + len(a.running()), 0)
        self.settle(60)
        self.assertEqual((len(a.running()), len(b.running())), (10, 10))
        self.assert_each_bot_once(20)

    def test_takeover_after_death(self) -> None:
        """
        When a node dies without a word, the others claim its bots once its
        leases expire: within the lease ttl plus a claim interval.
        """
        a, c = self.start("a"), self.start("c")
        self.start("b")
        self.settle(1)
        self.register(a, 30)
        self.settle(5)
        victims = c.running()
        self.assertEqual(len(victims), 10)
        # Dies: its timers stop and it never renews again.
        c.coordinator._rounds.stop()
        c.coordinator._cancel_renew_deadline()
        c.manager._checkpoints.stop()
        self.nodes.remove(c)
        self.settle(TIMING.ttl + TIMING.claim_interval + 1)
        self.assert_each_bot_once(30)
        self.assertEqual(sorted(len(node.running()) for node in self.nodes), [15, 15])

    def test_clean_stop_hands_over_at_once(self) -> None:
        """
        A node stopping cleanly releases its leases; the others take its
        bots without waiting for expiry.
        """
        a, b = self.start("a"), self.start("b")
        self.settle(1)
        self.register(a, 10)
        self.settle(5)
        self.successResultOf(b.manager.stopService())
        self.nodes.remove(b)
        self.settle(TIMING.claim_interval + 0.5)
        self.assertEqual(len(a.running()), 10)

    def test_stops_bots_when_renewals_fail(self) -> None:
        """
        A node that cannot renew stops its bots before its leases expire.
        """
        a = self.start("a")
        self.register(a, 3)
        self.settle(3)
        self.assertEqual(len(a.running()), 3)

        def broken(*args: Any) -> Deferred[Any]:
            raise ConnectionError("database unreachable")

        a.store.renew_leases = broken  # type: ignore[method-assign]
        self.settle(TIMING.ttl - TIMING.margin)
        self.assertEqual(a.running(), set())
        for relay in a.manager.relays.values():
            self.assertIsInstance(relay, RemoteRelay)
        self.flushLoggedErrors(ConnectionError)

    def test_update_through_other_node(self) -> None:
        """
        New criteria given through a node that does not run the bot reach
        the node that does.
        """
        a, b = self.start("a"), self.start("b")
        self.settle(1)
        self.register(a, 1)
        self.settle(3)
        owner, other = (a, b) if "bot_0" in a.running() else (b, a)
        new = RelaySettings(
            token="token-0", dst="wss://bot.example/", client_secret="admin:secret-secret",
            criteria={"t": "MESSAGE_REACTION_ADD"},
        )
        self.successResultOf(other.manager.put("bot_0", new))
        self.assertEqual(owner.manager.relays["bot_0"].settings, new)

    def test_delete_through_other_node(self) -> None:
        """
        A bot deleted through another node stops where it runs.
        """
        a, b = self.start("a"), self.start("b")
        self.settle(1)
        self.register(a, 1)
        self.settle(3)
        owner, other = (a, b) if "bot_0" in a.running() else (b, a)
        self.successResultOf(other.manager.delete("bot_0"))
        self.assertNotIn("bot_0", owner.manager.relays)
        self.settle(3)
        self.assert_each_bot_once(0)

    def test_status_shared(self) -> None:
        """
        Every node shows every bot with the node that runs it, and the
        owner's published status (its shards and counters).
        """
        a, b = self.start("a"), self.start("b")
        self.settle(1)
        self.register(a, 2)
        self.settle(5)
        for node in (a, b):
            for alias in ("bot_0", "bot_1"):
                owner = next(n for n in (a, b) if alias in n.running())
                status = public_json(node.manager.relays[alias].snapshot())
                self.assertEqual(status["node"], owner.name)
                self.assertEqual(
                    [shard["state"] for shard in status["shards"]], ["connecting"]
                )

    def test_status_published_when_changed(self) -> None:
        """
        After a node's first publish, a round publishes only the statuses
        that changed, and withdraws those of bots that left the node; the
        other node still shows every bot as its owner last published it.
        """
        a, b = self.start("a"), self.start("b")
        self.settle(1)
        self.register(a, 6)
        self.settle(5)
        updates: list[tuple[str, set[str], set[str]]] = []
        original = MemoryRelayStore.update_statuses

        def spy(store: MemoryRelayStore, node_id: str, changed: Any, withdrawn: Any) -> Any:
            updates.append((node_id, set(changed), set(withdrawn)))
            return original(store, node_id, changed, withdrawn)

        self.patch(MemoryRelayStore, "update_statuses", spy)
        self.settle(2)
        self.assertTrue(updates)
        # nothing changed: nothing goes out
        self.assertEqual(
            [(changed, withdrawn) for _, changed, withdrawn in updates],
            [(set(), set())] * len(updates),
        )
        # one bot of a's changes: only its status goes out
        moved = sorted(a.running())[0]
        relay = a.manager.relays[moved]
        # what its shard does with a dispatch
        relay.dispatch_received(0, b'{"op":0,"s":5,"t":"TYPING_START","d":{}}', {
            "op": 0, "s": 5, "t": "TYPING_START", "d": {},
        })
        updates.clear()
        self.settle(2)
        self.assertIn(("a", {moved}, set()), updates)
        shown = public_json(b.manager.relays[moved].snapshot())
        self.assertEqual(shown["counters"]["received"], relay.counters.received)
        # a third node takes bots from the others: they withdraw them
        updates.clear()
        self.start("c")
        self.settle(10)
        withdrawn = set().union(*(w for node_id, _, w in updates if node_id in ("a", "b")))
        self.assertTrue(withdrawn)
        self.assertEqual(withdrawn, set(self.nodes[2].running()))

    def test_many_changed_published_in_slices(self) -> None:
        """
        When more bots changed than a slice holds, a round publishes them
        a slice per store call, and withdraws the bots that left with the
        last one.
        """
        self.patch(coordinator, "STATUS_SLICE", 2)
        a = self.start("a")
        self.register(a, 6)
        self.settle(5)
        calls: list[tuple[set[str], set[str]]] = []
        original = MemoryRelayStore.update_statuses

        def spy(store: MemoryRelayStore, node_id: str, changed: Any, withdrawn: Any) -> Any:
            calls.append((set(changed), set(withdrawn)))
            return original(store, node_id, changed, withdrawn)

        self.patch(MemoryRelayStore, "update_statuses", spy)
        moving = sorted(a.running())[:5]
        for alias in moving:
            a.manager.relays[alias].node = "elsewhere"
        gone = sorted(a.running())[5]
        moved = a.manager.move_away(gone)
        self.clock.advance(0)
        self.successResultOf(moved)
        shared = a.coordinator._share_statuses()
        for _ in range(5):
            self.clock.advance(0)
        self.successResultOf(shared)
        self.assertEqual([len(changed) for changed, _ in calls], [2, 2, 1])
        self.assertEqual(set().union(*(changed for changed, _ in calls)), set(moving))
        self.assertEqual([withdrawn for _, withdrawn in calls], [set(), set(), {gone}])

    def test_first_publish_in_slices(self) -> None:
        """
        A node's first publish replaces what it published before with a
        slice and adds the others a slice per store call, each after a
        reactor turn; every bot's status ends up published.
        """
        self.patch(coordinator, "STATUS_SLICE", 2)
        a = self.start("a")
        self.register(a, 5)
        self.settle(5)
        calls: list[tuple[str, int]] = []
        publish, update = MemoryRelayStore.publish_statuses, MemoryRelayStore.update_statuses

        def publish_spy(store: MemoryRelayStore, node_id: str, statuses: Any) -> Any:
            calls.append(("publish", len(statuses)))
            return publish(store, node_id, statuses)

        def update_spy(store: MemoryRelayStore, node_id: str, changed: Any, withdrawn: Any) -> Any:
            calls.append(("update", len(changed)))
            return update(store, node_id, changed, withdrawn)

        self.patch(MemoryRelayStore, "publish_statuses", publish_spy)
        self.patch(MemoryRelayStore, "update_statuses", update_spy)
        a.coordinator._published = None  # as after a failed publish
        shared = a.coordinator._share_statuses()
        for _ in range(10):
            self.clock.advance(0)
        self.successResultOf(shared)
        self.assertEqual(calls, [("publish", 2), ("update", 2), ("update", 1)])
        statuses = self.successResultOf(a.store.load_statuses())
        self.assertEqual(set(statuses), set(a.running()))

    def test_renewals_fail_for_less_than_ttl(self) -> None:
        """
        Renewals that fail past the stop deadline but not past the lease
        TTL: the node stops its bots in time, then, renewing again, finds
        it still holds their leases (nobody else may claim them) and runs
        them again itself.
        """
        a = self.start("a")
        self.register(a, 3)
        self.settle(3)
        real = a.store.renew_leases

        def broken(*args: Any) -> Deferred[Any]:
            raise ConnectionError("database unreachable")

        a.store.renew_leases = broken  # type: ignore[method-assign]
        # The last renew was at 2 s (rounds every 2 s): stopped at 9 s, the
        # leases would expire at 12 s, and the round at 10 s renews them.
        self.assertEqual(self.clock.seconds(), 3.0)
        self.settle(6.5)
        self.assertEqual(a.running(), set())
        a.store.renew_leases = real  # type: ignore[method-assign]
        self.settle(TIMING.claim_interval + 1)
        self.assertEqual(a.running(), {"bot_0", "bot_1", "bot_2"})
        self.assertEqual(self.database_owners(), {f"bot_{n}": "a" for n in range(3)})
        self.flushLoggedErrors(ConnectionError)

    def test_outage_longer_than_ttl_converges(self) -> None:
        """
        The database stops answering for longer than the lease TTL (calls
        wait, as for a connection from the pool, and are answered once it
        is back): the node stops its bots in time; the renew that was
        waiting is answered past its own deadline and is not trusted (on a
        stale deadline the bots claimed again were stopped, their leases
        held and renewed with the bots running nowhere); the node renews
        again and runs every bot, on its own leases.
        """
        a = self.start("a")
        self.register(a, 3)
        self.settle(3)
        outage = Outage(a.store, ("heartbeat_node", "renew_leases", "claim_leases"))
        self.settle(TIMING.ttl + 2)
        self.assertEqual(a.running(), set())
        outage.end()
        self.settle(3 * TIMING.claim_interval)
        self.assertEqual(a.running(), {"bot_0", "bot_1", "bot_2"})
        self.assertEqual(self.database_owners(), {f"bot_{n}": "a" for n in range(3)})

    def database_owners(self) -> dict[str, str]:
        return {
            alias: owner
            for alias, owner in self.successResultOf(self.nodes[0].store.lease_owners()).items()
        }


class Outage:
    """
    A store whose ``methods`` wait, from now until :meth:`end`, and then run.
    """

    def __init__(self, store: MemoryRelayStore, methods: tuple[str, ...]) -> None:
        self._store = store
        self._real = {name: getattr(store, name) for name in methods}
        self._waiting: list[tuple[str, tuple[Any, ...], Deferred[Any]]] = []
        for name in methods:
            setattr(store, name, self._waiter(name))

    def _waiter(self, name: str) -> Any:
        def wait(*args: Any) -> Deferred[Any]:
            d: Deferred[Any] = Deferred()
            self._waiting.append((name, args, d))
            return d

        return wait

    def end(self) -> None:
        for name, real in self._real.items():
            setattr(self._store, name, real)
        waiting, self._waiting = self._waiting, []
        for name, args, d in waiting:
            self._real[name](*args).chainDeferred(d)
