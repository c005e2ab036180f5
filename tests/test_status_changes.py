"""
A cluster node's lease round takes a bot's status only when the relay's
``status_changes`` moved (:mod:`dccrelay.cluster.coordinator`): each public
field of the published status, changed through the code that changes it in
production, must reach the next round.

Each test drives one relay (real shards on fake gateway connections, real
delivery channels against an in-memory bot) and runs the coordinator's
status share after every step, checking each time that what the node
published is the bot's status now.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import orjson
from twisted.internet.defer import Deferred, fail, succeed
from twisted.test.iosim import ConnectionCompleter
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request
from treq.testing import StubTreq

from dccrelay.client.receiver import DispatchReceiverFactory
from dccrelay.cluster.coordinator import ClusterCoordinator, ClusterNode
from dccrelay.delivery.config import DeliveryConfig
from dccrelay.delivery.factory import DeliveryFactory
from dccrelay.delivery.outbox import OutboxWriter
from dccrelay.gateway.limiter import IDENTIFY_WINDOW, SAFETY_MARGIN
from dccrelay.gateway.rest import DiscordHTTPError, GatewayInfo
from dccrelay.relay.relay import Relay
from dccrelay.waking.interactions import ALREADY_ACKNOWLEDGED
from dccrelay.relay.snapshots import to_record
from dccrelay.store import GuildSnapshotUpdate
from tests.memory_store import MemoryRelayStore
from tests.relay_harness import READY_USER, SECRET, FakeConnection, FakeREST, RelayHarness

PORT = 8080
WS_DST = f"ws://bot.example:{PORT}/dcc"
HOOK_DST = "https://bot.example/hook"
IDLE = 30.0


class PublishingStore(MemoryRelayStore):
    """
    The memory store, keeping the status each alias was last published
    with; the answers of the calls named in ``holding`` wait for
    :meth:`release`, as a database's answers come on a later turn.
    """

    def __init__(self) -> None:
        super().__init__()
        self.published: dict[str, dict[str, Any]] = {}
        self.rounds_changed: list[set[str]] = []
        self.holding: set[str] = set()
        self._held: list[tuple[Deferred[Any], Deferred[Any]]] = []

    def _answer(self, name: str, answer: Deferred[Any]) -> Deferred[Any]:
        if name not in self.holding:
            return answer
        waiting: Deferred[Any] = Deferred()
        self._held.append((answer, waiting))
        return waiting

    def release(self) -> None:
        """The held answers arrive."""
        held, self._held = self._held, []
        for answer, waiting in held:
            answer.chainDeferred(waiting)

    def outbox_ack(self, acks: Any, batches: Any = None) -> Deferred[dict[str, int]]:
        # held: removals; a batch recorded before it is sent goes through
        answer = super().outbox_ack(acks, batches)
        return self._answer("outbox_ack", answer) if acks else answer

    def load_guild_snapshot(self, alias: str) -> Deferred[dict[str, bytes]]:
        return self._answer("load_guild_snapshot", super().load_guild_snapshot(alias))

    def outbox_count(self, alias: str) -> Deferred[int]:
        return self._answer("outbox_count", super().outbox_count(alias))

    def outbox_trim(self, *args: Any) -> Deferred[Any]:
        return self._answer("outbox_trim", super().outbox_trim(*args))

    def publish_statuses(self, node_id: str, statuses: Any) -> Deferred[None]:
        self.published = dict(statuses)
        return super().publish_statuses(node_id, statuses)

    def update_statuses(self, node_id: str, changed: Any, withdrawn: Any) -> Deferred[None]:
        self.published.update(changed)
        self.rounds_changed.append(set(changed))
        return super().update_statuses(node_id, changed, withdrawn)


class OneNode:
    """What a lease round asks of the manager: the relays this node runs."""

    def __init__(self) -> None:
        self.relays: list[Relay] = []

    def local_relays(self) -> list[Relay]:
        return list(self.relays)

    def remote_relays(self) -> list[Any]:
        return []

    def breathe(self) -> Deferred[None]:
        return succeed(None)


class LaterREST(FakeREST):
    """
    Discord's REST API, whose ``GET /gateway/bot`` fails while ``down``;
    with ``later``, it answers only when the test calls :meth:`answer`.
    """

    down = False
    later = False

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[Deferred[GatewayInfo]] = []

    def get_gateway_bot(self, token: str) -> Deferred[GatewayInfo]:
        if self.later:
            asked: Deferred[GatewayInfo] = Deferred()
            self.asked.append(asked)
            return asked
        return self._gateway_answer()

    def _gateway_answer(self) -> Deferred[GatewayInfo]:
        if self.down:
            return fail(DiscordHTTPError(500, "server error"))
        return super().get_gateway_bot("")

    def answer(self) -> None:
        asked, self.asked = self.asked, []
        for d in asked:
            self._gateway_answer().chainDeferred(d)


class LaterConnection(FakeConnection):
    """A gateway connection whose close completes only when the test drops it."""

    def close(self, code: int) -> None:
        self.closed = code

    def abort(self) -> None:
        pass


class Hook(Resource):
    """A webhook bot answering every batch with ``code``."""

    isLeaf = True
    code = 200

    def render_POST(self, request: Request) -> bytes:
        request.setResponseCode(self.code)
        return b""


class StatusHarness(RelayHarness):
    """
    :class:`RelayHarness` with the production delivery channels: v1 over
    websockets to an in-memory bot, or webhooks through ``StubTreq``.
    """

    def __init__(self) -> None:
        self.hook = Hook()
        self.http = StubTreq(self.hook)
        super().__init__(store=PublishingStore())
        self.rest = LaterREST()
        self.env = replace(self.env, rest=self.rest)  # type: ignore[arg-type]
        self.received: list[bytes] = []
        self.completer = ConnectionCompleter(self.clock)
        self.clock.listenTCP(
            PORT, DispatchReceiverFactory(SECRET, self.received.append, reactor=self.clock)
        )
        #: gateway connections fail while set
        self.refuse_gateway = False
        #: while set, gateway connections open (or fail) when the test
        #: calls :meth:`dialled`, and close when it drops them
        self.later = False
        self.dialling: list[tuple[Deferred[Any], Any]] = []
        self.factory = DeliveryFactory(
            self.clock, store=self.store, writer=OutboxWriter(self.store, self.clock),
            http=self.http, config=DeliveryConfig(idle_timeout=IDLE, queue_max_age=None),
        )

    def make_delivery(self, **kwargs: Any) -> Any:
        return self.factory(**kwargs)

    def connect(self, url: str, listener: Any) -> Deferred[Any]:
        if self.later:
            dialling: Deferred[Any] = Deferred()
            self.dialling.append((dialling, listener))
            return dialling
        if self.refuse_gateway:
            return fail(ConnectionRefusedError("refused"))
        return super().connect(url, listener)

    def dialled(self) -> None:
        """The connections being opened open, or fail (``refuse_gateway``)."""
        dialling, self.dialling = self.dialling, []
        for d, listener in dialling:
            if self.refuse_gateway:
                d.errback(ConnectionRefusedError("refused"))
            else:
                connection = LaterConnection(listener, self.clock)
                self.connections.append(connection)
                d.callback(connection)


class StatusChangesTests(SynchronousTestCase):
    """
    Every public field of a bot's status, changed the way production
    changes it, is published by the next lease round.
    """

    def setUp(self) -> None:
        self.harness = StatusHarness()
        self.clock = self.harness.clock
        self.store: PublishingStore = self.harness.store  # type: ignore[assignment]
        self.successResultOf(self.store.save_relay("cookout", {}))
        self.node = OneNode()
        self.coordinator = ClusterCoordinator(
            ClusterNode("a"), self.store, self.store, self.clock
        )
        self.coordinator.attach(self.node)  # type: ignore[arg-type]

    def relay(self, greet: bool = True, **settings: Any) -> Relay:
        """A started relay on this node; with ``greet``, its shard ready."""
        harness = self.harness

        def fatal(alias: str, reason: str) -> None:
            # what the manager does (RelayManager.disable)
            relay.disable(reason)

        relay = Relay("cookout", harness.settings(**settings), harness.env, on_fatal=fatal)
        relay.node = "a"
        self.node.relays.append(relay)
        # (fires once the gateway session is opening: later, if Discord's
        # REST answers later)
        relay.start()
        self.step()
        if greet:
            self.greet()
        return relay

    def greet(self, shard: int = -1) -> None:
        connection = self.harness.connections[shard]
        connection.frame({"op": 10, "d": {"heartbeat_interval": 41250}})
        self.step()
        connection.frame({
            "op": 0, "t": "READY", "s": 1,
            "d": {"session_id": "s1", "resume_gateway_url": "wss://resume.example",
                  "user": READY_USER},
        })
        self.step()

    def round(self) -> None:
        """A lease round's status share; then what is published is the status now."""
        self.successResultOf(self.coordinator._share_statuses())
        for relay in self.node.relays:
            self.assertEqual(self.store.published[relay.alias], to_record(relay.snapshot()))

    def step(self, seconds: float = 0.0) -> None:
        """
        ``seconds`` pass, each timer that comes due running on a turn of its
        own, as on a reactor, and the webhook bot answering: a round after
        each turn.
        """
        clock = self.clock
        until = clock.seconds() + seconds
        while True:
            self.harness.http.flush()
            self.round()
            due = [call for call in clock.calls if call.getTime() <= until]
            if not due:
                break
            call = min(due, key=lambda c: c.getTime())
            clock.calls.remove(call)
            clock.rightNow = max(clock.rightNow, call.getTime())
            call.called = 1
            call.func(*call.args, **call.kw)
        clock.advance(until - clock.seconds())

    def shown(self, *path: str | int) -> Any:
        value: Any = self.store.published["cookout"]
        for key in path:
            value = value[key]
        return value

    def changes(self, action: Callable[[], object], *path: str | int) -> None:
        """
        ``action``, then a round publishes its change to ``path`` (and
        every other field as it is now).
        """
        before = self.shown(*path)
        action()
        self.harness.http.flush()
        self.round()
        self.assertNotEqual(self.shown(*path), before, f"{path} did not change")

    def accept(self, *path: str) -> Any:
        """The bot accepts the relay's connection, which changes ``path``."""
        pumps = []
        self.changes(lambda: pumps.append(self.harness.completer.succeedOnce()), *path)
        self.assertIsNotNone(pumps[0])
        return pumps[0]

    def dispatch(self, t: str = "MESSAGE_CREATE", **d: Any) -> None:
        self.harness.dispatch(t, {"channel_id": "7", "content": "hi", **d})

    # -- the relay's own fields --------------------------------------------------------

    def test_first_round_publishes_all(self) -> None:
        """A new relay is published at the first round, and nothing changed after."""
        self.relay()
        self.assertEqual(self.shown("alias"), "cookout")
        self.store.rounds_changed.clear()
        self.round()
        self.assertEqual(self.store.rounds_changed, [set()])

    def test_node(self) -> None:
        """The node the bot runs on (the manager sets it)."""
        relay = self.relay()

        def move() -> None:
            relay.node = "b"

        self.changes(move, "node")

    def test_enabled_and_reason(self) -> None:
        """
        Discord closes with a fatal code: disabled with the reason, the
        shard disabled; registered again: enabled.
        """
        relay = self.relay()
        self.changes(lambda: self.harness.connections[-1].drop(4004), "shards", 0, "state")
        self.assertEqual(self.shown("shards", 0, "state"), "disabled")
        reason = self.shown("shards", 0, "last_close")
        self.assertIn("token", reason)
        self.changes(self.step, "enabled")
        self.assertEqual(self.shown("disable_reason"), reason)
        self.assertEqual(self.shown("shards"), ())
        self.changes(lambda: relay.apply(relay.settings), "enabled")
        self.assertEqual(self.shown("shards", 0, "state"), "connecting")

    def test_disabled_before_the_gateway_opens(self) -> None:
        """Disabled while its gateway session is not open yet (no shard to stop)."""
        self.harness.rest.later = True  # type: ignore[attr-defined]
        relay = self.relay(greet=False)
        self.changes(lambda: relay.disable("the owner's request"), "enabled")

    def test_gateway_error(self) -> None:
        """
        ``GET /gateway/bot`` fails (answered on a later turn): the error is
        shown, and goes once it answers; the shards open then.
        """
        rest: LaterREST = self.harness.rest  # type: ignore[assignment]
        rest.later = rest.down = True
        self.relay(greet=False)
        self.changes(rest.answer, "gateway_error")
        self.assertEqual(self.shown("gateway_error"), "GET /gateway/bot failed: HTTP 500")
        rest.down = False
        self.step(1.0)
        self.changes(rest.answer, "gateway_error")
        self.assertEqual(self.shown("shards", 0, "state"), "connecting")

    def test_shard_states(self) -> None:
        """
        Each step of a shard's life: HELLO, READY, a reconnect asked for,
        the resume, a dropped connection, a zombie connection.
        """
        self.relay(greet=False)
        connection = self.harness.connections[-1]
        self.changes(
            lambda: connection.frame({"op": 10, "d": {"heartbeat_interval": 41250}}),
            "shards", 0, "state",
        )
        self.changes(
            lambda: connection.frame({"op": 0, "t": "READY", "s": 1, "d": {
                "session_id": "s1", "resume_gateway_url": "wss://resume.example",
                "user": READY_USER,
            }}),
            "shards", 0, "state",
        )
        self.changes(lambda: connection.frame({"op": 7, "d": None}), "shards", 0, "last_close")
        self.assertEqual(self.shown("shards", 0, "state"), "reconnecting")
        # the close goes through on the next turn; the reconnect at once
        self.changes(self.step, "shards", 0, "state")
        resumed = self.harness.connections[-1]
        resumed.frame({"op": 10, "d": {"heartbeat_interval": 41250}})
        self.round()
        self.changes(lambda: resumed.frame({"op": 0, "t": "RESUMED", "s": 2, "d": None}),
                     "shards", 0, "state")
        self.changes(lambda: resumed.drop(4000), "shards", 0, "last_close")
        self.changes(lambda: self.step(1.0), "shards", 0, "state")

    def test_zombie(self) -> None:
        """Heartbeats go unanswered: a zombie connection, closed to resume."""
        self.harness.later = True
        self.relay(greet=False)
        self.harness.dialled()
        self.greet()
        self.changes(lambda: self.step(2 * 41.25), "shards", 0, "state")
        self.assertIn("zombie", self.shown("shards", 0, "last_close"))

    def test_invalid_session(self) -> None:
        """op 9: the session is invalidated, the shard identifies afresh."""
        self.relay()
        connection = self.harness.connections[-1]
        self.changes(lambda: connection.frame({"op": 9, "d": False}), "shards", 0, "state")
        self.assertEqual(self.shown("shards", 0, "last_close"), "invalid session (op 9)")

    def test_gateway_unreachable(self) -> None:
        """
        A gateway connection that fails (on a later turn): reconnecting,
        with why; then connecting again.
        """
        self.harness.later = self.harness.refuse_gateway = True
        self.relay(greet=False)
        self.changes(self.harness.dialled, "shards", 0, "state")
        self.assertEqual(self.shown("shards", 0, "state"), "reconnecting")
        self.assertIn("refused", self.shown("shards", 0, "last_close"))
        self.harness.refuse_gateway = False
        self.changes(lambda: self.step(1.0), "shards", 0, "state")

    def test_identify_slot(self) -> None:
        """Two shards, one identify at a time: the second waits for its slot, then connects."""
        self.harness.rest.shards = 2
        self.harness.later = True
        self.relay(greet=False)
        self.harness.dialled()
        self.greet(0)
        self.assertEqual(self.shown("shards", 1, "state"), "waiting for identify slot")
        self.changes(
            lambda: self.step(IDENTIFY_WINDOW + SAFETY_MARGIN), "shards", 1, "state"
        )

    def test_no_hello(self) -> None:
        """A connection that never says HELLO is closed, and that is shown."""
        self.harness.later = True
        self.relay(greet=False)
        self.harness.dialled()
        self.round()
        self.changes(lambda: self.step(30.0), "shards", 0, "state")
        self.assertEqual(self.shown("shards", 0, "last_close"), "no HELLO from Discord")

    def test_counters(self) -> None:
        """Dispatches received and matched, and the bot's gateway commands."""
        relay = self.relay()
        self.changes(lambda: self.dispatch("TYPING_START"), "counters", "received")
        self.changes(self.dispatch, "counters", "matched")
        self.changes(
            lambda: relay.send_command({"op": 3, "d": {
                "since": None, "activities": [], "status": "online", "afk": False,
            }}),
            "counters", "commands",
        )
        self.changes(
            lambda: relay.send_command({"op": 8, "d": {
                "guild_id": "1", "query": "a", "limit": 10, "nonce": "n1",
            }}),
            "counters", "commands",
        )
        self.changes(
            lambda: self.harness.dispatch("GUILD_MEMBERS_CHUNK", {
                "guild_id": "1", "members": [], "chunk_index": 0, "chunk_count": 1,
                "nonce": "n1",
            }),
            "counters", "answers",
        )

    # -- delivery ------------------------------------------------------------------

    def test_websocket_delivery(self) -> None:
        """
        v1 over a websocket: connecting when something waits, connected,
        delivered, idle again once the connection closes; a bot that cannot
        be reached: waiting to retry, with the error.
        """
        self.relay(dst=WS_DST)
        self.changes(self.dispatch, "delivery", "state")
        self.assertEqual(self.shown("delivery", "queued"), 1)
        pump = self.accept("delivery", "delivered")
        self.assertEqual(self.shown("delivery", "state"), "connected")
        self.assertEqual(self.shown("counters", "delivered"), 1)
        # idle: the relay closes the connection
        self.changes(lambda: self.step(IDLE), "delivery", "state")
        pump.flush()
        self.round()
        self.assertEqual(self.shown("delivery", "state"), "idle")
        # the bot is gone now
        self.dispatch()
        self.round()
        self.harness.completer.failOnce()
        self.changes(lambda: self.step(0.3), "delivery", "state")
        self.assertEqual(self.shown("delivery", "state"), "waiting to retry")
        self.assertIsNotNone(self.shown("delivery", "last_error"))
        self.changes(lambda: self.step(60.0), "delivery", "state")

    def test_bot_closes(self) -> None:
        """The bot closes its connection: idle."""
        self.relay(dst=WS_DST)
        self.dispatch()
        pump = self.accept("delivery", "delivered")
        pump.server.sendClose(code=1000)
        self.changes(pump.flush, "delivery", "state")
        self.assertEqual(self.shown("delivery", "state"), "idle")

    def test_websocket_stalled(self) -> None:
        """A bot that does not read: the error says so, and goes when it reads again."""
        relay = self.relay(dst=WS_DST)
        self.dispatch()
        self.accept("delivery", "delivered")
        writer = relay._delivery._writer  # type: ignore[attr-defined]
        self.changes(writer.pauseProducing, "delivery", "last_error")
        self.changes(writer.resumeProducing, "delivery", "last_error")

    def test_queue_overflow(self) -> None:
        """Past the queue limit, the oldest dispatch is dropped and counted."""
        self.harness.factory.config = DeliveryConfig(queue_limit=1, queue_max_age=None)
        self.relay(dst=WS_DST)
        self.dispatch()
        self.round()
        self.changes(self.dispatch, "delivery", "dropped")

    def test_webhook_delivery(self) -> None:
        """
        A webhook bot: the batch sent, answered, acknowledged in the outbox
        (a store answer), shown connected while warm, and idle once
        ``idle_timeout`` has passed with nothing else happening.
        """
        self.store.holding.add("outbox_ack")
        self.relay(dst=HOOK_DST)
        self.dispatch()
        for _ in range(6):
            self.step()
        self.assertEqual(self.shown("delivery", "delivered"), 1)
        # removed from the outbox once the store says so
        self.assertEqual(self.shown("delivery", "queued"), 1)
        self.changes(self.store.release, "delivery", "queued")
        self.assertEqual(self.shown("delivery", "queued"), 0)
        self.assertEqual(self.shown("delivery", "state"), "connected")
        self.changes(lambda: self.step(IDLE), "delivery", "state")
        self.assertEqual(self.shown("delivery", "state"), "idle")

    def test_outbox_counted(self) -> None:
        """What waits in the outbox from before is counted when the store answers."""
        self.successResultOf(self.store.outbox_append([("cookout", b'{"op":0}')], 0.0))
        self.harness.hook.code = 500
        self.store.holding.add("outbox_count")
        self.relay(dst=HOOK_DST)
        self.changes(self.store.release, "delivery", "queued")

    def test_outbox_trimmed(self) -> None:
        """Past the queue limit, the store trims the outbox: the dropped are counted."""
        self.harness.factory.config = DeliveryConfig(queue_limit=1, queue_max_age=None)
        self.harness.hook.code = 500
        self.store.holding.add("outbox_trim")
        self.relay(dst=HOOK_DST)
        self.dispatch()
        self.dispatch()
        self.step()
        self.changes(self.store.release, "delivery", "dropped")

    def test_webhook_refused(self) -> None:
        """The bot answers 500: waiting to retry, with the error."""
        self.harness.hook.code = 500
        self.relay(dst=HOOK_DST)
        self.dispatch()
        for _ in range(6):
            self.step()
        self.assertEqual(self.shown("delivery", "state"), "waiting to retry")
        self.assertEqual(self.shown("delivery", "last_error"), "the bot answered HTTP 500")
        self.harness.hook.code = 200
        self.changes(lambda: self.step(600.0), "delivery", "state")

    # -- waking --------------------------------------------------------------------

    def test_wake_economy(self) -> None:
        """
        A dispatch for a sleeping bot: a wake request, typing on a timer,
        and once delivered the time it took.
        """
        self.relay(dst=WS_DST, wake_url="https://bot.example/wake", typing_while_waking=True)
        self.changes(self.dispatch, "wake", "wake_requests")
        self.changes(lambda: self.step(1.0), "wake", "typing_calls")
        self.accept("wake", "count")
        self.assertGreater(self.shown("wake", "sum_seconds"), 0)

    def test_interactions(self) -> None:
        """
        An interaction for a sleeping bot is deferred once the deferral
        answers (Discord's REST, later); one Discord refuses is counted.
        """
        self.relay(dst=WS_DST, defer_interactions=True)
        self.harness.rest.hold = True

        def interaction(n: int) -> None:
            self.harness.dispatch("INTERACTION_CREATE", {
                "id": str(n), "token": f"t{n}", "type": 2, "application_id": "1",
            })

        interaction(1)
        self.round()
        self.step(2.0)
        held = self.harness.rest.held
        self.assertEqual(len(held), 1)
        self.changes(lambda: held[0].callback(None), "interactions", "deferred")
        self.assertEqual(self.shown("wake", "deferred_interactions"), 1)
        interaction(2)
        self.step(2.0)
        self.changes(
            lambda: held[1].errback(DiscordHTTPError(500, "no")), "interactions", "defer_failed"
        )

    def test_guild_snapshot(self) -> None:
        """The guild snapshot's counts, from the gateway's guild events."""
        self.relay(guild_snapshot=True, intents=1 | 512)
        self.changes(
            lambda: self.harness.dispatch("GUILD_CREATE", {"id": "5", "name": "g"}),
            "guild_snapshot", "guilds",
        )

    def test_guild_snapshot_restored(self) -> None:
        """The stored guild snapshot, restored when the store answers."""
        self.successResultOf(self.store.save_guild_snapshots([GuildSnapshotUpdate(
            "cookout",
            parts=(("user", orjson.dumps(READY_USER)),
                   ("guild:5", orjson.dumps({"id": "5", "name": "g"}))),
        )]))
        self.store.holding.add("load_guild_snapshot")
        self.relay(guild_snapshot=True, intents=1 | 512)
        self.changes(self.store.release, "guild_snapshot", "guilds")

    def test_interaction_claimed(self) -> None:
        """The bot claims an interaction before the relay defers it: in time."""
        relay = self.relay(dst=WS_DST, defer_interactions=True)
        self.harness.dispatch("INTERACTION_CREATE", {
            "id": "1", "token": "t1", "type": 2, "application_id": "1",
        })
        self.round()
        self.changes(lambda: relay.claim_interaction({"interaction": "1"}),
                     "interactions", "in_time")

    def test_deferral_answered_first_or_lost(self) -> None:
        """
        Deferrals Discord refuses because the bot answered first, and those
        that could not be sent, each counted when the answer comes.
        """
        self.relay(dst=WS_DST, defer_interactions=True)
        self.harness.rest.hold = True
        for n in (1, 2):
            self.harness.dispatch("INTERACTION_CREATE", {
                "id": str(n), "token": f"t{n}", "type": 2, "application_id": "1",
            })
        self.step(2.0)
        first, second = self.harness.rest.held
        answered = DiscordHTTPError(400, "already acknowledged")
        answered.code = ALREADY_ACKNOWLEDGED
        self.changes(lambda: first.errback(answered), "interactions", "answered_first")
        self.changes(lambda: second.errback(ConnectionError("gone")),
                     "interactions", "defer_failed")

    def test_websocket_v2_acknowledged(self) -> None:
        """
        v2: what the bot acknowledges is delivered, and leaves the queue
        when the store has removed it.
        """
        self.store.holding.add("outbox_ack")
        self.relay(dst=WS_DST, delivery_protocol=2)
        self.changes(self.dispatch, "delivery", "queued")
        self.assertEqual(self.shown("delivery", "state"), "connecting")
        # stored on the next turn
        self.step()
        self.accept("delivery", "delivered")
        self.assertEqual(self.shown("delivery", "state"), "connected")
        self.assertEqual(self.shown("delivery", "queued"), 1)
        self.changes(self.store.release, "delivery", "queued")
