"""
Issue 17, items 2 and 3, end to end: a hostile bot's URL answers the real
relay (in this process, over loopback TLS with the test CA) with endless
header lines, an endless body, or an endless websocket handshake.  The
relay reads each within its caps and cuts the connection; the bad bot's
status says what was over; another bot on the node keeps receiving; and the
bytes the relay took stay bounded, as does its memory.

The hostile server is a pull producer: it writes its next piece only when
the relay has read the previous ones, so what it managed to send is what
the relay took in (plus the kernel's socket buffers).  It stops by itself
at :data:`SEND_LIMIT` bytes.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from dccrelay.net.answer_caps import AnswerCaps
from dccrelay.testing.codes import MESSAGE_CONTENT
from dccrelay.web.status_json import public_json
from tests.delivery_harness import WebSocketBot
from tests.harness import RelayProcess, serve_https, wait_for
from tests.test_delivery_end_to_end import Fixture, deferred_test

HOSTILE_TOKEN = "NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0.Gg1234.hostile-token"
HOSTILE_ID = "444444444444444444"

MIB = 1024 * 1024
#: what the hostile server sends at most on one connection
SEND_LIMIT = 64 * MIB
#: what it may manage to send although the relay cut the connection at its
#: cap: the cap, TLS records and the kernel's socket buffers on loopback
SENT_BOUND = 16 * MIB
#: how much the process's RSS may grow during one attack (the hostile
#: server is in this process too); without the caps it grew by more than
#: the 64 MiB sent
RSS_BOUND = 48 * MIB

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


class _HostileAnswer(Protocol):
    """
    Answers the request with ``factory.head``, then ``factory.unit`` again
    and again, each written once the relay took the previous ones.
    """

    factory: HostileServer
    _started = False
    _request = b""
    sent = 0

    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        self.factory.live.add(self)

    def dataReceived(self, data: bytes) -> None:
        if self._started:
            return
        self._request += data
        if b"\r\n\r\n" not in self._request:
            return
        self._started = True
        self._write(self.factory.head)
        assert self.transport is not None
        self.transport.registerProducer(self, False)

    def _write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)
        self.sent += len(data)

    def resumeProducing(self) -> None:
        assert self.transport is not None
        if self.sent >= SEND_LIMIT:
            self.transport.unregisterProducer()
            return
        self._write(self.factory.unit)

    def pauseProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.live.discard(self)


class HostileServer(Factory):
    """
    A bot's URL that answers with ``head`` and then ``unit`` without end
    (up to :data:`SEND_LIMIT`), over TLS with the test CA.
    """

    protocol = _HostileAnswer
    noisy = False

    def __init__(self, head: bytes, unit: bytes) -> None:
        self.head = head
        self.unit = unit
        self.connections: list[_HostileAnswer] = []
        self.live: set[_HostileAnswer] = set()
        self.port: IListeningPort | None = None

    async def start(self) -> int:
        self.port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(
            serve_https(self)
        )
        return int(self.port.getHost().port)

    async def stop(self) -> None:
        if self.port is not None:
            await self.port.stopListening()
        for connection in list(self.live):
            if connection.transport is not None:
                connection.transport.abortConnection()
        await wait_for(lambda: not self.live, what="the hostile connections to close")

    @property
    def most_sent(self) -> int:
        return max((c.sent for c in self.connections), default=0)


ENDLESS_HEADERS = (
    b"HTTP/1.1 200 OK\r\n",
    b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 40) for i in range(1000)),
)
ENDLESS_CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"%x\r\n%s\r\n" % (64 * 1024, b"b" * 64 * 1024),
)
HUGE_BODY = (
    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (SEND_LIMIT * 2),
    b"c" * 64 * 1024,
)
ENDLESS_HANDSHAKE = (
    b"HTTP/1.1 101 Switching Protocols\r\n",
    b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 40) for i in range(1000)),
)


class HostileAnswerTests(Fixture):
    """
    Each attack against the real relay, with a good websocket bot on the
    same node.
    """

    timeout = 90

    async def _attack(
        self, answer: tuple[bytes, bytes], scheme: str, status: Any, *extra: str, wake: bool = False
    ) -> tuple[str, HostileServer]:
        await self.start_discord()
        hostile_bot = self.sim.add_bot(
            token=HOSTILE_TOKEN, user_id=HOSTILE_ID, privileged_intents=MESSAGE_CONTENT
        )
        relay = await RelayProcess.started(self, self.data_dir, self.sim.api_url, *extra)
        good = WebSocketBot()
        await self.start_bot(good)
        server = HostileServer(*answer)
        port = await server.start()
        self.addCleanup(server.stop)

        code, body = await relay.register(self.body(good.url), alias="good")
        self.assertEqual(code, 201, body)
        if wake:
            # nothing listens where dst points: the bot is asleep, woken
            # through its wakeUrl
            dead = WebSocketBot()
            await dead.start()
            dst = dead.url
            await dead.stop()
            hostile = self.body(dst, token=HOSTILE_TOKEN, wakeUrl=f"https://127.0.0.1:{port}/wake")
        else:
            hostile = self.body(f"{scheme}://127.0.0.1:{port}/hook", token=HOSTILE_TOKEN)
        code, body = await relay.register(hostile, alias="hostile")
        self.assertEqual(code, 201, body)
        await self.bot.wait_for_ready()
        await hostile_bot.wait_for_ready()
        await wait_for(
            lambda: all(
                [s.state for s in relay.relay(alias).shards] == ["ready"]
                for alias in ("good", "hostile")
            ),
            what="both bots' shards to be ready",
        )

        before = rss()
        hostile_bot.message("cookout for the hostile bot")
        sent = self.bot.message("cookout for the good bot")
        problem = await wait_for(
            lambda: status(relay.relay("hostile")), timeout=30, what="the hostile bot's status"
        )
        await wait_for(lambda: sent in good.wire, what="the good bot's dispatch")
        grown = rss() - before
        self.assertLess(server.most_sent, SENT_BOUND)
        self.assertLess(grown, RSS_BOUND)
        # the good bot keeps receiving after the attack, too
        later = self.bot.message("cookout again")
        await wait_for(lambda: later in good.wire, what="the good bot's next dispatch")
        return str(problem), server

    @staticmethod
    def _delivery_error(relay: Any) -> str | None:
        error: str | None = public_json(relay.snapshot())["lastDeliveryError"]
        return error if error and "cut off" in error else None

    @staticmethod
    def _wake_error(relay: Any) -> str | None:
        wake = relay.snapshot(private=True).wake_url
        error: str | None = wake.last_error if wake is not None else None
        return error if error and "cut off" in error else None

    @deferred_test
    async def test_webhook_endless_headers(self) -> None:
        """
        A webhook answering header lines without end: cut at
        ``--max-answer-headers``, the delivery failed with that reason.
        """
        problem, _ = await self._attack(ENDLESS_HEADERS, "https", self._delivery_error)
        self.assertEqual(
            problem,
            "the bot's answer was cut off: it had over 100 header lines (--max-answer-headers)",
        )

    @deferred_test
    async def test_webhook_long_headers(self) -> None:
        """
        The same with a higher line cap: cut at ``--max-answer-head`` bytes.
        """
        problem, _ = await self._attack(
            ENDLESS_HEADERS, "https", self._delivery_error, "--max-answer-headers", "100000"
        )
        self.assertEqual(
            problem,
            f"the bot's answer was cut off: its headers were over {AnswerCaps().head_bytes} "
            "bytes (--max-answer-head)",
        )

    @deferred_test
    async def test_webhook_endless_chunked_body(self) -> None:
        """
        A webhook answering 200 with a chunked body without end: streamed,
        dropped, cut at ``--max-answer-body``; the delivery failed.
        """
        problem, _ = await self._attack(
            ENDLESS_CHUNKED, "https", self._delivery_error, "--max-answer-body", "100000"
        )
        self.assertEqual(
            problem,
            "the bot's answer was cut off: its body was over 100000 bytes (--max-answer-body)",
        )

    @deferred_test
    async def test_wake_url_huge_body(self) -> None:
        """
        A ``wakeUrl`` answering with a huge body: cut at
        ``--max-answer-body``, counted as a failed wake request.
        """
        problem, _ = await self._attack(HUGE_BODY, "https", self._wake_error, wake=True)
        self.assertEqual(
            problem,
            "the wakeUrl: the answer was cut off: its body was over "
            f"{AnswerCaps().body_bytes} bytes (--max-answer-body)",
        )

    @deferred_test
    async def test_websocket_endless_handshake(self) -> None:
        """
        A ``wss`` bot answering the handshake with header lines without
        end: cut at ``--max-answer-head`` bytes, not at the 30 s connect
        timeout.
        """
        problem, _ = await self._attack(ENDLESS_HANDSHAKE, "wss", self._delivery_error)
        self.assertEqual(
            problem,
            "the bot's answer to the websocket handshake was cut off: its headers were over "
            f"{AnswerCaps().head_bytes} bytes (--max-answer-head)",
        )
