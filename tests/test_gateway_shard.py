"""
Tests for :mod:`dccrelay.gateway.shard`: the shard state machine, driven
frame by frame on a fake clock.
"""

from __future__ import annotations

from random import Random
from typing import Any

import orjson
from OpenSSL.SSL import Error as OpenSSLError
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from dccrelay.gateway import codes
from dccrelay.gateway.connection import HandshakeFailed
from dccrelay.gateway.limiter import IdentifyLimiter
from dccrelay.gateway.shard import (
    CLOSE_TIMEOUT,
    CONNECT_TIMEOUT,
    HELLO_TIMEOUT,
    GatewayTools,
    IShardOwner,
    Shard,
    ShardIdentity,
)
from dccrelay.gateway.sieve import EventSieve
from dccrelay.store import SessionState

HELLO = orjson.dumps({"op": 10, "d": {"heartbeat_interval": 41250}})


def frame(op: int, d: Any = None, s: int | None = None, t: str | None = None) -> bytes:
    return orjson.dumps({"op": op, "d": d, "s": s, "t": t})


def ready_frame(session_id: str = "abc", s: int = 1) -> bytes:
    return frame(
        0,
        {"session_id": session_id, "resume_gateway_url": "wss://resume.example"},
        s=s,
        t="READY",
    )


class FakeConnection:
    """
    Records what the shard sends and how it closes.
    """

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed_with: int | None = None
        self.aborted = False

    def send(self, payload: dict[str, Any]) -> None:
        self.sent.append(payload)

    def close(self, code: int) -> None:
        self.closed_with = code

    def abort(self) -> None:
        self.aborted = True

    def ops(self) -> list[int]:
        return [p["op"] for p in self.sent]


@implementer(IShardOwner)
class RecordingOwner:
    """
    Records what shards report, into the test case's lists.
    """

    def __init__(self, case: ShardTests) -> None:
        self.case = case

    def dispatch_received(self, shard_id: int, data: bytes, payload: dict[str, Any]) -> None:
        self.case.dispatches.append(data)

    def dispatch_passed_over(self, shard_id: int) -> None:
        self.case.passed_over.append(shard_id)

    def session_changed(self, shard_id: int, state: SessionState | None) -> None:
        self.case.sessions.append(state)

    def ready_user(self, user: Any) -> None:
        self.case.users.append(user)

    def refused(self, reason: str) -> None:
        self.case.fatal.append(reason)

    def needs_more_shards(self) -> None:
        self.case.reshards.append(0)

    def status_changed(self) -> None:
        self.case.status_changes += 1


