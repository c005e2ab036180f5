"""
The Discord simulator's gateway, driven by a real Autobahn client over
loopback.
"""

from __future__ import annotations

import random
import zlib
from typing import Any

import orjson
import zstandard
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue, gatherResults
from twisted.internet.endpoints import clientFromString
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from dccrelay.testing.simulator import DiscordSimulator

LOOPBACK = "tcp:0:interface=127.0.0.1"
TOKEN = "token-a"


def identify_payload(token: str = TOKEN, intents: Any = 513, **extra: Any) -> dict[str, Any]:
    """A valid IDENTIFY, changed by ``extra``."""
    d: dict[str, Any] = {
        "token": token,
        "intents": intents,
        "properties": {"os": "linux", "browser": "dccrelay-test", "device": "dccrelay-test"},
    }
    d.update(extra)
    return {"op": 2, "d": d}


class GatewayClient(WebSocketClientProtocol):  # type: ignore[misc]
    """A bare gateway client that records what it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.raw: list[bytes] = []
        self.queue: DeferredQueue[bytes] = DeferredQueue()
        self.opened: Deferred[GatewayClient] = Deferred()
        self.closed: Deferred[tuple[bool, int | None, str | None]] = Deferred()
        self._inflate = zlib.decompressobj()
        self.zstd: Any = None

    def onOpen(self) -> None:
        self.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if isBinary and self.zstd is not None:
            payload = self.zstd.decompress(payload)
        elif isBinary:
            payload = self._inflate.decompress(payload)
        self.raw.append(payload)
        self.queue.put(payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if not self.opened.called:
            self.opened.errback(ConnectionError(f"handshake failed: {reason}"))
        self.closed.callback((wasClean, code, reason))

    def send_json(self, payload: Any) -> None:
        self.sendMessage(orjson.dumps(payload))

    async def next_raw(self) -> bytes:
        return await self.queue.get()

    async def next(self) -> Any:
        return orjson.loads(await self.queue.get())

    async def close_code(self) -> int | None:
        """Wait for the connection to end; the server's close code."""
        _, code, _ = await self.closed
        return code


class SimulatorTestCase(TestCase):
    """A listening simulator with one bot; clients are cleaned up."""

    timeout = 10
    control_api = False

    def setUp(self) -> Deferred[Any]:  # type: ignore[override]
        self.sim = DiscordSimulator(
            reactor, heartbeat_interval=5000, random=random.Random(7), control_api=self.control_api
        )
        self.bot = self.sim.add_bot(token=TOKEN, user_id="1111")
        self.clients: list[GatewayClient] = []
        self.addCleanup(lambda: Deferred.fromCoroutine(self._shut_down()))
        return self.sim.listen(LOOPBACK)

    async def _shut_down(self) -> None:
        await self.sim.stop()
        await gatherResults([c.closed for c in self.clients])

    async def connect(self, url: str | None = None, query: str = "?v=10&encoding=json") -> GatewayClient:
        """Open a websocket to ``url`` (default: the gateway URL) and read HELLO."""
        client = await self.open(url, query)
        hello = await client.next()
        self.assertEqual(hello["op"], 10)
        return client

    async def open(self, url: str | None = None, query: str = "?v=10&encoding=json") -> GatewayClient:
        """Open a websocket without reading anything."""
        factory = WebSocketClientFactory((url or self.sim.gateway_url) + query, reactor=reactor)
        factory.protocol = GatewayClient
        port = self.sim.api_url.split(":")[2].split("/")[0]
        client: GatewayClient = await clientFromString(reactor, f"tcp:127.0.0.1:{port}").connect(
            factory
        )
        self.clients.append(client)
        await client.opened
        return client

    async def ready_client(self, **extra: Any) -> tuple[GatewayClient, Any]:
        """A client that has identified; and its READY."""
        client = await self.connect()
        client.send_json(identify_payload(**extra))
        ready = await client.next()
        self.assertEqual(ready["t"], "READY")
        return client, ready

    async def assert_closed_with(self, client: GatewayClient, code: int) -> None:
        """The server closes ``client`` with ``code``, and the sim recorded it."""
        self.assertEqual(await client.close_code(), code)
        self.assertIn(("close", code), self.sim.events)


