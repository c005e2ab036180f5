"""
Tests for :mod:`dccrelay.delivery.websocket_v2` and the v2 half of
:mod:`dccrelay.client.receiver`.

The channel runs on a ``MemoryReactorClock`` over the in-memory store;
TCP attempts are answered by hand with ``iosim.ConnectionCompleter`` and the
bot is the real :class:`DispatchReceiverFactory`, so both ends speak real
websocket frames in memory.
"""

from __future__ import annotations

from base64 import b64encode
from typing import Any

from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet import reactor as global_reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail
from twisted.internet.testing import MemoryReactorClock
from twisted.test.iosim import ConnectionCompleter, IOPump, connect, makeFakeClient, makeFakeServer
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from dccrelay.client.receiver import (
    DispatchReceiverFactory,
    DispatchReceiverProtocol,
    NotConnected,
    parse_v2_frame,
)
from dccrelay.client.register import RegistrationError
from dccrelay.delivery import IDurableChannel
from dccrelay.delivery.config import DEFAULTS
from dccrelay.delivery.framing import dispatch_frame
from dccrelay.delivery.outbox import OutboxWriter
from dccrelay.delivery.websocket import WebSocketChannel
from dccrelay.store import OutboxCheckpoint, SessionState
from tests.channel_builders import status_of, websocket_v2
from tests.memory_store import MemoryDatabase, MemoryRelayStore

PING_INTERVAL = DEFAULTS.ping_interval
PING_TIMEOUT = DEFAULTS.ping_timeout

SECRET = "admin:c2VjcmV0LXNhdWNl"
PORT = 8080
DST = f"ws://bot.example:{PORT}/dcc"
ATTEMPT_DELAY = 0.3

PAYLOADS = [
    b'{"t":"MESSAGE_CREATE","s":1,"op":0,"d":{"content":"!bring chips"}}',
    # odd spacing and non-ASCII: must arrive exactly as given, not re-encoded
    b'{"t": "MESSAGE_CREATE",  "s":2,"op":0,"d":{"content":"h\xc3\xa9 \\u00e9 \xf0\x9f\x8c\xad"}}',
    b'{"t":"MESSAGE_CREATE","s":3,"op":0,"d":{"content":"}"}}',
]


def linear_policy(attempt: int) -> float:
    return 10.0 * attempt


class _RecordingProtocol(DispatchReceiverProtocol):
    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.frames.append(payload)  # type: ignore[attr-defined]
        super().onMessage(payload, isBinary)


class Bot:
    """
    The bot's receiver, recording frames and what its handler got; its
    handler can be made to hold each dispatch until released.
    """

    def __init__(self, clock: MemoryReactorClock, *, v2: bool = True, hold: bool = False) -> None:
        self.handled: list[bytes] = []
        self.held: list[Deferred[None]] = []
        self.hold = hold
        self.factory = DispatchReceiverFactory(SECRET, self.handle, reactor=clock, v2=v2)
        self.factory.protocol = _RecordingProtocol
        self.frames: list[bytes] = []
        self.factory.frames = self.frames  # type: ignore[attr-defined]

    def handle(self, payload: bytes) -> Deferred[None] | None:
        self.handled.append(payload)
        if not self.hold:
            return None
        d: Deferred[None] = Deferred()
        self.held.append(d)
        return d

    def release(self, index: int | None = None) -> None:
        if index is None:
            held, self.held = self.held, []
            for d in held:
                d.callback(None)
        else:
            self.held[index].callback(None)


