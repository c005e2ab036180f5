"""
The simulator's gateway rules on a fake clock, without sockets: heartbeat
deadlines, session expiry, identify and payload rate limits.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.testing.connection import SimulatedConnection
from dccrelay.testing.gateway_server import query_problem
from dccrelay.testing.session import SimulatedSession
from dccrelay.testing.simulator import DiscordSimulator, SimulatedBot

TOKEN = "token-a"


class FakeWire:
    """Records what a SimulatedConnection sends."""

    def __init__(self) -> None:
        self.payloads: list[Any] = []
        self.close_code: int | None = None
        self.aborted = False

    def send_frame(self, data: bytes) -> None:
        self.payloads.append(orjson.loads(data))

    def send_close(self, code: int, reason: str) -> None:
        self.close_code = code

    def abort(self) -> None:
        self.aborted = True


def identify(shard: list[int] | None = None, token: str = TOKEN) -> dict[str, Any]:
    """A valid IDENTIFY."""
    d: dict[str, Any] = {
        "token": token,
        "intents": 513,
        "properties": {"os": "linux", "browser": "test", "device": "test"},
    }
    if shard is not None:
        d["shard"] = shard
    return {"op": 2, "d": d}


class ClockTestCase(SynchronousTestCase):
    """A simulator on MemoryReactorClock with one bot."""

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.sim = DiscordSimulator(self.clock, heartbeat_interval=1000, random=random.Random(3))
        self.successResultOf(self.sim.listen("tcp:0:interface=127.0.0.1"))
        self.bot = self.sim.add_bot(token=TOKEN, user_id="1111")

    def connect(self, url_kind: str = "gateway") -> tuple[SimulatedConnection, FakeWire]:
        wire = FakeWire()
        connection = self.sim.accept(wire, url_kind)
        connection.start()
        self.assertEqual(wire.payloads[0]["op"], 10)
        return connection, wire

    def send(self, connection: SimulatedConnection, payload: Any) -> None:
        connection.frame_received(orjson.dumps(payload))

    def ready(self) -> tuple[SimulatedConnection, FakeWire]:
        connection, wire = self.connect()
        self.send(connection, identify())
        self.assertEqual(wire.payloads[-1]["t"], "READY")
        return connection, wire

    def disconnect(self, connection: SimulatedConnection, code: int | None = 4000) -> None:
        connection.client_closing(code)
        connection.connection_lost()


class HeartbeatTests(ClockTestCase):
    """The heartbeat deadline: 1.5 x the interval by default."""

    def test_deadline_from_hello(self) -> None:
        """Without any heartbeat the connection closes 1.5 intervals after HELLO."""
        connection, wire = self.connect()
        self.clock.advance(1.49)
        self.assertIsNone(wire.close_code)
        self.clock.advance(0.02)
        self.assertEqual(wire.close_code, 4009)
        self.assertIn(("close", 4009), self.sim.events)

    def test_heartbeat_resets_deadline(self) -> None:
        """Each heartbeat gives the client another full timeout."""
        connection, wire = self.connect()
        for _ in range(5):
            self.clock.advance(1.4)
            self.send(connection, {"op": 1, "d": None})
        self.assertIsNone(wire.close_code)
        self.assertEqual([p["op"] for p in wire.payloads[1:]], [11] * 5)
        self.clock.advance(1.51)
        self.assertEqual(wire.close_code, 4009)

    def test_timeout_ends_session(self) -> None:
        """A 4009 ends the session: it cannot be resumed."""
        connection, _ = self.ready()
        session = connection.session
        assert session is not None
        self.clock.advance(2)
        self.assertFalse(session.resumable)
        self.assertEqual(session.end_reason, "heartbeat timeout")

    def test_configured_timeout(self) -> None:
        """heartbeat_timeout overrides the default, in seconds."""
        self.sim.heartbeat_timeout = 10
        connection, wire = self.connect()
        self.clock.advance(9.9)
        self.assertIsNone(wire.close_code)
        self.clock.advance(0.2)
        self.assertEqual(wire.close_code, 4009)

    def test_no_timer_after_loss(self) -> None:
        """A lost connection leaves no heartbeat timer behind."""
        connection, _ = self.connect()
        connection.connection_lost()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_payloads_after_close_ignored(self) -> None:
        """Once closing, the connection answers nothing."""
        connection, wire = self.connect()
        connection.close(4000)
        self.send(connection, {"op": 1, "d": None})
        self.assertEqual(len(wire.payloads), 1)


class SessionTests(ClockTestCase):
    """How long a session outlives its connection."""

    def test_expires_after_timeout(self) -> None:
        """60 s after the disconnect the session is no longer resumable."""
        connection, _ = self.ready()
        session = self.bot.sessions[0]
        self.disconnect(connection)
        self.clock.advance(59.9)
        self.assertTrue(session.resumable)
        self.clock.advance(0.2)
        self.assertFalse(session.resumable)
        self.assertIn(("session_expired", 0), self.sim.events)

    def test_resume_cancels_expiry(self) -> None:
        """Resuming in time keeps the session alive however long it then runs."""
        connection, _ = self.ready()
        session = self.bot.sessions[0]
        self.disconnect(connection)
        self.clock.advance(30)
        self.sim.heartbeat_timeout = 1000
        resumed, wire = self.connect("resume")
        self.send(
            resumed, {"op": 6, "d": {"token": TOKEN, "session_id": session.session_id, "seq": 1}}
        )
        self.assertEqual(wire.payloads[-1]["t"], "RESUMED")
        self.clock.advance(100)
        self.assertTrue(session.resumable)

    def test_client_close_1000_ends_session(self) -> None:
        """Closing with 1000 or 1001 ends the session at once."""
        for code in (1000, 1001):
            self.sim.identify_window = 0
            connection, _ = self.ready()
            session = connection.session
            assert session is not None
            self.disconnect(connection, code)
            self.assertFalse(session.resumable)

    def test_drop_keeps_session(self) -> None:
        """drop() aborts the wire; the session stays resumable."""
        connection, wire = self.ready()
        connection.drop()
        self.assertTrue(wire.aborted)
        self.assertTrue(self.bot.sessions[0].resumable)
        self.assertIn(("drop", 0), self.sim.events)

    def test_replay_buffer(self) -> None:
        """A bounded replay buffer says when it no longer holds what is needed."""
        session = SimulatedSession(
            bot=self.bot,
            session_id="s",
            shard_id=0,
            shard_count=1,
            intents=0,
            clock=Clock(),
            timeout=1,
            replay_limit=2,
            on_expired=lambda s: None,
        )
        frames = [session.next_dispatch("X", n) for n in range(4)]
        self.assertEqual(session.replay_after(2), frames[2:])
        self.assertEqual(session.replay_after(4), [])
        self.assertIsNone(session.replay_after(1))

    def test_wait_for_disconnect(self) -> None:
        """wait_for_disconnect() fires when the shard's connection is gone."""
        connection, _ = self.ready()
        waiting = self.bot.wait_for_disconnect()
        self.assertNoResult(waiting)
        self.disconnect(connection)
        self.successResultOf(waiting)
        self.successResultOf(self.bot.wait_for_disconnect())