class HandshakeTests(SimulatorTestCase):
    """HELLO, heartbeats, IDENTIFY and READY."""

    async def test_hello(self) -> None:
        """On connect the server sends HELLO with the heartbeat interval."""
        client = await self.open()
        hello = await client.next()
        self.assertEqual(hello["op"], 10)
        self.assertEqual(hello["d"]["heartbeat_interval"], 5000)
        self.assertIsNone(hello["s"])
        self.assertIsNone(hello["t"])
        self.assertEqual(self.sim.events, [("connect", "gateway")])

    async def test_heartbeat_ack(self) -> None:
        """A heartbeat (d null or a sequence) is answered with op 11."""
        client = await self.connect()
        client.send_json({"op": 1, "d": None})
        self.assertEqual((await client.next())["op"], 11)
        client.send_json({"op": 1, "d": 3})
        self.assertEqual((await client.next())["op"], 11)
        self.assertEqual(self.sim.connections[0].heartbeats, [None, 3])

    async def test_ready(self) -> None:
        """IDENTIFY gets READY (s 1) with the session and resume URL."""
        client, ready = await self.ready_client()
        self.assertEqual(ready["op"], 0)
        self.assertEqual(ready["s"], 1)
        d = ready["d"]
        self.assertEqual(d["v"], 10)
        self.assertEqual(d["user"]["id"], "1111")
        self.assertTrue(d["user"]["bot"])
        self.assertIn("username", d["user"])
        self.assertEqual(d["guilds"], [])
        self.assertRegex(d["session_id"], "^[0-9a-f]{32}$")
        self.assertEqual(d["resume_gateway_url"], self.sim.resume_url)
        self.assertEqual(d["application"]["id"], "1111")
        self.assertNotIn("shard", d)
        self.assertEqual(self.bot.identifies, 1)
        self.assertEqual(self.bot.identify_urls["gateway"], 1)
        self.assertIn(("identify", 0), self.sim.events)
        connection = await self.bot.wait_for_ready()
        self.assertIs(connection, self.bot.connections[-1])
        assert connection.session is not None
        self.assertEqual(connection.session.session_id, d["session_id"])

    async def test_ready_with_shard(self) -> None:
        """READY echoes the shard when IDENTIFY sent one."""
        _, ready = await self.ready_client(shard=[0, 1])
        self.assertEqual(ready["d"]["shard"], [0, 1])

    async def test_wait_for_ready_fires_later(self) -> None:
        """wait_for_ready() before IDENTIFY fires on READY."""
        waiting = self.bot.wait_for_ready()
        self.assertFalse(waiting.called)
        await self.ready_client()
        connection = await waiting
        self.assertTrue(connection.ready)

    async def test_identify_on_resume_url(self) -> None:
        """IDENTIFY is accepted on the resume URL too, and counted there."""
        client = await self.connect(self.sim.resume_url)
        client.send_json(identify_payload())
        self.assertEqual((await client.next())["t"], "READY")
        self.assertEqual(self.bot.identify_urls["resume"], 1)
        self.assertEqual(self.bot.identify_urls["gateway"], 0)

    async def test_privileged_intent_allowed(self) -> None:
        """A privileged intent enabled for the bot is accepted."""
        self.sim.add_bot(token="token-p", user_id="2", privileged_intents=1 << 15)
        client = await self.connect()
        client.send_json(identify_payload(token="token-p", intents=(1 << 15) | 513))
        self.assertEqual((await client.next())["t"], "READY")

    async def test_zlib_stream(self) -> None:
        """compress=zlib-stream sends every payload through one zlib stream."""
        client = await self.open(query="?v=10&encoding=json&compress=zlib-stream")
        self.assertEqual((await client.next())["op"], 10)
        client.send_json(identify_payload())
        self.assertEqual((await client.next())["t"], "READY")

    async def test_zstd_stream(self) -> None:
        """
        compress=zstd-stream sends each payload as one binary message of one
        zstd stream: a flushed block, never the end of the zstd frame.
        """
        client = await self.open(query="?v=10&encoding=json&compress=zstd-stream")
        client.zstd = zstandard.ZstdDecompressor().decompressobj()
        self.assertEqual((await client.next())["op"], 10)
        client.send_json(identify_payload())
        self.assertEqual((await client.next())["t"], "READY")
        sent = [self.bot.message(f"message {i}") for i in range(3)]
        self.assertEqual([await client.next_raw() for _ in sent], sent)
        # Still inside the first frame: a decompressobj refuses data after
        # a frame's end, and zstd's frame header appears only once.
        self.assertFalse(client.zstd.eof)

    async def test_unsupported_compression(self) -> None:
        """A transport compression the simulator lacks fails the handshake."""
        with self.assertRaises(ConnectionError):
            await self.open(query="?v=10&encoding=json&compress=brotli-stream")