class V2DeliveryTests(SynchronousTestCase):
    """
    WebSocketV2Delivery against the real receiver, in memory.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.database = MemoryDatabase()
        self.store = MemoryRelayStore(self.database)
        self.successResultOf(self.store.open())
        self.successResultOf(self.store.save_relay("cookout", {}))
        self.writer = OutboxWriter(self.store, self.clock)
        self.completer = ConnectionCompleter(self.clock)
        self.replace_bot(Bot(self.clock))

    def replace_bot(self, bot: Bot) -> None:
        self.bot = bot
        self.clock.tcpServers.clear()
        self.clock.listenTCP(PORT, bot.factory)

    def channel(self, **kwargs: Any) -> WebSocketChannel:
        options: dict[str, Any] = {
            "alias": "cookout",
            "dst": DST,
            "client_secret": SECRET,
            "retry_policy": linear_policy,
            "store": self.store,
            "writer": self.writer,
        }
        options.update(kwargs)
        channel = websocket_v2(self.clock, **options)
        return channel

    def accept(self) -> IOPump:
        pump = self.completer.succeedOnce()
        assert pump is not None, "no connection attempt to accept"
        return pump

    def settle(self, pump: IOPump | None = None) -> None:
        """
        Let the outbox write, and the frames travel, until nothing moves.
        """
        for _ in range(10):
            self.clock.advance(0)
            if pump is not None:
                pump.flush()

    def stored_ids(self) -> list[int]:
        return [e.id for e in self.successResultOf(self.store.outbox_load("cookout", 0, 1000))]

    def test_interface(self) -> None:
        """
        The channel provides IDurableChannel and starts idle and empty.
        """
        channel = self.channel()
        self.assertTrue(verifyObject(IDurableChannel, channel))
        self.assertEqual(
            status_of(channel),
            {"state": "idle", "queued": 0, "dropped": 0, "delivered": 0, "lastError": None},
        )
        self.assertEqual(channel.pending(), [])

    def test_handshake(self) -> None:
        """
        The handshake offers subprotocol dcc.v2, with v1's Authorization,
        and the receiver selects it.
        """
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        pump = self.accept()
        headers = pump.server.http_headers
        self.assertEqual(headers["sec-websocket-protocol"], "dcc.v2")
        self.assertEqual(headers["authorization"], "Basic " + b64encode(SECRET.encode()).decode())
        self.assertEqual(pump.server.websocket_protocol_in_use, "dcc.v2")

    def test_frames_and_acks(self) -> None:
        """
        Each dispatch goes as ``{"op":"dispatch","id":N,"d":<payload>}`` with
        the payload's bytes untouched; the receiver hands the handler those
        bytes and acks; acked dispatches leave the outbox.
        """
        channel = self.channel()
        for payload in PAYLOADS:
            channel.deliver(payload)
        self.assertEqual(status_of(channel)["queued"], 3)
        pump = self.accept()
        self.settle(pump)
        frames = self.bot.frames
        ids = [parse_v2_frame(f)[0] for f in frames]  # type: ignore[index]
        self.assertEqual(frames, [dispatch_frame(i, p) for i, p in zip(ids, PAYLOADS)])
        self.assertEqual(frames[0], b'{"op":"dispatch","id":%d,"d":' % ids[0] + PAYLOADS[0] + b"}")
        self.assertEqual(self.bot.handled, PAYLOADS)
        self.assertEqual(
            status_of(channel),
            {"state": "connected", "queued": 0, "dropped": 0, "delivered": 3, "lastError": None},
        )
        self.assertEqual(self.stored_ids(), [])

    def test_ack_waits_for_handler(self) -> None:
        """
        The receiver acks only once the handler's Deferred fired, and acks
        are cumulative: a later dispatch finished first is acked together
        with the earlier one.
        """
        self.bot.hold = True
        channel = self.channel()
        for payload in PAYLOADS:
            channel.deliver(payload)
        pump = self.accept()
        self.settle(pump)
        self.assertEqual(len(self.stored_ids()), 3)
        self.bot.release(1)
        self.settle(pump)
        self.assertEqual(status_of(channel)["delivered"], 0)
        self.bot.release(0)
        self.settle(pump)
        self.assertEqual(status_of(channel)["delivered"], 2)
        self.assertEqual(len(self.stored_ids()), 1)
        self.bot.release(2)
        self.settle(pump)
        self.assertEqual(self.stored_ids(), [])

    def test_on_delivered(self) -> None:
        """
        ``on_delivered`` gets the payloads as the bot acknowledges them, not
        as they are sent.
        """
        self.bot.hold = True
        taken: list[bytes] = []
        channel = self.channel(on_delivered=taken.extend)
        for payload in PAYLOADS:
            channel.deliver(payload)
        pump = self.accept()
        self.settle(pump)
        self.assertEqual(taken, [])
        self.bot.release(0)
        self.settle(pump)
        self.assertEqual(taken, PAYLOADS[:1])
        self.bot.release(1)
        self.bot.release(2)
        self.settle(pump)
        self.assertEqual(taken, PAYLOADS)

    def test_commands(self) -> None:
        """
        A command frame from the bot goes to ``on_command``; its answer
        comes back as a command_result frame with the bot's ref, which the
        receiver turns into its send_command's result or error.
        """
        seen: list[Any] = []

        def on_command(d: Any) -> tuple[int, dict[str, Any]]:
            seen.append(d)
            if d["op"] == 3:
                return 202, {"op": 3, "shards": [0]}
            return 400, {"error": "d: one of query or user_ids is required", "field": "/d"}

        channel = self.channel(on_command=on_command)
        channel.deliver(PAYLOADS[0])
        pump = self.accept()
        self.settle(pump)
        presence = {"since": None, "activities": [], "status": "online", "afk": False}
        sent = self.bot.factory.send_command(3, presence)
        refused = self.bot.factory.send_command(8, {"guild_id": "1"})
        self.settle(pump)
        self.assertEqual(seen, [{"op": 3, "d": presence}, {"op": 8, "d": {"guild_id": "1"}}])
        self.assertEqual(self.successResultOf(sent), {"op": 3, "shards": [0]})
        error = self.failureResultOf(refused, RegistrationError).value
        self.assertEqual((error.code, error.field), (400, "/d"))
        # dispatches and acks go on as before
        self.assertEqual(status_of(channel)["delivered"], 1)

    def test_commands_refused_without_handler(self) -> None:
        """
        A channel given no on_command answers 501; a bot with no open
        connection cannot send at all.
        """
        self.failureResultOf(self.bot.factory.send_command(3, {}), NotConnected)
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        pump = self.accept()
        self.settle(pump)
        sent = self.bot.factory.send_command(3, {})
        self.settle(pump)
        self.assertEqual(self.failureResultOf(sent, RegistrationError).value.code, 501)

    def test_annotate(self) -> None:
        """
        ``annotate`` changes the payload inside the frame as it is sent.
        """
        channel = self.channel(annotate=lambda p: b'{"dcc":1,' + p[1:])
        channel.deliver(PAYLOADS[0])
        pump = self.accept()
        self.settle(pump)
        self.assertEqual(self.bot.handled, [b'{"dcc":1,' + PAYLOADS[0][1:]])

    def test_redelivery_after_bot_restart(self) -> None:
        """
        What the bot had not acked when its connection dropped is sent again,
        in order, on the next connection (to a restarted bot, which gets
        each of them once more).
        """
        self.bot.hold = True
        channel = self.channel()
        for payload in PAYLOADS:
            channel.deliver(payload)
        pump = self.accept()
        self.settle(pump)
        self.bot.release(0)
        self.settle(pump)
        pump.server.transport.abortConnection()
        pump.flush()
        self.assertEqual(status_of(channel)["lastError"], "the connection to the bot was lost")
        restarted = Bot(self.clock)
        self.replace_bot(restarted)
        self.settle()
        pump = self.accept()
        self.settle(pump)
        self.assertEqual(restarted.handled, PAYLOADS[1:])
        self.assertEqual(status_of(channel)["delivered"], 3)
        self.assertEqual(self.stored_ids(), [])

    def test_receiver_drops_duplicates(self) -> None:
        """
        The same receiver, reconnected, acks a redelivered dispatch without
        handling it again, and waits for one still being handled.
        """
        self.bot.hold = True
        channel = self.channel()
        for payload in PAYLOADS[:2]:
            channel.deliver(payload)
        pump = self.accept()
        self.settle(pump)
        pump.server.transport.abortConnection()
        pump.flush()
        self.settle()
        pump = self.accept()
        self.settle(pump)
        self.assertEqual(self.bot.handled, PAYLOADS[:2])
        self.assertEqual(len(self.stored_ids()), 2)
        self.bot.release()
        self.settle(pump)
        self.assertEqual(self.bot.handled, PAYLOADS[:2])
        self.assertEqual(self.stored_ids(), [])

    def test_relay_restart(self) -> None:
        """
        A new channel over the same store (a restarted relay) sends what was
        not acked, in order, with the same ids.
        """
        self.bot.hold = True
        channel = self.channel()
        for payload in PAYLOADS:
            channel.deliver(payload)
        pump = self.accept()
        self.settle(pump)
        ids = self.stored_ids()
        stopped = channel.stop()
        self.settle(pump)
        self.successResultOf(stopped)
        restarted = Bot(self.clock)
        self.replace_bot(restarted)
        again = self.channel()
        self.settle()
        pump = self.accept()
        self.settle(pump)
        frames = restarted.frames
        self.assertEqual(restarted.handled, PAYLOADS)
        self.assertEqual([parse_v2_frame(f)[0] for f in frames], ids)  # type: ignore[index]
        self.assertEqual(status_of(again)["delivered"], 3)

    def test_bot_without_v2(self) -> None:
        """
        A bot that does not select dcc.v2 is not spoken to: the connection
        is dropped, lastError says what to do, and it is retried.
        """
        self.replace_bot(Bot(self.clock, v2=False))
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        pump = self.accept()
        self.settle(pump)
        self.assertEqual(self.bot.handled, [])
        status = status_of(channel)
        self.assertEqual(status["state"], "waiting to retry")
        self.assertIn("dcc.v2", status["lastError"])  # type: ignore[operator]
        self.assertEqual(status["queued"], 1)

    def test_pings(self) -> None:
        """
        An open connection is pinged every PING_INTERVAL; a bot that answers
        keeps it.
        """
        channel = self.channel(idle_timeout=1000.0)
        channel.deliver(PAYLOADS[0])
        pump = self.accept()
        self.settle(pump)
        for _ in range(3):
            self.clock.advance(PING_INTERVAL)
            pump.flush()
            self.clock.advance(PING_TIMEOUT)
            pump.flush()
        self.assertEqual(pump.server.state, WebSocketProtocol.STATE_OPEN)
        self.assertIsNone(status_of(channel)["lastError"])

    def test_dead_bot_detected(self) -> None:
        """
        A bot whose pong does not come within PING_TIMEOUT is dropped, and
        what it had not acked goes again on the next connection.
        """
        self.bot.hold = True
        channel = self.channel(idle_timeout=1000.0)
        channel.deliver(PAYLOADS[0])
        pump = self.accept()
        self.settle(pump)
        self.clock.advance(PING_INTERVAL)
        # nothing pumped: the ping never reaches the bot
        self.clock.advance(PING_TIMEOUT)
        self.assertTrue(pump.clientIO.disconnecting)
        pump.flush()
        self.assertIn("ping", status_of(channel)["lastError"])  # type: ignore[operator]
        restarted = Bot(self.clock)
        self.replace_bot(restarted)
        self.settle()
        pump = self.accept()
        self.settle(pump)
        self.assertEqual(restarted.handled, PAYLOADS[:1])

    def test_oversized_message_from_bot(self) -> None:
        """
        A bot whose websocket message is over ``max_bot_message`` bytes is
        cut off as soon as its frame header says so (Autobahn buffered any
        size before); lastError says why, and what it had not acknowledged
        goes again on the next connection.
        """
        limit = 1024

        class Flooding(_RecordingProtocol):
            def onOpen(self) -> None:
                super().onOpen()
                self.sendMessage(b"x" * (limit + 1), isBinary=True)

        self.cut_off(Flooding, limit)

    def test_oversized_message_in_small_frames(self) -> None:
        """
        The same for a message of many frames, each under the limit: cut
        off once their total passes it.
        """
        limit = 1024

        class Trickling(_RecordingProtocol):
            def onOpen(self) -> None:
                super().onOpen()
                self.sendMessage(b"x" * (limit * 3), isBinary=True, fragmentSize=limit // 2)

        self.cut_off(Trickling, limit)

    def test_large_dispatch_to_bot(self) -> None:
        """
        The limit is on what the bot sends: a dispatch larger than it still
        goes to the bot (a member chunk can be hundreds of kilobytes).
        """
        channel = self.channel(max_bot_message=1024)
        big = b'{"t":"GUILD_MEMBERS_CHUNK","s":9,"op":0,"d":{"pad":"' + b"x" * 5000 + b'"}}'
        channel.deliver(big)
        pump = self.accept()
        self.settle(pump)
        self.assertEqual(self.bot.handled, [big])

    def cut_off(self, protocol: type[_RecordingProtocol], limit: int) -> None:

        self.bot.hold = True
        self.bot.factory.protocol = protocol
        channel = self.channel(max_bot_message=limit)
        channel.deliver(PAYLOADS[0])
        pump = self.accept()
        self.settle(pump)
        self.assertTrue(pump.clientIO.disconnecting)
        pump.flush()
        self.assertEqual(
            status_of(channel)["lastError"],
            "the bot sent a websocket message over 1024 bytes (a bot sends only "
            "acknowledgements and commands)",
        )
        restarted = Bot(self.clock)
        self.replace_bot(restarted)
        self.settle()
        self.clock.advance(10)
        pump = self.accept()
        self.settle(pump)
        self.assertEqual(restarted.handled, PAYLOADS[:1])

    def test_idle_close_once_acked(self) -> None:
        """
        The idle close comes idle_timeout after the last send once everything
        is acked, and leaves no timer behind.
        """
        channel = self.channel(idle_timeout=5.0)
        channel.deliver(PAYLOADS[0])
        pump = self.accept()
        self.settle(pump)
        self.clock.advance(5.0)
        pump.flush()
        self.assertEqual(pump.server.state, WebSocketProtocol.STATE_CLOSED)
        self.assertEqual(pump.server.remoteCloseCode, 1000)
        self.assertEqual(status_of(channel)["state"], "idle")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_unacked_too_long(self) -> None:
        """
        A bot that leaves a dispatch unacked for idle_timeout is disconnected
        and retried with backoff, and gets the dispatch again.
        """
        self.bot.hold = True
        channel = self.channel(idle_timeout=5.0)
        channel.deliver(PAYLOADS[0])
        pump = self.accept()
        self.settle(pump)
        self.clock.advance(5.0)
        pump.flush()
        status = status_of(channel)
        self.assertEqual(status["state"], "waiting to retry")
        self.assertIn("acknowledge", status["lastError"])  # type: ignore[operator]
        self.replace_bot(Bot(self.clock))
        self.clock.advance(10.0)
        pump = self.accept()
        self.settle(pump)
        self.assertEqual(self.bot.handled, PAYLOADS[:1])
        self.assertEqual(status_of(channel)["delivered"], 1)

    def test_overflow_drops_oldest(self) -> None:
        """
        Past queue_limit while the bot is away, the oldest are dropped and
        counted; the rest arrive in order.
        """
        channel = self.channel(queue_limit=2)
        for payload in PAYLOADS:
            channel.deliver(payload)
        self.completer.failOnce()
        self.clock.advance(ATTEMPT_DELAY)
        self.settle()
        status = status_of(channel)
        self.assertEqual((status["queued"], status["dropped"]), (2, 1))
        self.clock.advance(10.0)
        pump = self.accept()
        self.settle(pump)
        self.assertEqual(self.bot.handled, PAYLOADS[1:])

    def test_initial_from_v1(self) -> None:
        """
        Payloads handed over from a v1 channel go into the outbox and are
        delivered first.
        """
        channel = self.channel(initial=PAYLOADS[:2])
        channel.deliver(PAYLOADS[2])
        self.settle()
        pump = self.accept()
        self.settle(pump)
        self.assertEqual(self.bot.handled, PAYLOADS)

    def test_checkpoint(self) -> None:
        """
        A checkpoint given with a dispatch is stored with it.
        """
        self.successResultOf(
            self.store.save_session("cookout", SessionState(0, 1, "s", 1, "wss://r"))
        )
        channel = self.channel()
        channel.deliver(PAYLOADS[0], OutboxCheckpoint("cookout", 0, "s", 9))
        self.settle()
        self.assertEqual(self.successResultOf(self.store.load_sessions("cookout"))[0].seq, 9)

    def test_stop(self) -> None:
        """
        stop() closes with 1000 and fires once the connection is gone and
        the outbox written; nothing is left scheduled, and nothing on the
        global reactor.
        """
        before = set(global_reactor.getDelayedCalls())
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        pump = self.accept()
        self.settle(pump)
        channel.deliver(PAYLOADS[1])
        stopped = channel.stop()
        self.settle(pump)
        self.successResultOf(stopped)
        self.assertEqual(pump.server.remoteCloseCode, 1000)
        self.assertEqual(status_of(channel)["state"], "stopped")
        self.assertEqual(len(self.stored_ids()), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(set(global_reactor.getDelayedCalls()), before)


class ReceiverV2Tests(SynchronousTestCase):
    """
    The receiver's v2 side, with v2 frames written by hand.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()

    def test_parse_exact(self) -> None:
        """
        A frame in the relay's form gives the payload's bytes unchanged.
        """
        for payload in PAYLOADS:
            self.assertEqual(parse_v2_frame(dispatch_frame(42, payload)), (42, payload))

    def test_parse_other_forms(self) -> None:
        """
        Other spacing is parsed as JSON; what is not a dispatch is None.
        """
        self.assertEqual(
            parse_v2_frame(b'{ "id": 7, "op": "dispatch", "d": {"a": 1} }'), (7, b'{"a":1}')
        )
        for frame in [b"nope", b'{"op":"ack","id":1}', b'{"op":"dispatch","id":"1","d":1}', b"[]"]:
            self.assertIsNone(parse_v2_frame(frame))

    def test_handler_failure_acked(self) -> None:
        """
        A failing handler is logged, and its dispatch acked all the same, so
        later ones are not held back.
        """
        clock = MemoryReactorClock()
        store = MemoryRelayStore()
        self.successResultOf(store.open())
        self.successResultOf(store.save_relay("cookout", {}))
        bot_handled: list[bytes] = []

        def handler(payload: bytes) -> Any:
            bot_handled.append(payload)
            if payload == PAYLOADS[0]:
                return fail(ValueError("bad"))
            return None

        factory = DispatchReceiverFactory(SECRET, handler, reactor=clock)
        clock.listenTCP(PORT, factory)
        completer = ConnectionCompleter(clock)
        channel = websocket_v2(
            clock, alias="cookout", dst=DST, client_secret=SECRET,
            store=store, writer=OutboxWriter(store, clock),
        )
        for payload in PAYLOADS:
            channel.deliver(payload)
        pump = completer.succeedOnce()
        assert pump is not None
        for _ in range(5):
            clock.advance(0)
            pump.flush()
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertEqual(bot_handled, PAYLOADS)
        self.assertEqual(status_of(channel)["delivered"], 3)

    def test_v1_unchanged(self) -> None:
        """
        A relay that offers no subprotocol gets v1: raw frames, no acks.
        """
        from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol

        handled: list[bytes] = []
        sent_back: list[bytes] = []

        class Client(WebSocketClientProtocol):
            def onOpen(self) -> None:
                for payload in PAYLOADS:
                    self.sendMessage(payload, isBinary=False)

            def onMessage(self, payload: bytes, isBinary: bool) -> None:
                sent_back.append(payload)

        receiver = DispatchReceiverFactory(SECRET, handled.append, reactor=self.clock)
        client_factory = WebSocketClientFactory(
            "ws://bot.example/dcc",
            headers={"Authorization": "Basic " + b64encode(SECRET.encode()).decode()},
            reactor=self.clock,
        )
        client_factory.protocol = Client
        client_factory.setProtocolOptions(
            openHandshakeTimeout=0, closeHandshakeTimeout=0, serverConnectionDropTimeout=0
        )
        address = IPv4Address("TCP", "127.0.0.1", 8080)
        client = client_factory.buildProtocol(address)
        server = receiver.buildProtocol(address)
        pump = connect(server, makeFakeServer(server), client, makeFakeClient(client), clock=self.clock)
        pump.flush()
        self.assertIsNone(server.websocket_protocol_in_use)
        self.assertEqual(handled, PAYLOADS)
        self.assertEqual(sent_back, [])
