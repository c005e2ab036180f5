"""
``python -m bench.receiver``: the bots' end of a benchmark, in a process of
its own.  It accepts websocket v1 and v2 deliveries (``/ws/<alias>``, with
one :func:`dccrelay.client.receiver.receiver_resource` per bot, as each bot
would mount its own: v2 ids are per bot, and a receiver drops an id it has
seen, so one receiver shared by every bot would count only some of their
dispatches, acknowledging the rest unseen) and webhook batches
(``POST /hook/<alias>``, answered 204 without checking the signature), and
for each dispatch compares the nanosecond timestamp that the simulator's
load generator put in its ``nonce`` with this machine's clock.

A websocket dispatch written by the generator before the relay's
connection to this bot was opened had to wait for that connection (the
relay dials a bot when it has something for it): those are counted apart,
as ``cold``, from the steady state of a bot whose connection is open.

For a bot's first connection it also notes when the relay's TCP connection
was accepted and when its websocket request arrived (after the TLS
handshake), so a cold delivery's time can be cut into phases: the relay's
work before it dials (filter, address check, connect), the TLS handshake and
upgrade request, and the opening answer until the first frame.

``GET /stats`` gives the count and the latency percentiles since the last
``POST /reset``.  It prints ``receiver listening on <port>`` once ready.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import orjson
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.task import react
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from dccrelay.client.receiver import receiver_resource

SECRET = "bench:YmVuY2gtcmVjZWl2ZXItc2VjcmV0"


class Tally:
    """Dispatches received and how long each took, in nanoseconds."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.latencies: list[int] = []
        self.cold: list[int] = []
        self.last_ns = 0
        #: per connection, the first cold dispatch: (written, accepted,
        #: requested, received) in ns
        self.first_cold: list[tuple[int, int, int, int]] = []

    def dispatch(self, data: bytes, opened: "Opened | None" = None) -> None:
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            payload = None
        self.note(payload, opened)

    def note(self, payload: Any, opened: "Opened | None" = None) -> None:
        """
        :param opened: when the connection it came on was opened.
        """
        now = time.time_ns()
        self.count += 1
        self.last_ns = now
        d = payload.get("d") if isinstance(payload, dict) else None
        nonce = d.get("nonce") if isinstance(d, dict) else None
        if isinstance(nonce, str) and nonce.isdigit():
            written = int(nonce)
            if opened is not None and written < opened.requested_ns:
                self.cold.append(now - written)
                if not opened.first_noted:
                    opened.first_noted = True
                    self.first_cold.append(
                        (written, opened.accepted_ns, opened.requested_ns, now)
                    )
            else:
                self.latencies.append(now - written)

    def stats(self) -> dict[str, Any]:
        ordered, cold = sorted(self.latencies), sorted(self.cold)

        def cut(values: list[int], q: float) -> float | None:
            if not values:
                return None
            return values[min(len(values) - 1, int(q * len(values)))] / 1e6

        return {
            "count": self.count,
            "samples": len(ordered),
            "last_ns": self.last_ns,
            "p50_ms": cut(ordered, 0.50),
            "p95_ms": cut(ordered, 0.95),
            "p99_ms": cut(ordered, 0.99),
            "max_ms": cut(ordered, 1.0),
            "cold_samples": len(cold),
            "cold_p50_ms": cut(cold, 0.50),
            "cold_max_ms": cut(cold, 1.0),
            "first_cold": self.first_cold,
        }


class Opened:
    """When one connection was accepted and its websocket request arrived."""

    def __init__(self, accepted_ns: int, requested_ns: int) -> None:
        self.accepted_ns = accepted_ns
        self.requested_ns = requested_ns
        self.first_noted = False


class Accepted(ProtocolWrapper):
    """Outermost on each accepted connection: notes when it was accepted."""

    def makeConnection(self, transport: Any) -> None:
        self.accepted_ns = time.time_ns()
        super().makeConnection(transport)


def accepted_ns(request: Request) -> int:
    """When the connection ``request`` came on was accepted (0 if unknown)."""
    transport: Any = request.channel.transport
    for _ in range(4):
        if transport is None:
            break
        if isinstance(transport, Accepted):
            return transport.accepted_ns
        transport = getattr(transport, "transport", None)
    return 0


class PerBot(Resource):
    """
    ``/ws/<alias>``: each bot's own websocket receiver, made on its first
    connection (outbox ids are per bot, and a v2 receiver takes an id it has
    seen as a redelivery), and the time each connection was opened.
    """

    def __init__(self, tally: Tally, reactor: Any) -> None:
        super().__init__()
        self._tally = tally
        self._reactor = reactor
        self._bots: dict[bytes, Any] = {}
        self._opened: dict[bytes, Opened] = {}

    def getChild(self, path: bytes, request: Request) -> Any:
        # a bot has one connection at a time: this is its opening request
        now = time.time_ns()
        self._opened[path] = Opened(accepted_ns(request) or now, now)
        receiver = self._bots.get(path)
        if receiver is None:
            receiver = self._bots[path] = receiver_resource(
                SECRET,
                lambda data: self._tally.dispatch(data, self._opened[path]),
                reactor=self._reactor,
            )
        return receiver


class Control(Resource):
    isLeaf = True

    def __init__(self, tally: Tally) -> None:
        super().__init__()
        self._tally = tally

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        return orjson.dumps(self._tally.stats())

    def render_POST(self, request: Request) -> bytes:
        self._tally.reset()
        return b"{}"


class Hook(Resource):
    isLeaf = True

    def __init__(self, tally: Tally) -> None:
        super().__init__()
        self._tally = tally

    def render_POST(self, request: Request) -> bytes:
        assert request.content is not None
        batch = orjson.loads(request.content.read())
        for payload in batch.get("dispatches", ()):
            self._tally.note(payload)
        request.setResponseCode(204)
        return b""


def site(tally: Tally, reactor: Any) -> Site:
    """
    The receiver's web site: ``/ws/<alias>``, ``/hook/<alias>``, ``/stats``.
    """
    root = Resource()
    root.putChild(b"ws", PerBot(tally, reactor))
    root.putChild(b"hook", Hook(tally))
    root.putChild(b"stats", Control(tally))
    return Site(root, reactor=reactor)


async def main(reactor: Any, listen: str, tls_cert: str | None = None) -> None:
    tally = Tally()
    served: Any = site(tally, reactor)
    if tls_cert is not None:
        # As most bots are reached: wss:// and https://.
        from dccrelay.testing.tls import serve_tls, server_options_from_pem

        with open(tls_cert, "rb") as f:
            served = serve_tls(server_options_from_pem(f.read()), served)
    served = WrappingFactory(served)
    served.protocol = Accepted
    port = await serverFromString(reactor, listen).listen(served)
    print(f"receiver listening on {port.getHost().port}", flush=True)
    await Deferred()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.receiver")
    parser.add_argument("--listen", default="tcp:0:interface=127.0.0.1")
    parser.add_argument("--tls-cert", default=None,
                        help="serve wss/https with this PEM file's key and certificate")
    arguments = parser.parse_args()
    react(lambda reactor: Deferred.fromCoroutine(
        main(reactor, arguments.listen, arguments.tls_cert)))
    sys.exit(0)