class DispatchTests(SimulatorTestCase):
    """Dispatches, messages and RESUME replay."""

    async def test_dispatch_bytes(self) -> None:
        """dispatch() sends the next sequence and returns the exact bytes."""
        client, _ = await self.ready_client()
        frame = self.bot.dispatch("GUILD_CREATE", {"id": "2222"})
        self.assertEqual(await client.next_raw(), frame)
        self.assertEqual(orjson.loads(frame)["s"], 2)
        second = self.bot.dispatch("TYPING_START", {"channel_id": "3333"})
        self.assertEqual(orjson.loads(await client.next_raw())["s"], 3)
        self.assertEqual(client.raw[-1], second)

    async def test_message(self) -> None:
        """message() dispatches a realistic MESSAGE_CREATE."""
        client, _ = await self.ready_client()
        frame = self.bot.message("hello", mentions=["1111"])
        self.assertEqual(await client.next_raw(), frame)
        payload = orjson.loads(frame)
        self.assertEqual(payload["t"], "MESSAGE_CREATE")
        d = payload["d"]
        self.assertEqual(d["content"], "hello")
        self.assertEqual(d["guild_id"], "2222")
        self.assertEqual(d["channel_id"], "3333")
        self.assertNotIn("bot", d["author"])
        self.assertIn("member", d)
        self.assertEqual(d["mentions"][0]["id"], "1111")
        self.assertTrue(d["mentions"][0]["bot"])
        self.assertTrue(d["id"].isdigit())

    async def test_message_from_bot_and_dm(self) -> None:
        """author_bot marks the author; guild_id=None is a DM."""
        client, _ = await self.ready_client()
        d = orjson.loads(self.bot.message("beep", author_bot=True, guild_id=None))["d"]
        self.assertTrue(d["author"]["bot"])
        self.assertNotIn("guild_id", d)
        self.assertNotIn("member", d)

    async def test_content_needs_intent(self) -> None:
        """
        As Discord: a guild message reaches a session without the
        MESSAGE_CONTENT intent with content, embeds, attachments and
        components empty; a DM, or a message mentioning the bot, keeps them.
        """
        client, _ = await self.ready_client()
        d = orjson.loads(self.bot.message("cookout bring buns"))["d"]
        self.assertEqual((d["content"], d["embeds"], d["attachments"], d["components"]),
                         ("", [], [], []))
        self.assertEqual(orjson.loads(await client.next_raw())["d"]["content"], "")
        dm = orjson.loads(self.bot.message("cookout in a DM", guild_id=None))["d"]
        self.assertEqual(dm["content"], "cookout in a DM")
        mention = orjson.loads(self.bot.message("hey bot", mentions=["1111"]))["d"]
        self.assertEqual(mention["content"], "hey bot")

    async def test_content_with_intent(self) -> None:
        """
        A session that identified with MESSAGE_CONTENT (enabled for the bot)
        gets guild messages whole.
        """
        self.sim.add_bot(token="token-p", user_id="2", privileged_intents=1 << 15)
        client = await self.connect()
        client.send_json(identify_payload(token="token-p", intents=(1 << 15) | 513))
        self.assertEqual((await client.next())["t"], "READY")
        d = orjson.loads(self.sim.bots["token-p"].message("cookout bring buns"))["d"]
        self.assertEqual(d["content"], "cookout bring buns")

    async def test_content_rule_can_be_off(self) -> None:
        """
        ``blank_content=False`` (``--content-without-intent``) sends content
        regardless, for tests of older setups.
        """
        self.sim.blank_content = False
        await self.ready_client()
        self.assertEqual(orjson.loads(self.bot.message("whole"))["d"]["content"], "whole")

    async def test_dispatch_without_session(self) -> None:
        """dispatch() before any IDENTIFY is an error, not a silent loss."""
        with self.assertRaises(LookupError):
            self.bot.dispatch("MESSAGE_CREATE", {})

    async def test_resume_replays(self) -> None:
        """RESUME at resume_gateway_url replays what was missed, then RESUMED."""
        client, ready = await self.ready_client()
        self.bot.dispatch("A", {})
        self.assertEqual((await client.next())["s"], 2)
        client.sendClose(4000)
        await client.closed
        await self.bot.wait_for_disconnect()
        missed = [self.bot.dispatch("B", {"n": 1}), self.bot.dispatch("C", {"n": 2})]

        resumed = await self.connect(ready["d"]["resume_gateway_url"])
        resumed.send_json(
            {"op": 6, "d": {"token": TOKEN, "session_id": ready["d"]["session_id"], "seq": 2}}
        )
        self.assertEqual([await resumed.next_raw(), await resumed.next_raw()], missed)
        done = await resumed.next()
        self.assertEqual(done["t"], "RESUMED")
        self.assertEqual(done["s"], 5)
        self.assertEqual(self.bot.resumes, 1)
        self.assertEqual(self.bot.resume_urls["resume"], 1)
        self.assertIn(("resumed", 0), self.sim.events)
        self.assertIn(("client_close", 4000), self.sim.events)
        # New dispatches continue the sequence on the resumed connection.
        self.assertEqual(orjson.loads(self.bot.dispatch("D", {}))["s"], 6)
        self.assertEqual((await resumed.next())["s"], 6)

    async def resume(self, session_id: str, seq: int, url: str | None = None) -> GatewayClient:
        client = await self.connect(url or self.sim.resume_url)
        client.send_json({"op": 6, "d": {"token": TOKEN, "session_id": session_id, "seq": seq}})
        return client

    async def test_resume_on_gateway_url_refused(self) -> None:
        """RESUME on the main gateway URL gets op 9 false."""
        client, ready = await self.ready_client()
        client.sendClose(4000)
        await client.closed
        again = await self.resume(ready["d"]["session_id"], 1, self.sim.gateway_url)
        self.assertEqual(await again.next(), {"t": None, "s": None, "op": 9, "d": False})
        self.assertIn(("resume_refused", "wrong_url"), self.sim.events)
        self.assertEqual(self.bot.resume_urls["gateway"], 1)

    async def test_resume_unknown_session(self) -> None:
        """RESUME of a session that never existed gets op 9 false."""
        client = await self.resume("0" * 32, 1)
        self.assertEqual((await client.next())["d"], False)
        self.assertIn(("resume_refused", "unknown_session"), self.sim.events)

    async def test_resume_after_close_1000(self) -> None:
        """A client closing with 1000 ends its session: RESUME gets op 9."""
        client, ready = await self.ready_client()
        client.sendClose(1000)
        await client.closed
        await self.bot.wait_for_disconnect()
        again = await self.resume(ready["d"]["session_id"], 1)
        self.assertEqual((await again.next())["op"], 9)
        self.assertFalse(self.bot.sessions[0].resumable)

    async def test_resume_seq_too_high(self) -> None:
        """RESUME with a seq the session never sent closes with 4007."""
        client, ready = await self.ready_client()
        client.sendClose(4000)
        await client.closed
        again = await self.resume(ready["d"]["session_id"], 99)
        await self.assert_closed_with(again, 4007)
        self.assertFalse(self.bot.sessions[0].resumable)

    async def test_resume_after_expiry(self) -> None:
        """A session disconnected longer than session_timeout is not resumable."""
        self.sim.session_timeout = 0.1
        client, ready = await self.ready_client()
        client.sendClose(4000)
        await client.closed
        await self.bot.wait_for_disconnect()
        await deferLater(reactor, 0.2)
        self.assertIn(("session_expired", 0), self.sim.events)
        again = await self.resume(ready["d"]["session_id"], 1)
        self.assertEqual((await again.next())["op"], 9)
        self.assertIn(("resume_refused", "expired"), self.sim.events)

    async def test_resume_takes_over(self) -> None:
        """RESUME of a session still attached elsewhere drops the old connection."""
        old, ready = await self.ready_client()
        new = await self.resume(ready["d"]["session_id"], 1)
        self.assertEqual((await new.next())["t"], "RESUMED")
        wasClean, _, _ = await old.closed
        self.assertFalse(wasClean)
        self.assertIn(("superseded", 0), self.sim.events)

    async def test_replay_buffer_exceeded(self) -> None:
        """When missed dispatches left the replay buffer, RESUME gets op 9."""
        self.sim.replay_limit = 2
        client, ready = await self.ready_client()
        client.sendClose(4000)
        await client.closed
        for n in range(4):
            self.bot.dispatch("X", {"n": n})
        again = await self.resume(ready["d"]["session_id"], 1)
        self.assertEqual((await again.next())["op"], 9)
        self.assertIn(("resume_refused", "replay_unavailable"), self.sim.events)


