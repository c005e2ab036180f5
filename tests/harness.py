"""
Pieces for loopback end-to-end tests: the real relay service, a real bot
receiver, and waiting without sleeping longer than needed.
"""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable, Mapping

import orjson
from autobahn.twisted.resource import WebSocketResource
from treq.client import HTTPClient
from twisted.application.service import IService
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import LoopingCall, deferLater
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import Site

from dccrelay.client.receiver import DispatchReceiverFactory, DispatchReceiverProtocol
from dccrelay.net.tls import ClientTLS
from dccrelay.tap import Options, makeService
from dccrelay.testing.simulator import DiscordSimulator, SimulatedBot
from dccrelay.testing.tls import ThrowAwayCA, serve_tls

LOOPBACK = "tcp:0:interface=127.0.0.1"

#: the test run's certificate authority: the simulator and the bots serve
#: TLS with certificates it issued, as Discord and most bots do, and the
#: relays these tests start trust it
TEST_CA = ThrowAwayCA()
#: what a relay in this process trusts: the test CA only
TRUST_TEST_CA = ClientTLS(trust_root=TEST_CA.trust_root())

# The tests' own HTTP client (to the relay's API, and as test bots to the
# simulator's REST API), trusting the test CA.  No persistent connections:
# a test's reactor must be clean when it ends.
http = HTTPClient(
    Agent(reactor, contextFactory=TRUST_TEST_CA, pool=HTTPConnectionPool(reactor, persistent=False))
)


def tls_simulator(**options: Any) -> DiscordSimulator:
    """The Discord simulator on the real reactor, serving https and wss."""
    return DiscordSimulator(reactor, tls=TEST_CA.server_options(), **options)


def serve_https(factory: Any) -> Any:
    """``factory`` behind TLS with the test CA's loopback certificate."""
    return serve_tls(TEST_CA.server_options(), factory)

SECRET = "admin:bG9vcGJhY2stc2VjcmV0"


