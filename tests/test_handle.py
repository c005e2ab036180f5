"""
Tests for :mod:`dccrelay.relay.handle` and :mod:`dccrelay.relay.placement`: a bot run
here and one run elsewhere are the same kind of thing to the rest of the
node, and where bots run is one object's decision.
"""

from __future__ import annotations

import orjson
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from dccrelay.delivery import ChannelSnapshot
from dccrelay.gateway.commands import CommandError
from dccrelay.relay.handle import IRelayHandle
from dccrelay.relay.relay import Relay
from dccrelay.relay.remote import RemoteRelay
from dccrelay.relay.settings import RelaySettings
from dccrelay.relay.snapshots import (
    DispatchCounts,
    InteractionCounts,
    RelaySnapshot,
    ShardSnapshot,
    WakeEconomy,
    from_record,
    to_record,
)
from dccrelay.store import StoredRelay
from dccrelay.web.status_json import full_json, public_json
from tests.relay_harness import RelayHarness

SETTINGS = RelaySettings(
    token="token-0", dst="wss://bot.example/", client_secret="admin:secret-secret"
)


class HandleTests(SynchronousTestCase):
    """
    :class:`Relay` and :class:`RemoteRelay` both provide
    :class:`IRelayHandle`.
    """

    def test_local(self) -> None:
        """
        A relay run on this node provides the handle interface.
        """
        harness = RelayHarness()
        relay = Relay("alpha", SETTINGS, harness.env, on_fatal=lambda alias, why: None)
        self.assertTrue(verifyObject(IRelayHandle, relay))

    def test_remote(self) -> None:
        """
        A relay another node runs provides the handle interface.
        """
        self.assertTrue(verifyObject(IRelayHandle, RemoteRelay("alpha", SETTINGS)))


class RemoteRelayTests(SynchronousTestCase):
    """
    Changes to a bot another node runs only change what this node knows.
    """

    def test_changes(self) -> None:
        """
        ``apply`` enables with the new settings (keeping the last disable
        reason); ``disable`` remembers why; ``follow`` takes the stored
        registration as it is; ``start``, ``stop`` and ``forget`` do nothing.
        """
        remote = RemoteRelay("alpha", SETTINGS, enabled=False, disable_reason="old")
        other = RelaySettings(
            token="token-1", dst="wss://bot.example/", client_secret="admin:secret-secret"
        )
        self.successResultOf(remote.apply(other))
        self.assertEqual((remote.settings, remote.enabled, remote.disable_reason), (other, True, "old"))
        self.successResultOf(remote.disable("why"))
        self.assertEqual((remote.enabled, remote.disable_reason), (False, "why"))
        record = StoredRelay("alpha", SETTINGS.to_json(), False, "later")
        self.successResultOf(remote.follow(record))
        self.assertEqual(
            (remote.settings, remote.enabled, remote.disable_reason), (SETTINGS, False, "later")
        )
        for call in (remote.start, remote.stop, remote.forget):
            self.assertIsNone(self.successResultOf(call()))

    def test_snapshot_before_anything_published(self) -> None:
        """
        A bot whose owner published nothing yet shows its registration's
        state and owner, in the API's reduced shape (no interactions, wake
        or command counts); privately, its settings.
        """
        remote = RemoteRelay("alpha", SETTINGS, enabled=False, disable_reason="old", owner="b")
        self.assertEqual(public_json(remote.snapshot()), {
            "alias": "alpha", "enabled": False, "lastDisableReason": "old",
            "gatewayError": None, "node": "b", "shards": [],
            "delivery": {"state": "on another node"}, "queued": 0, "dropped": 0,
            "lastDeliveryError": None,
            "counters": {"received": 0, "matched": 0, "delivered": 0},
        })
        self.assertEqual(full_json(remote.snapshot(private=True))["settings"]["dst"], SETTINGS.dst)
        self.assertNotIn("settings", public_json(remote.snapshot()))

    def test_published_snapshot(self) -> None:
        """
        What the owner published travels as a record and comes back the
        same snapshot; the registration's own state (enabled, reason, owner)
        wins over it, being newer.
        """
        published = RelaySnapshot(
            alias="alpha", enabled=True, disable_reason=None, gateway_error="x",
            node="b", shards=(ShardSnapshot(0, "ready", "closed with code 4000"),),
            delivery=ChannelSnapshot("connected", 2, 1, 9, None),
            counters=DispatchCounts(10, 9, 9, 0, 0),
            interactions=InteractionCounts(1, 2, 0, 0),
            wake=WakeEconomy(1, 0.5, 0.5, (("0.25", 0), ("+Inf", 1)), 1, 0, 1),
        )
        record = orjson.loads(orjson.dumps(to_record(published)))
        self.assertEqual(from_record(record), published)
        remote = RemoteRelay("alpha", SETTINGS, enabled=False, disable_reason="later", owner="c")
        remote.published = from_record(record)
        shown = remote.snapshot()
        self.assertEqual((shown.enabled, shown.disable_reason, shown.node), (False, "later", "c"))
        self.assertEqual(shown.counters, published.counters)

    def test_commands_refused(self) -> None:
        """
        A gateway command for a bot another node runs is refused with 409,
        naming that node (or saying there is none yet).
        """
        remote = RemoteRelay("alpha", SETTINGS, owner="node-b")
        with self.assertRaises(CommandError) as caught:
            remote.send_command({"op": 3, "d": {}})
        self.assertEqual(caught.exception.status, 409)
        self.assertIn("relay node node-b", caught.exception.message)
        remote.owner = None
        with self.assertRaises(CommandError) as caught:
            remote.send_command({"op": 3, "d": {}})
        self.assertIn("no relay node yet", caught.exception.message)

    def test_guild_snapshot_refused(self) -> None:
        """
        The guild snapshot of a bot another node runs is that node's: asking
        this node fails with 409, naming it.
        """
        remote = RemoteRelay("alpha", SETTINGS, owner="node-b")
        error = self.failureResultOf(remote.guild_snapshot(), CommandError).value
        self.assertEqual(error.status, 409)  # type: ignore[attr-defined]
        self.assertIn("relay node node-b", error.message)  # type: ignore[attr-defined]


class PlacementTests(SynchronousTestCase):
    """
    A node alone and a node in a cluster differ only by their placement.
    """

    def test_provided(self) -> None:
        """
        :class:`Alone` and :class:`ClusterCoordinator` provide
        :class:`IPlacement`.
        """
        from twisted.internet.task import Clock

        from dccrelay.cluster.coordinator import ClusterCoordinator, ClusterNode
        from dccrelay.relay.placement import Alone, IPlacement
        from tests.memory_store import MemoryRelayStore

        store = MemoryRelayStore()
        self.assertTrue(verifyObject(IPlacement, Alone(store)))
        coordinator = ClusterCoordinator(ClusterNode("node-a"), store, store, Clock())
        self.assertTrue(verifyObject(IPlacement, coordinator))
