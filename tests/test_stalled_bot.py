"""
A websocket bot that completes the handshake and then never reads (issue
17, item 4), against a real ``twistd dcc`` over TLS: its dispatches wait in
its own bounded queue, the excess counted as dropped, and the relay's
memory and the other bots do not notice.
"""

from __future__ import annotations

from typing import Any

import orjson
from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from dccrelay.delivery.websocket import STALLED
from dccrelay.testing.codes import MESSAGE_CONTENT
from tests.harness import (
    LOOPBACK,
    SECRET,
    BotReceiver,
    http,
    next_item,
    serve_https,
    tls_simulator,
    wait_for,
)
from tests.test_end_to_end import deferred_test
from tests.twistd_process import put_relay, run_relay

STALLED_TOKEN = "MjIyMjIyMjIyMjIyMjIyMjIy.Gg1234.stalled-token"
GOOD_TOKEN = "MzMzMzMzMzMzMzMzMzMzMzMz.Gg1234.good-token"
QUEUE_LIMIT = 50
ROUNDS = 30
PER_ROUND = 100
BIG = 60_000
#: what the relay's RSS may grow by while 180 MB go to the stalled bot:
#: its queue (50 x 60 kB) and the socket buffers, with room for the
#: allocator; before flow control the whole 180 MB stayed in the relay
RSS_GROWTH_BOUND = 80 * 1024 * 1024


class _NeverReads(WebSocketServerProtocol):
    """
    Accepts the websocket, then stops reading from the socket.
    """

    def onConnect(self, request: Any) -> None:
        self.factory.opened += 1  # type: ignore[attr-defined]

    def onOpen(self) -> None:
        self.transport.pauseProducing()


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


class StalledBotTests(TestCase):
    timeout = 120

    async def serve_stalled_bot(self) -> str:
        factory = WebSocketServerFactory()
        factory.protocol = _NeverReads
        factory.opened = 0  # type: ignore[attr-defined]
        self.stalled_factory = factory
        root = Resource()
        root.putChild(b"dcc", WebSocketResource(factory))
        port: IListeningPort = await serverFromString(reactor, LOOPBACK).listen(
            serve_https(Site(root))
        )

        self.addCleanup(port.stopListening)
        return f"wss://127.0.0.1:{port.getHost().port}/dcc"

    async def status(self, relay_port: int, alias: str) -> dict[str, Any]:
        user, _, password = SECRET.partition(":")
        response = await http.get(
            f"http://127.0.0.1:{relay_port}/relays/{alias}", auth=(user, password)
        )
        return orjson.loads(await response.content())  # type: ignore[no-any-return]

    @deferred_test
    async def test_never_reading_bot(self) -> None:
        """
        3,000 dispatches of 60 kB for a bot that never reads: the relay
        keeps at most ``--queue-limit`` of them and counts the rest as
        dropped (none as delivered beyond what the connection took), its RSS
        stays within a bound far below the 180 MB sent, and another bot on
        the same relay gets every one of its dispatches meanwhile.
        """
        sim = tls_simulator()
        await sim.listen(LOOPBACK)
        self.addCleanup(sim.stop)
        stalled = sim.add_bot(token=STALLED_TOKEN, user_id="2222", privileged_intents=MESSAGE_CONTENT)
        good = sim.add_bot(token=GOOD_TOKEN, user_id="3333", privileged_intents=MESSAGE_CONTENT)
        receiver = BotReceiver()
        await receiver.start()
        self.addCleanup(receiver.stop)
        stalled_dst = await self.serve_stalled_bot()

        relay = run_relay(
            self, sim.api_url, "--data-dir", self.mktemp(), "--queue-limit", str(QUEUE_LIMIT)
        )
        port = await wait_for(lambda: relay.port, what="the relay's API to listen")
        for alias, token, dst in (
            ("stalled", STALLED_TOKEN, stalled_dst),
            ("good", GOOD_TOKEN, receiver.url),
        ):
            code = await put_relay(
                port,
                {
                    "token": token,
                    "intents": 4608 | MESSAGE_CONTENT,
                    "criteria": {"t": "MESSAGE_CREATE"},
                    "dst": dst,
                    "clientSecret": SECRET,
                },
                alias=alias,
            )
            self.assertEqual(code, 201)
        await stalled.wait_for_ready()
        await good.wait_for_ready()
        # the stalled bot's connection opened (on its first dispatch)
        stalled.message("x")
        await wait_for(lambda: self.stalled_factory.opened, what="the stalled bot's connection")
        rss_before = _rss(relay.transport.pid)

        big = "x" * BIG
        for round_number in range(ROUNDS):
            for _ in range(PER_ROUND):
                stalled.message(big)
            # Paced by the good bot: each round ends when its dispatch came.
            sent = good.message(f"round {round_number}")
            self.assertEqual(await next_item(receiver.queue, timeout=30), sent)
        grown = _rss(relay.transport.pid) - rss_before

        status = await self.status(port, "stalled")
        sent_total = ROUNDS * PER_ROUND + 1
        self.assertLessEqual(status["queued"], QUEUE_LIMIT)
        self.assertGreater(status["dropped"], 0)
        self.assertEqual(
            status["counters"]["delivered"] + status["queued"] + status["dropped"], sent_total
        )
        self.assertLess(status["counters"]["delivered"], sent_total // 2)
        self.assertEqual(status["delivery"]["state"], "connected")
        self.assertEqual(status["lastDeliveryError"], STALLED)
        self.assertLess(grown, RSS_GROWTH_BOUND, f"the relay grew by {grown} bytes")
        self.assertEqual(len(receiver.received), ROUNDS)