async def wait_for(
    condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition"
) -> Any:
    """
    Poll ``condition`` every 10 ms until it is true; fail after ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await deferLater(reactor, 0.01, lambda: None)


class BotReceiver:
    """
    A bot's websocket endpoint on loopback, built on ``dccrelay.client``.
    """

    def __init__(self, secret: str = SECRET, tls: bool = True) -> None:
        self.tls = tls
        self.received: list[bytes] = []
        self.queue: DeferredQueue[bytes] = DeferredQueue()
        self.factory = DispatchReceiverFactory(secret, self._on_dispatch, reactor=reactor)
        self.factory.protocol = _TrackingProtocol
        self.factory.opened = 0  # type: ignore[attr-defined]
        self.factory.open_now = 0  # type: ignore[attr-defined]
        self.port: IListeningPort | None = None
        self.port_number = 0

    def _on_dispatch(self, data: bytes) -> None:
        self.received.append(data)
        self.queue.put(data)

    @property
    def opened(self) -> int:
        return self.factory.opened  # type: ignore[attr-defined, no-any-return]

    @property
    def open_now(self) -> int:
        return self.factory.open_now  # type: ignore[attr-defined, no-any-return]

    async def start(self, port: int = 0) -> str:
        root = Resource()
        dcc = Resource()
        v1 = Resource()
        root.putChild(b"dcc", dcc)
        dcc.putChild(b"v1", v1)
        v1.putChild(b"cookout", WebSocketResource(self.factory))
        site: Any = Site(root)
        if self.tls:
            site = serve_https(site)
        self.port = await serverFromString(
            reactor, f"tcp:{port}:interface=127.0.0.1"
        ).listen(site)
        self.port_number = self.port.getHost().port
        return self.url

    @property
    def url(self) -> str:
        """
        Where the bot listens (or listened, and will again).
        """
        scheme = "wss" if self.tls else "ws"
        return f"{scheme}://127.0.0.1:{self.port_number}/dcc/v1/cookout"

    async def stop(self) -> None:
        if self.port is not None:
            port, self.port = self.port, None
            await port.stopListening()
        for protocol in list(_TrackingProtocol.live):
            if protocol.factory is self.factory and protocol.transport is not None:
                protocol.transport.abortConnection()
        await wait_for(lambda: self.open_now == 0, what="bot connections to close")


class _TrackingProtocol(DispatchReceiverProtocol):
    live: set[_TrackingProtocol] = set()

    def onOpen(self) -> None:
        super().onOpen()
        self._open = True
        self.live.add(self)
        self.factory.opened += 1
        self.factory.open_now += 1

    def connectionLost(self, reason: Any = None) -> None:
        super().connectionLost(reason)
        if getattr(self, "_open", False):
            self._open = False
            self.live.discard(self)
            self.factory.open_now -= 1


class RelayProcess:
    """
    The real ``twistd dcc`` service tree, in this process, on loopback.
    """

    def __init__(
        self, data_dir: str, discord_api: str, *extra: str, tls: ClientTLS = TRUST_TEST_CA
    ) -> None:
        options = Options()
        options.parseOptions(
            [
                "--listen", LOOPBACK,
                "--data-dir", data_dir,
                "--discord-api", discord_api,
                "--allow-private-dst",
                *extra,
            ]
        )
        self.service: IService = makeService(options, reactor, tls=tls)
        self.base = ""

    async def start(self) -> None:
        self.service.startService()
        http = self.service.getServiceNamed("http")
        # strports' service keeps the listening port here once bound.
        port = await http._waitingForPort  # type: ignore[attr-defined]
        self.base = f"http://127.0.0.1:{port.getHost().port}"
        manager = self.service.getServiceNamed("store").getServiceNamed("relays")
        await manager.ready

    async def stop(self) -> None:
        """Stop the relay, unless a test stopped it already."""
        if self.service.running:
            await self.service.stopService()

    @classmethod
    async def started(
        cls, case: TestCase, data_dir: str, discord_api: str, *extra: str
    ) -> RelayProcess:
        """
        A relay started for ``case``, stopped when it ends (if still running).
        """
        relay = cls(data_dir, discord_api, *extra)
        await relay.start()
        case.addCleanup(relay.stop)
        return relay

    @property
    def manager(self) -> Any:
        return self.service.getServiceNamed("store").getServiceNamed("relays")

    async def request(
        self, method: str, path: str, body: Any = None, secret: str | None = None
    ) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs["data"] = orjson.dumps(body)
            kwargs["headers"] = {"Content-Type": ["application/json"]}
        if secret is not None:
            user, _, password = secret.partition(":")
            kwargs["auth"] = (user, password)
        response = await http.request(method, self.base + path, **kwargs)
        content = await response.content()
        try:
            return response.code, orjson.loads(content)
        except orjson.JSONDecodeError:
            return response.code, content

    async def register(self, body: dict[str, Any], alias: str = "cookout", secret: str | None = None) -> tuple[int, Any]:
        return await self.request("PUT", f"/relays/{alias}", body, secret=secret)

    def relay(self, alias: str = "cookout") -> Any:
        return self.manager.relays[alias]


class MessageFlow:
    """
    A numbered message from every bot of ``bots`` (alias -> simulated bot)
    every ``interval`` seconds, from now until :meth:`stop`; a bot without a
    live connection has Discord buffer it for RESUME.  :attr:`sent` holds
    what was sent, in order.
    """

    def __init__(self, bots: Mapping[str, SimulatedBot], interval: float = 0.2) -> None:
        self.sent: list[bytes] = []
        self._bots = bots
        self._rounds = 0
        self._loop = LoopingCall(self._send)
        self._loop.clock = reactor
        self._loop.start(interval)

    def _send(self) -> None:
        n, self._rounds = self._rounds, self._rounds + 1
        for alias, bot in self._bots.items():
            self.sent.append(bot.message(f"{alias} {n}"))

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()


def next_item(queue: DeferredQueue[bytes], timeout: float = 10.0) -> Awaitable[bytes]:
    """
    The next item from ``queue``, or a failure after ``timeout``.
    """
    d: Deferred[bytes] = queue.get()
    d.addTimeout(timeout, reactor)
    return d