class CloseCodeTests(SimulatorTestCase):
    """Each close code the simulator enforces."""

    async def test_invalid_json(self) -> None:
        """Invalid JSON closes with 4002."""
        client = await self.connect()
        client.sendMessage(b"{nope")
        await self.assert_closed_with(client, 4002)

    async def test_payload_too_large(self) -> None:
        """A payload over 4096 bytes closes with 4002."""
        client = await self.connect()
        client.send_json({"op": 1, "d": None, "padding": "x" * 4096})
        await self.assert_closed_with(client, 4002)

    async def test_unknown_opcode(self) -> None:
        """An opcode clients may not send closes with 4001."""
        client = await self.connect()
        client.send_json({"op": 11, "d": None})
        await self.assert_closed_with(client, 4001)

    async def test_not_authenticated(self) -> None:
        """A presence update before IDENTIFY closes with 4003."""
        client = await self.connect()
        client.send_json({"op": 3, "d": {"since": None, "activities": [], "status": "online", "afk": False}})
        await self.assert_closed_with(client, 4003)

    async def test_already_authenticated(self) -> None:
        """A second IDENTIFY closes with 4005."""
        client, _ = await self.ready_client()
        client.send_json(identify_payload())
        await self.assert_closed_with(client, 4005)

    async def test_identify_bad_token(self) -> None:
        """IDENTIFY with an unknown token closes with 4004."""
        client = await self.connect()
        client.send_json(identify_payload(token="wrong"))
        await self.assert_closed_with(client, 4004)

    async def test_resume_bad_token(self) -> None:
        """RESUME with an unknown token closes with 4004."""
        client = await self.connect(self.sim.resume_url)
        client.send_json({"op": 6, "d": {"token": "wrong", "session_id": "x", "seq": 1}})
        await self.assert_closed_with(client, 4004)

    async def test_identify_without_properties(self) -> None:
        """IDENTIFY without os/browser/device properties closes with 4002."""
        client = await self.connect()
        client.send_json({"op": 2, "d": {"token": TOKEN, "intents": 513, "properties": {"os": "linux"}}})
        await self.assert_closed_with(client, 4002)

    async def test_shard_count_mismatch(self) -> None:
        """A shard count other than the bot's closes with 4010."""
        client = await self.connect()
        client.send_json(identify_payload(shard=[0, 2]))
        await self.assert_closed_with(client, 4010)

    async def test_shard_id_out_of_range(self) -> None:
        """A shard id not below the count closes with 4010."""
        client = await self.connect()
        client.send_json(identify_payload(shard=[1, 1]))
        await self.assert_closed_with(client, 4010)

    async def test_sharding_required(self) -> None:
        """A bot that needs shards, identifying without, gets 4011."""
        self.sim.add_bot(token="token-s", user_id="3", shards=2)
        client = await self.connect()
        client.send_json(identify_payload(token="token-s"))
        await self.assert_closed_with(client, 4011)

    async def test_invalid_version(self) -> None:
        """v other than 10 closes with 4012, without HELLO."""
        client = await self.open(query="?v=9&encoding=json")
        await self.assert_closed_with(client, 4012)
        self.assertEqual(client.raw, [])

    async def test_invalid_encoding(self) -> None:
        """encoding=etf closes with 4012."""
        client = await self.open(query="?v=10&encoding=etf")
        await self.assert_closed_with(client, 4012)

    async def test_missing_version(self) -> None:
        """A URL without v closes with 4012."""
        client = await self.open(query="")
        await self.assert_closed_with(client, 4012)

    async def test_unknown_intent(self) -> None:
        """An undocumented intent bit closes with 4013."""
        client = await self.connect()
        client.send_json(identify_payload(intents=1 << 30))
        await self.assert_closed_with(client, 4013)

    async def test_intents_not_integer(self) -> None:
        """Intents given as a string close with 4013."""
        client = await self.connect()
        client.send_json(identify_payload(intents="513"))
        await self.assert_closed_with(client, 4013)

    async def test_disallowed_intent(self) -> None:
        """MESSAGE_CONTENT without the bot's permission closes with 4014."""
        client = await self.connect()
        client.send_json(identify_payload(intents=(1 << 15) | 513))
        await self.assert_closed_with(client, 4014)

    async def test_rate_limited(self) -> None:
        """More than 120 payloads within 60 s close with 4008."""
        client = await self.connect()
        for _ in range(121):
            client.send_json({"op": 1, "d": None})
        await self.assert_closed_with(client, 4008)
        self.assertEqual(len(self.sim.events), 3)  # connect, close, disconnect

    async def test_heartbeat_overdue(self) -> None:
        """No heartbeat within the heartbeat timeout closes with 4009."""
        self.sim.heartbeat_timeout = 0.2
        client, _ = await self.ready_client()
        await self.assert_closed_with(client, 4009)
        self.assertFalse(self.bot.sessions[0].resumable)