class ShardTests(SynchronousTestCase):
    """
    The shard's behaviour at each step of a gateway session.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.connections: list[FakeConnection] = []
        self.urls: list[str] = []
        self.pending: list[Deferred[Any]] = []
        self.dispatches: list[bytes] = []
        self.passed_over: list[int] = []
        self.sessions: list[SessionState | None] = []
        self.users: list[Any] = []
        self.fatal: list[str] = []
        self.refuse_connections = False
        self.refuse_certificate = False
        self.hang_connections = False
        self.reshards: list[int] = []
        self.status_changes = 0

    def connect(self, url: str, listener: Any) -> Deferred[Any]:
        self.urls.append(url)
        if self.refuse_connections:
            return fail(ConnectionRefusedError("refused"))
        if self.refuse_certificate:
            untrusted = Failure(OpenSSLError([("SSL routines", "", "certificate verify failed")]))
            return fail(HandshakeFailed("connection was closed uncleanly", [untrusted]))
        if self.hang_connections:
            return Deferred()
        connection = FakeConnection()
        self.connections.append(connection)
        return succeed(connection)

    def make_shard(self, session: SessionState | None = None, limiter: IdentifyLimiter | None = None, shard_id: int = 0, sieve: EventSieve | None = None) -> Shard:
        return Shard(
            ShardIdentity("bot", "TOKEN", 4608, shard_id, 1),
            gateway_base="wss://gateway.example",
            session=session,
            tools=GatewayTools(
                self.clock, Random(4), self.connect, retry_policy=lambda attempt: 2.0 ** attempt
            ),
            limiter=limiter or IdentifyLimiter(self.clock),
            owner=RecordingOwner(self),
            sieve=sieve,
        )

    def ready_shard(self, sieve: EventSieve | None = None) -> tuple[Shard, FakeConnection]:
        shard = self.make_shard(sieve=sieve)
        shard.start()
        shard.frame_received(HELLO)
        shard.frame_received(ready_frame())
        return shard, self.connections[-1]

    def test_owner_interface(self) -> None:
        """The test's owner provides what a shard reports to."""
        verifyObject(IShardOwner, RecordingOwner(self))

    def test_identifies_after_hello(self) -> None:
        """
        A new shard connects to the gateway URL with v=10 and JSON, and sends
        IDENTIFY with the bot's token, intents and shard once HELLO arrives.
        """
        shard = self.make_shard()
        shard.start()
        self.assertEqual(self.urls, ["wss://gateway.example/?v=10&encoding=json"])
        self.assertEqual(shard.state, "connecting")
        shard.frame_received(HELLO)
        self.assertEqual(shard.state, "identifying")
        identify = self.connections[0].sent[0]
        self.assertEqual(identify["op"], codes.IDENTIFY)
        self.assertEqual(identify["d"]["token"], "TOKEN")
        self.assertEqual(identify["d"]["intents"], 4608)
        self.assertEqual(identify["d"]["shard"], [0, 1])
        self.assertEqual(
            sorted(identify["d"]["properties"]), ["browser", "device", "os"]
        )

    def test_ready_keeps_session_and_is_not_relayed(self) -> None:
        """
        READY stores the session id, resume URL and seq, and is not offered
        to the bot: it carries the session id.
        """
        shard, _ = self.ready_shard()
        self.assertEqual(shard.state, "ready")
        self.assertEqual(self.dispatches, [])
        self.assertEqual(
            self.sessions,
            [SessionState(0, 1, "abc", 1, "wss://resume.example")],
        )

    def test_ready_reports_user(self) -> None:
        """
        READY's user is reported to the shard's owner (for the guild
        snapshot); a READY without one reports nothing.
        """
        self.ready_shard()
        self.assertEqual(self.users, [])
        shard = self.make_shard()
        shard.start()
        shard.frame_received(HELLO)
        user = {"id": "1111", "username": "bot", "bot": True}
        shard.frame_received(
            frame(0, {"session_id": "s", "resume_gateway_url": "wss://r", "user": user}, s=1, t="READY")
        )
        self.assertEqual(self.users, [user])

    def test_dispatch_bytes_and_seq(self) -> None:
        """
        Dispatches go on as the exact bytes received, and the seq follows.
        """
        shard, _ = self.ready_shard()
        data = b'{"op":0,"s":2,"t":"MESSAGE_CREATE","d":{"content":"hi \\u00e9"}}'
        shard.frame_received(data)
        self.assertEqual(self.dispatches, [data])
        self.assertEqual(shard.seq, 2)

    def test_sieve_passes_over_unwanted_types(self) -> None:
        """
        With a sieve wanting MESSAGE_CREATE, a dispatch of another type is
        not handed on: its seq is kept (the next heartbeat and resume carry
        it) and the owner is told it passed; wanted ones and the session's
        own go on as before.
        """
        sieve = EventSieve()
        sieve.want({"MESSAGE_CREATE"})
        shard, connection = self.ready_shard(sieve)
        typing = b'{"t":"TYPING_START","s":2,"op":0,"d":{"user_id":"5"}}'
        message = b'{"t":"MESSAGE_CREATE","s":3,"op":0,"d":{"content":"hi"}}'
        other_order = b'{"op":0,"t":"PRESENCE_UPDATE","s":4,"d":{"status":"idle"}}'
        shard.frame_received(typing)
        self.assertEqual((self.dispatches, self.passed_over, shard.seq), ([], [0], 2))
        shard.frame_received(message)
        self.assertEqual((self.dispatches, shard.seq), ([message], 3))
        shard.frame_received(other_order)
        self.assertEqual((self.dispatches, self.passed_over, shard.seq), ([message], [0, 0], 4))
        self.clock.advance(41.25)
        self.assertEqual(connection.sent[-1], {"op": 1, "d": 4})

    def test_sieve_parses_what_it_cannot_read(self) -> None:
        """
        A dispatch whose head is not in the compact shape, or whose type is
        wanted, is parsed and handed on as before.
        """
        sieve = EventSieve()
        sieve.want({"MESSAGE_CREATE"})
        shard, _ = self.ready_shard(sieve)
        spaced = b'{"t": "TYPING_START", "s": 2, "op": 0, "d": {}}'
        data_first = b'{"d":{},"t":"TYPING_START","s":3,"op":0}'
        shard.frame_received(spaced)
        shard.frame_received(data_first)
        self.assertEqual((self.dispatches, self.passed_over, shard.seq), ([spaced, data_first], [], 3))

    def test_heartbeat_jitter_and_interval(self) -> None:
        """
        The first heartbeat goes after interval * random(), carrying the
        last seq; then one every interval while ACKs come back.
        """
        shard, connection = self.ready_shard()
        jitter = Random(4).random()
        self.clock.advance(41.25 * jitter - 0.01)
        self.assertNotIn(codes.HEARTBEAT, connection.ops())
        self.clock.advance(0.02)
        self.assertEqual(connection.sent[-1], {"op": 1, "d": 1})
        shard.frame_received(frame(11))
        self.clock.advance(41.25)
        self.assertEqual(connection.ops().count(codes.HEARTBEAT), 2)

    def test_zombie_resumes(self) -> None:
        """
        A heartbeat still unacknowledged at the next one means a zombie
        connection: close with a non-1000 code, then RESUME on the resume URL.
        """
        shard, connection = self.ready_shard()
        self.clock.advance(41.25)
        self.clock.advance(41.25)
        self.assertEqual(connection.closed_with, codes.RESUMABLE_CLOSE)
        shard.connection_closed(1006, "gone")
        self.clock.advance(0)
        self.assertEqual(self.urls[-1], "wss://resume.example/?v=10&encoding=json")
        shard.frame_received(HELLO)
        resume = self.connections[-1].sent[0]
        self.assertEqual(resume, {"op": 6, "d": {"token": "TOKEN", "session_id": "abc", "seq": 1}})
        self.assertEqual(shard.state, "resuming")

    def test_replay_then_resumed(self) -> None:
        """
        Dispatches replayed during RESUME are relayed; RESUMED is not.
        """
        shard, _ = self.ready_shard()
        shard.connection_closed(1006, "")
        self.clock.advance(1)
        shard.frame_received(HELLO)
        replay = frame(0, {"x": 1}, s=2, t="MESSAGE_CREATE")
        shard.frame_received(replay)
        shard.frame_received(frame(0, None, s=3, t="RESUMED"))
        self.assertEqual(self.dispatches, [replay])
        self.assertEqual(shard.state, "ready")
        self.assertEqual(shard.resumes, 1)
        self.assertEqual(shard.identifies, 1)

    def test_server_heartbeat_request(self) -> None:
        """
        op 1 from Discord is answered with a heartbeat at once.
        """
        shard, connection = self.ready_shard()
        shard.frame_received(frame(1))
        self.assertEqual(connection.sent[-1], {"op": 1, "d": 1})

    def test_reconnect_op7(self) -> None:
        """
        op 7 closes with a resumable code and resumes at resume_gateway_url.
        """
        shard, connection = self.ready_shard()
        shard.frame_received(frame(7))
        self.assertEqual(connection.closed_with, codes.RESUMABLE_CLOSE)
        shard.connection_closed(codes.RESUMABLE_CLOSE, "")
        self.clock.advance(0)
        self.assertEqual(self.urls[-1], "wss://resume.example/?v=10&encoding=json")

    def test_invalid_session_not_resumable(self) -> None:
        """
        op 9 with d=false forgets the session, waits 1-5 s, then identifies
        afresh on the main gateway URL.
        """
        shard, connection = self.ready_shard()
        shard.frame_received(frame(9, False))
        self.assertEqual(self.sessions[-1], None)
        shard.connection_closed(codes.RESUMABLE_CLOSE, "")
        self.clock.advance(0.99)
        self.assertEqual(len(self.urls), 1)
        # 1-5 s, and at least 5 s (plus a margin) after the last IDENTIFY.
        self.clock.advance(4.27)
        self.assertEqual(len(self.urls), 2)
        self.assertEqual(self.urls[-1], "wss://gateway.example/?v=10&encoding=json")

    def test_invalid_session_resumable(self) -> None:
        """
        op 9 with d=true reconnects and resumes.
        """
        shard, connection = self.ready_shard()
        shard.frame_received(frame(9, True))
        shard.connection_closed(codes.RESUMABLE_CLOSE, "")
        self.clock.advance(0)
        shard.frame_received(HELLO)
        self.assertEqual(self.connections[-1].sent[0]["op"], codes.RESUME)

    def test_fatal_close_codes(self) -> None:
        """
        Every close code Discord calls fatal disables the bot with a reason
        that says what to fix, and nothing reconnects.
        """
        for code in (4004, 4010, 4012, 4013, 4014):
            self.fatal.clear()
            self.urls.clear()
            shard, _ = self.ready_shard()
            shard.connection_closed(code, "")
            self.assertEqual(shard.state, "disabled")
            self.assertEqual(len(self.fatal), 1)
            self.assertIn(f"({code} ", self.fatal[0])
            self.clock.advance(3600)
            self.assertEqual(len(self.urls), 1)

    def test_new_session_close_codes(self) -> None:
        """
        4007 and 4009 mean the session is gone: identify afresh.
        """
        for code in (4007, 4009):
            shard, _ = self.ready_shard()
            shard.connection_closed(code, "")
            self.clock.advance(60)
            shard.frame_received(HELLO)
            self.assertEqual(self.connections[-1].sent[0]["op"], codes.IDENTIFY)

    def test_other_close_codes_resume_with_backoff(self) -> None:
        """
        Every other close code reconnects and resumes, waiting longer after
        each failed attempt.
        """
        for code in (1000, 1001, 1006, 4000, 4001, 4002, 4003, 4005, 4008):
            shard, _ = self.ready_shard()
            shard.connection_closed(code, "")
            self.assertEqual(shard.state, "reconnecting")
            self.clock.advance(1.01)
            shard.frame_received(HELLO)
            self.assertEqual(self.connections[-1].sent[0]["op"], codes.RESUME, code)

    def test_certificate_refused_is_named(self) -> None:
        """
        A gateway whose TLS certificate is refused is named as such in the
        shard's ``lastClose`` and in a warning, not as a failed connection;
        the shard keeps retrying.
        """
        self.refuse_certificate = True
        shard = self.make_shard()
        with capturedLogs() as events:
            shard.start()
        self.assertEqual(
            shard.last_close,
            "Discord's TLS certificate for gateway.example was not accepted: certificate "
            "verify failed (the relay trusts the platform's CA store, or "
            "SSL_CERT_FILE/SSL_CERT_DIR)",
        )
        self.assertIn("warn", [e["log_level"].name for e in events])
        self.assertEqual(shard.state, "reconnecting")

    def test_backoff_grows_when_connecting_fails(self) -> None:
        """
        A gateway that refuses connections is retried after 1, 2, 4... s.
        """
        shard, _ = self.ready_shard()
        self.refuse_connections = True
        shard.connection_closed(1006, "")
        self.clock.advance(1.0)
        self.assertEqual(len(self.urls), 2)
        self.clock.advance(1.99)
        self.assertEqual(len(self.urls), 2)
        self.clock.advance(0.02)
        self.assertEqual(len(self.urls), 3)
        self.assertEqual(shard.state, "reconnecting")
        self.assertIn("refused", shard.last_close or "")

    def test_resume_is_visible(self) -> None:
        """
        After a close with 4000 and a RESUME, the shard is ready again, its
        last_close still says why it reconnected, and the log says it
        resumed after that close.
        """
        shard, _ = self.ready_shard()
        shard.connection_closed(4000, "")
        self.clock.advance(1.01)
        with capturedLogs() as events:
            shard.frame_received(HELLO)
            shard.frame_received(frame(0, None, s=3, t="RESUMED"))
        self.assertEqual(shard.state, "ready")
        self.assertEqual(shard.last_close, "closed with code 4000")
        texts = [formatEvent(e) for e in events]
        self.assertIn("bot shard 0: resumed the session, nothing missed, after: "
                      "closed with code 4000", texts)

    def test_connect_timeout_says_so(self) -> None:
        """
        A gateway that never answers the connection is reported as such,
        not as a bare ``(30.0, 'Deferred')``.
        """
        self.hang_connections = True
        shard = self.make_shard()
        shard.start()
        self.clock.advance(CONNECT_TIMEOUT + 0.01)
        self.assertIn(f"no answer within {CONNECT_TIMEOUT:g} s", shard.last_close or "")

    def test_stop_keeps_session_resumable(self) -> None:
        """
        Stopping closes with a code that keeps the Discord session
        resumable, and fires once the connection is gone.
        """
        shard, connection = self.ready_shard()
        stopped = shard.stop()
        self.assertEqual(connection.closed_with, codes.RESUMABLE_CLOSE)
        self.assertNoResult(stopped)
        shard.connection_closed(codes.RESUMABLE_CLOSE, "")
        self.successResultOf(stopped)
        self.assertEqual(shard.state, "stopped")
        self.assertIsNotNone(shard.session)
        self.clock.advance(3600)
        self.assertEqual(len(self.urls), 1)

    def test_stop_with_1000_ends_session(self) -> None:
        """
        Stopping with 1000 (the bot is deleted) forgets the session.
        """
        shard, connection = self.ready_shard()
        shard.stop(1000)
        self.assertEqual(connection.closed_with, 1000)
        self.assertIsNone(shard.session)

    def test_resume_from_stored_session(self) -> None:
        """
        A shard created with a stored session connects to its resume URL
        and RESUMEs with the stored seq, without asking for an identify slot.
        """
        limiter = IdentifyLimiter(self.clock, remaining=0, reset_after=3600)
        shard = self.make_shard(
            SessionState(0, 1, "old", 41, "wss://resume.example"), limiter
        )
        shard.start()
        shard.frame_received(HELLO)
        self.assertEqual(self.urls, ["wss://resume.example/?v=10&encoding=json"])
        self.assertEqual(self.connections[0].sent[0]["d"]["seq"], 41)

    def test_waits_for_identify_slot(self) -> None:
        """
        Shards of one bot with max_concurrency 1 identify 5 s apart, and
        show that they are waiting.
        """
        limiter = IdentifyLimiter(self.clock, max_concurrency=1)
        first = self.make_shard(limiter=limiter, shard_id=0)
        second = self.make_shard(limiter=limiter, shard_id=1)
        first.start()
        second.start()
        self.assertEqual(second.state, "waiting for identify slot")
        self.assertEqual(len(self.urls), 1)
        first.frame_received(HELLO)
        self.clock.advance(5.25)
        self.assertEqual(len(self.urls), 2)
        self.assertEqual(second.state, "connecting")

    def test_malformed_frames_ignored(self) -> None:
        """
        Frames that are not JSON objects with an op change nothing.
        """
        shard, _ = self.ready_shard()
        for data in (b"not json", b"[]", b'{"d": 1}', b'{"op": 10, "d": null}'):
            shard.frame_received(data)
        self.assertEqual(shard.state, "ready")

    def test_zombie_close_is_cut_after_deadline(self) -> None:
        """
        A zombie connection that never answers the close frame is cut after
        a few seconds, and the shard resumes.
        """
        shard, connection = self.ready_shard()
        shard.frame_received(frame(7))
        self.clock.advance(CLOSE_TIMEOUT - 0.1)
        self.assertFalse(connection.aborted)
        self.clock.advance(0.2)
        self.assertTrue(connection.aborted)
        shard.connection_closed(1006, "")
        self.clock.advance(0)
        self.assertEqual(len(self.urls), 2)

    def test_connect_timeout(self) -> None:
        """
        A websocket that does not open in time counts as a failed connect
        and is retried.
        """
        self.hang_connections = True
        shard = self.make_shard()
        shard.start()
        self.clock.advance(CONNECT_TIMEOUT + 0.1)
        self.assertEqual(shard.state, "reconnecting")
        self.clock.advance(1.0)
        self.assertEqual(len(self.urls), 2)

    def test_hello_timeout(self) -> None:
        """
        A connection on which HELLO never arrives is closed and replaced.
        """
        shard = self.make_shard()
        shard.start()
        connection = self.connections[0]
        self.clock.advance(HELLO_TIMEOUT + 0.1)
        self.assertEqual(connection.closed_with, codes.RESUMABLE_CLOSE)
        shard.connection_closed(codes.RESUMABLE_CLOSE, "")
        self.clock.advance(0)
        self.assertEqual(len(self.urls), 2)

    def test_sharding_required(self) -> None:
        """
        4011 does not disable the bot: the shard stops, forgets its session
        and asks the relay to start over with more shards.
        """
        shard, _ = self.ready_shard()
        shard.connection_closed(4011, "sharding required")
        self.assertEqual(self.reshards, [0])
        self.assertEqual(self.fatal, [])
        self.assertEqual(shard.state, "stopped")
        self.assertIsNone(shard.session)
        self.clock.advance(3600)
        self.assertEqual(len(self.urls), 1)

    def test_commands_paced(self) -> None:
        """
        Commands beyond Discord's 120 per 60 s wait for room instead of
        getting the connection closed with 4008; heartbeats never wait.
        """
        shard, connection = self.ready_shard()
        for i in range(130):
            shard.send_command({"op": 3, "d": {"n": i}})
        sent = [p for p in connection.sent if p["op"] == 3]
        # IDENTIFY took one place; five stay free for heartbeats.
        self.assertEqual(len(sent), 120 - 1 - 5)
        self.assertEqual(shard.commands_waiting, 130 - len(sent))
        shard.frame_received(frame(1))
        self.assertEqual(connection.sent[-1]["op"], codes.HEARTBEAT)
        self.clock.advance(60)
        sent = [p["d"]["n"] for p in connection.sent if p["op"] == 3]
        self.assertEqual(sent, list(range(130)))
        self.assertEqual(shard.commands_waiting, 0)
