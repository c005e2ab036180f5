"""
Bots for the delivery end-to-end tests, on loopback: a websocket bot (v1 or
v2, built on :mod:`dccrelay.client.receiver`) and a webhook bot that checks
each request with the Standard Webhooks reference verifier; both record what
arrived on the wire, so a test can count what was delivered, duplicated and
lost.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

import orjson
from autobahn.twisted.resource import WebSocketResource
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import deferLater
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from dccrelay.client.receiver import (
    DispatchReceiverFactory,
    DispatchReceiverProtocol,
    parse_v2_frame,
)
from tests.harness import SECRET, serve_https, wait_for

#: where the end-to-end tests append their counts, one JSON object a line,
#: when set (for reports; the tests assert on the counts themselves)
REPORT = os.environ.get("DCC_DELIVERY_REPORT")


def report(mode: str, fault: str, sent: list[bytes], wire: list[bytes]) -> dict[str, int]:
    """
    Count, from the payloads sent by the simulator and those that arrived at
    the bot (in arrival order, duplicates included): delivered (distinct),
    duplicated (arrivals beyond the first) and lost; optionally write them
    to :data:`REPORT`.
    """
    wanted = set(sent)
    arrived = [p for p in wire if p in wanted]
    counts = {
        "sent": len(sent),
        "delivered": len(set(arrived)),
        "duplicated": len(arrived) - len(set(arrived)),
        "lost": len(wanted - set(arrived)),
    }
    if REPORT:
        with open(REPORT, "a") as f:
            f.write(json.dumps({"mode": mode, "fault": fault, **counts}) + "\n")
    return counts


def first_arrivals(wire: list[bytes]) -> list[bytes]:
    """
    ``wire`` without repeats, in order of first arrival.
    """
    seen: set[bytes] = set()
    order = []
    for payload in wire:
        if payload not in seen:
            seen.add(payload)
            order.append(payload)
    return order


class _Protocol(DispatchReceiverProtocol):
    def onOpen(self) -> None:
        super().onOpen()
        self.factory.bot.live.add(self)  # type: ignore[attr-defined]
        self._counted = True

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        bot: WebSocketBot = self.factory.bot  # type: ignore[attr-defined]
        if self._v2:
            parsed = parse_v2_frame(payload)
            if parsed is not None:
                bot.wire_ids.append(parsed[0])
                bot.wire.append(parsed[1])
        else:
            bot.wire.append(payload)
        super().onMessage(payload, isBinary)

    def connectionLost(self, reason: Any = None) -> None:
        super().connectionLost(reason)
        if getattr(self, "_counted", False):
            self._counted = False
            self.factory.bot.live.discard(self)  # type: ignore[attr-defined]


class WebSocketBot:
    """
    A websocket bot on loopback; ``handle_delay`` seconds per dispatch
    before its handler's Deferred fires (v2 acks after that).
    """

    def __init__(self, handle_delay: float = 0.0) -> None:
        self.handle_delay = handle_delay
        self.wire: list[bytes] = []
        self.wire_ids: list[int] = []
        self.handled: list[bytes] = []
        self.live: set[_Protocol] = set()
        self.handling = 0
        self.port: IListeningPort | None = None
        self.port_number = 0
        self.factory = self._new_factory()

    def _new_factory(self) -> DispatchReceiverFactory:
        factory = DispatchReceiverFactory(SECRET, self._handle, reactor=reactor)
        factory.protocol = _Protocol
        factory.bot = self  # type: ignore[attr-defined]
        return factory

    def _handle(self, payload: bytes) -> Deferred[None] | None:
        self.handled.append(payload)
        if not self.handle_delay:
            return None
        self.handling += 1

        def done(_: object) -> None:
            self.handling -= 1

        return deferLater(reactor, self.handle_delay, lambda: None).addCallback(done)

    async def start(self, port: int = 0, *, restarted: bool = False) -> str:
        if restarted:
            # a new bot process: it remembers no ids
            self.factory = self._new_factory()
        root = Resource()
        root.putChild(b"dcc", WebSocketResource(self.factory))
        self.port = await serverFromString(
            reactor, f"tcp:{port}:interface=127.0.0.1"
        ).listen(serve_https(Site(root)))
        self.port_number = self.port.getHost().port
        return self.url

    @property
    def url(self) -> str:
        return f"wss://127.0.0.1:{self.port_number}/dcc"

    async def stop(self) -> None:
        if self.port is not None:
            port, self.port = self.port, None
            await port.stopListening()
        for connection in list(self.live):
            if connection.transport is not None:
                connection.transport.abortConnection()
        await wait_for(lambda: not self.live, what="bot connections to close")
        await wait_for(lambda: not self.handling, what="the handlers to finish")


class WebhookBot(Resource):
    """
    A webhook bot on loopback.  Each POST is checked with the reference
    verifier and ``secret``; a bad one is answered 401 and counted in
    ``rejected``.  Good ones are answered from ``script`` (status codes),
    then 204.
    """

    isLeaf = True

    def __init__(self, secret: str = SECRET) -> None:
        super().__init__()
        self.verifier = Webhook(secret.encode("utf-8"))
        self.script: list[int] = []
        self.wire: list[bytes] = []
        self.wire_ids: list[int] = []
        #: the webhook-id each payload of ``wire`` came under
        self.wire_webhook_ids: list[str] = []
        self.requests: list[dict[str, str]] = []
        self.codes: list[int] = []
        self.rejected: list[str] = []
        self.port: IListeningPort | None = None
        self.port_number = 0
        self.on_request: Callable[[], object] | None = None
        #: seconds before a good request is answered
        self.response_delay = 0.0
        self._answers: list[Any] = []

    def render_POST(self, request: Request) -> bytes | int:
        headers = {
            name.decode().lower(): values[0].decode()
            for name, values in request.requestHeaders.getAllRawHeaders()
        }
        assert request.content is not None
        body = request.content.read()
        self.requests.append(headers)
        try:
            self.verifier.verify(body, headers)
        except WebhookVerificationError as e:
            self.rejected.append(str(e))
            request.setResponseCode(401)
            self.codes.append(401)
            return b"bad signature"
        code = self.script.pop(0) if self.script else 204
        self.codes.append(code)
        if 200 <= code < 300:
            # what the bot takes (counted even if its answer never reaches
            # the relay: that is how duplicates happen)
            batch = orjson.loads(body)
            self.wire_ids.extend(batch["ids"])
            self.wire_webhook_ids.extend([headers["webhook-id"]] * len(batch["ids"]))
            # each payload's own bytes, cut out of the body
            self.wire.extend(_split_payloads(body, len(batch["ids"])))
        if self.on_request is not None:
            self.on_request()
        if not self.response_delay:
            request.setResponseCode(code)
            return b""

        def later() -> None:
            if not request.finished and not request._disconnected:  # type: ignore[attr-defined]
                request.setResponseCode(code)
                request.finish()

        self._answers = [c for c in self._answers if c.active()]
        self._answers.append(reactor.callLater(self.response_delay, later))
        return NOT_DONE_YET

    async def start(self, port: int = 0) -> str:
        self.port = await serverFromString(
            reactor, f"tcp:{port}:interface=127.0.0.1"
        ).listen(serve_https(Site(self)))
        self.port_number = self.port.getHost().port
        return self.url

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port_number}/hook"

    async def stop(self) -> None:
        for call in self._answers:
            if call.active():
                call.cancel()
        if self.port is not None:
            port, self.port = self.port, None
            await port.stopListening()


def _split_payloads(body: bytes, count: int) -> list[bytes]:
    """
    The payloads of a batch body, byte for byte: the body is
    ``{"type":"dispatches","dispatches":[p1,p2,...],"ids":[...]}``, and each
    payload is a JSON object, so split on top-level commas.
    """
    start = body.index(b'"dispatches":[') + len(b'"dispatches":[')
    payloads = []
    depth = 0
    in_string = False
    escaped = False
    begin = start
    for i in range(start, len(body)):
        c = body[i : i + 1]
        if in_string:
            if escaped:
                escaped = False
            elif c == b"\\":
                escaped = True
            elif c == b'"':
                in_string = False
        elif c == b'"':
            in_string = True
        elif c in (b"{", b"["):
            depth += 1
        elif c in (b"}", b"]"):
            if depth == 0:
                payloads.append(body[begin:i])
                break
            depth -= 1
        elif c == b"," and depth == 0:
            payloads.append(body[begin:i])
            begin = i + 1
    assert len(payloads) == count, (payloads, count)
    return payloads