class IdentifyLimitTests(SimulatorTestCase):
    """Identify concurrency and the daily session start limit."""

    async def test_concurrency_bucket(self) -> None:
        """A second IDENTIFY in the same bucket within 5 s gets op 9 false."""
        await self.ready_client()
        client = await self.connect()
        client.send_json(identify_payload())
        self.assertEqual(await client.next(), {"t": None, "s": None, "op": 9, "d": False})
        self.assertIn(("identify_refused", "max_concurrency"), self.sim.events)
        self.assertEqual(self.bot.identifies, 2)
        self.assertEqual(self.bot.remaining, 999)

    async def test_separate_buckets(self) -> None:
        """Shards in different buckets may identify at the same time."""
        self.sim.add_bot(token="token-2", user_id="4", shards=2, max_concurrency=2)
        for shard in (0, 1):
            client = await self.connect()
            client.send_json(identify_payload(token="token-2", shard=[shard, 2]))
            self.assertEqual((await client.next())["d"]["shard"], [shard, 2])

    async def test_session_start_limit(self) -> None:
        """With no identifies left, IDENTIFY gets op 9 false."""
        bot = self.sim.add_bot(token="token-3", user_id="5", shards=2, max_concurrency=2, remaining=1)
        first = await self.connect()
        first.send_json(identify_payload(token="token-3", shard=[0, 2]))
        self.assertEqual((await first.next())["t"], "READY")
        second = await self.connect()
        second.send_json(identify_payload(token="token-3", shard=[1, 2]))
        self.assertEqual((await second.next())["op"], 9)
        self.assertIn(("identify_refused", "session_start_limit"), self.sim.events)
        self.assertEqual(bot.remaining, 0)