class LimitTests(ClockTestCase):
    """Identify concurrency, the session start limit, the payload limit."""

    def test_identify_window(self) -> None:
        """The bucket frees 5 s after the last accepted IDENTIFY."""
        self.sim.heartbeat_timeout = 1000
        self.ready()
        second, wire = self.connect()
        self.send(second, identify())
        self.assertEqual(wire.payloads[-1], {"t": None, "s": None, "op": 9, "d": False})
        self.clock.advance(4.5)
        self.send(second, identify())
        self.assertEqual(wire.payloads[-1]["op"], 9)
        self.clock.advance(0.5)
        self.send(second, identify())
        self.assertEqual(wire.payloads[-1]["t"], "READY")

    def test_bucket_per_key(self) -> None:
        """Shards 0 and 2 share a bucket when max_concurrency is 2."""
        bot = self.sim.add_bot(token="t4", user_id="4", shards=4, max_concurrency=2)
        outcomes = []
        for shard in (0, 1, 2):
            connection, wire = self.connect()
            self.send(connection, identify([shard, 4], token="t4"))
            outcomes.append(wire.payloads[-1]["op"])
        self.assertEqual(outcomes, [0, 0, 9])
        self.assertEqual(bot.identifies, 3)
        self.assertEqual(bot.remaining, 998)

    def test_session_start_limit_resets(self) -> None:
        """remaining returns to total once reset_after has passed."""
        bot = self.sim.add_bot(token="t0", user_id="5", remaining=0, reset_after=2000)
        connection, wire = self.connect()
        self.send(connection, identify(token="t0"))
        self.assertEqual(wire.payloads[-1]["op"], 9)
        self.assertEqual(bot.session_start_limit()["reset_after"], 2000)
        self.send(connection, {"op": 1, "d": None})
        self.clock.advance(1.4)
        self.send(connection, {"op": 1, "d": None})
        self.clock.advance(0.6)
        self.send(connection, identify(token="t0"))
        self.assertEqual(wire.payloads[-1]["t"], "READY")
        self.assertEqual(bot.remaining, 999)

    def test_payload_window(self) -> None:
        """120 payloads per 60 s are fine; the 121st within 60 s closes with 4008."""
        self.sim.heartbeat_timeout = 1000
        connection, wire = self.connect()
        for _ in range(120):
            self.send(connection, {"op": 1, "d": None})
        self.clock.advance(60)
        for _ in range(120):
            self.send(connection, {"op": 1, "d": None})
        self.assertIsNone(wire.close_code)
        self.send(connection, {"op": 1, "d": None})
        self.assertEqual(wire.close_code, 4008)


class MiscTests(SynchronousTestCase):
    """Small pieces."""

    def test_query_problem(self) -> None:
        """Only v=10 with JSON (or no encoding) passes."""
        self.assertIsNone(query_problem({"v": ["10"], "encoding": ["json"]}))
        self.assertIsNone(query_problem({"v": ["10"]}))
        self.assertIsNotNone(query_problem({"v": ["9"], "encoding": ["json"]}))
        self.assertIsNotNone(query_problem({"v": ["10"], "encoding": ["etf"]}))
        self.assertIsNotNone(query_problem({}))

    def test_urls_need_listen(self) -> None:
        """Asking for URLs before listen() explains what to do."""
        sim = DiscordSimulator(MemoryReactorClock())
        with self.assertRaises(RuntimeError):
            sim.api_url

    def test_shard_for_guild(self) -> None:
        """Messages route to (guild_id >> 22) % shards; DMs to shard 0."""
        sim = DiscordSimulator(MemoryReactorClock())
        bot: SimulatedBot = sim.add_bot("t", shards=3)
        self.assertEqual(bot.shard_for_guild(str(5 << 22)), 2)
        self.assertEqual(bot.shard_for_guild(None), 0)

    def test_duplicate_token(self) -> None:
        """Two bots cannot share a token."""
        sim = DiscordSimulator(MemoryReactorClock())
        sim.add_bot("t")
        with self.assertRaises(ValueError):
            sim.add_bot("t")