class ControlTests(SimulatorTestCase):
    """What a test does to a connection: op 7, op 9, op 1, close, drop."""

    async def test_reconnect(self) -> None:
        """send_reconnect() sends op 7."""
        client, _ = await self.ready_client()
        self.bot.connections[-1].send_reconnect()
        self.assertEqual(await client.next(), {"t": None, "s": None, "op": 7, "d": None})

    async def test_invalid_session_resumable(self) -> None:
        """send_invalid_session(True) sends op 9 true; the session survives."""
        client, _ = await self.ready_client()
        self.bot.connections[-1].send_invalid_session(True)
        self.assertEqual((await client.next())["d"], True)
        self.assertTrue(self.bot.sessions[0].resumable)

    async def test_invalid_session_then_identify(self) -> None:
        """After op 9 false the session is over and IDENTIFY may follow."""
        self.sim.identify_window = 0
        client, _ = await self.ready_client()
        self.bot.connections[-1].send_invalid_session(False)
        self.assertEqual((await client.next())["d"], False)
        self.assertFalse(self.bot.sessions[0].resumable)
        client.send_json(identify_payload())
        self.assertEqual((await client.next())["t"], "READY")
        self.assertEqual(len(self.bot.sessions), 2)

    async def test_request_heartbeat(self) -> None:
        """request_heartbeat() sends op 1."""
        client, _ = await self.ready_client()
        self.bot.connections[-1].request_heartbeat()
        self.assertEqual(await client.next(), {"t": None, "s": None, "op": 1, "d": None})

    async def test_stop_acking(self) -> None:
        """With ack_heartbeats False, heartbeats go unanswered."""
        client, _ = await self.ready_client()
        connection = self.bot.connections[-1]
        connection.ack_heartbeats = False
        client.send_json({"op": 1, "d": 1})
        while not connection.heartbeats:
            await deferLater(reactor, 0.01)
        connection.ack_heartbeats = True
        client.send_json({"op": 1, "d": 1})
        self.assertEqual((await client.next())["op"], 11)
        self.assertEqual(len(client.raw), 3)  # HELLO, READY and one ACK
        self.assertEqual(connection.heartbeats, [1, 1])

    async def test_close(self) -> None:
        """close(code) closes with that code; the session stays resumable."""
        client, _ = await self.ready_client()
        self.bot.connections[-1].close(4000, "test")
        await self.assert_closed_with(client, 4000)
        await self.bot.wait_for_disconnect()
        self.assertEqual(self.bot.connections, [])
        self.assertTrue(self.bot.sessions[0].resumable)
        self.assertIn(("disconnect", 0), self.sim.events)

    async def test_closing_connection_is_not_ready(self) -> None:
        """wait_for_ready() does not fire for a connection being closed."""
        client, _ = await self.ready_client()
        self.bot.connections[-1].close(4000)
        self.assertFalse(self.bot.wait_for_ready().called)
        await client.closed

    async def test_drop(self) -> None:
        """drop() ends TCP without a close frame."""
        client, _ = await self.ready_client()
        self.bot.connections[-1].drop()
        wasClean, code, _ = await client.closed
        self.assertFalse(wasClean)
        self.assertEqual(code, 1006)
        await self.bot.wait_for_disconnect()
        self.assertTrue(self.bot.sessions[0].resumable)
