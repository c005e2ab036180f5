"""
One :class:`~dccrelay.relay.relay.Relay` on a memory clock, with fake neighbours:
a gateway connection the test feeds frames into, a delivery channel whose
state and counts the test sets, Discord's REST calls recorded, and wake
requests recorded.  For the relay's own behaviour (waking, deferring,
commands), without sockets.
"""

from __future__ import annotations

from random import Random
from typing import Any

import orjson
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import MemoryReactorClock

from dccrelay.delivery import ChannelSnapshot
from dccrelay.filters import compile_criteria
from dccrelay.gateway.rest import DiscordHTTPError, GatewayInfo
from dccrelay.relay.relay import Relay, RelayEnvironment
from dccrelay.relay.settings import RelaySettings
from tests.memory_store import MemoryRelayStore

TOKEN = "MTEx.Gg.token"
#: the user READY names: the id TOKEN begins with
READY_USER = {"id": "111", "username": "cookout", "bot": True}
SECRET = "admin:c2VjcmV0c2VjcmV0"


class FakeREST:
    """
    Discord's REST API as the relay calls it: every call recorded; an
    answer can be held back (``hold``) or refused (``refuse``).
    """

    api_base = "https://discord.example/api/v10"

    def __init__(self, shards: int = 1) -> None:
        self.shards = shards
        #: how many times ``GET /gateway/bot`` was asked
        self.calls = 0
        self.typing: list[str] = []
        self.callbacks: list[tuple[str, str, dict[str, Any]]] = []
        self.held: list[Deferred[None]] = []
        self.hold = False
        self.refuse: DiscordHTTPError | None = None

    def get_gateway_bot(self, token: str) -> Deferred[GatewayInfo]:
        self.calls += 1
        return succeed(GatewayInfo("wss://gateway.example", self.shards, 1, 1000, 0.0))

    def _answer(self) -> Deferred[None]:
        if self.refuse is not None:
            d: Deferred[None] = Deferred()
            d.errback(self.refuse)
            return d
        if self.hold:
            d = Deferred()
            self.held.append(d)
            return d
        return succeed(None)

    def trigger_typing(self, token: str, channel_id: str) -> Deferred[None]:
        self.typing.append(channel_id)
        return self._answer()

    def create_interaction_response(
        self,
        token: str,
        interaction_id: str,
        interaction_token: str,
        response: dict[str, Any],
        max_wait: float | None = None,
    ) -> Deferred[None]:
        self.callbacks.append((interaction_id, interaction_token, response))
        return self._answer()


class RecordingChannel:
    """
    A delivery channel that keeps what it is given (and hands it on, as
    :meth:`pending`, when the relay replaces it).
    """

    connected = False

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.delivered: list[bytes] = list(kwargs.get("initial", ()))
        self.stopped = False

    def start(self) -> None:
        pass

    def deliver(self, payload: bytes, checkpoint: Any = None) -> None:
        self.delivered.append(payload)

    def stop(self) -> Deferred[None]:
        self.stopped = True
        return succeed(None)

    def pending(self) -> list[bytes]:
        return list(self.delivered)

    def snapshot(self) -> ChannelSnapshot:
        return ChannelSnapshot("idle", 0, 0, 0, None)


class FakeChannel:
    """
    A delivery channel whose state and figures the test sets; it keeps
    what it is given and the keyword arguments it was made with.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.payloads: list[bytes] = []
        self.state = "idle"
        self.delivered = 0
        self.dropped = 0

    def start(self) -> None:
        pass

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    def deliver(self, payload: bytes) -> None:
        self.payloads.append(payload)

    def take(self, count: int = 1) -> None:
        """
        The bot took (acknowledged) the oldest ``count`` payloads not taken
        yet.
        """
        taken = self.payloads[self.delivered : self.delivered + count]
        self.delivered += len(taken)
        self.kwargs["owner"].channel_delivered(taken)

    def stop(self) -> Deferred[None]:
        return succeed(None)

    def pending(self) -> list[bytes]:
        return []

    def snapshot(self) -> ChannelSnapshot:
        return ChannelSnapshot(
            self.state,
            len(self.payloads) - self.delivered - self.dropped,
            self.dropped,
            self.delivered,
            None,
        )

    def sent(self, index: int = -1) -> bytes:
        """
        A payload as the channel would write it (with the relay's
        annotation, if any).
        """
        owner = self.kwargs["owner"]
        payload: bytes = owner.annotate(self.payloads[index])
        return payload


class FakeConnection:
    """
    The gateway connection a shard opened; the test plays Discord.
    """

    def __init__(self, listener: Any, clock: MemoryReactorClock, url: str = "") -> None:
        self.listener = listener
        self.clock = clock
        self.url = url
        self.sent: list[dict[str, Any]] = []
        self.closed: int | None = None

    def send(self, payload: dict[str, Any]) -> None:
        self.sent.append(payload)

    def close(self, code: int) -> None:
        """
        The relay closes: the connection is gone on the next turn.
        """
        self.closed = code
        self.clock.callLater(0, self.listener.connection_closed, code, "")

    def abort(self) -> None:
        self.clock.callLater(0, self.listener.connection_closed, None, "")

    def drop(self, code: int | None = 4000) -> None:
        """
        Discord closes the connection.
        """
        self.listener.connection_closed(code, "")

    def frame(self, payload: dict[str, Any]) -> bytes:
        data = orjson.dumps(payload)
        self.listener.frame_received(data)
        return data

    def commands(self, op: int | None = None) -> list[dict[str, Any]]:
        """
        What the relay sent besides heartbeats, IDENTIFY and RESUME.
        """
        return [
            p for p in self.sent
            if p["op"] not in (1, 2, 6) and (op is None or p["op"] == op)
        ]


class FakeWakeHTTP:
    """
    The outbound treq client, for wake requests: records them; they
    never answer unless the test fires them.
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.pending: list[Deferred[Any]] = []

    def get(self, url: str, **kwargs: Any) -> Deferred[Any]:
        self.requests.append((url, kwargs))
        d: Deferred[Any] = Deferred()
        self.pending.append(d)
        return d


class RelayHarness:
    """
    A relay and its fakes.
    """

    def __init__(self, store: MemoryRelayStore | None = None, **env: Any) -> None:
        self.clock = MemoryReactorClock()
        self.store = store if store is not None else MemoryRelayStore()
        self.store.open()
        self.rest = FakeREST()
        self.wake_http = FakeWakeHTTP()
        self.channels: list[FakeChannel] = []
        self.connections: list[FakeConnection] = []
        self.fatal: list[str] = []
        self.seq = 0
        self.env = RelayEnvironment(
            clock=self.clock,
            random=Random(0),
            store=self.store,
            rest=self.rest,  # type: ignore[arg-type]
            connect=self.connect,
            compile_filter=compile_criteria,
            make_delivery=self.make_delivery,
            retry_policy=lambda attempt: 1.0,
            wake_http=self.wake_http,
            **env,
        )

    def connect(self, url: str, listener: Any) -> Deferred[Any]:
        connection = FakeConnection(listener, self.clock, url)
        self.connections.append(connection)
        return succeed(connection)

    def make_delivery(self, **kwargs: Any) -> FakeChannel:
        channel = FakeChannel(**kwargs)
        self.channels.append(channel)
        return channel

    @property
    def channel(self) -> FakeChannel:
        return self.channels[-1]

    def settings(self, **changes: Any) -> RelaySettings:
        values: dict[str, Any] = {
            "token": TOKEN,
            "dst": "wss://bot.example/dcc",
            "client_secret": SECRET,
            "criteria": {"t": {"$in": ["MESSAGE_CREATE", "INTERACTION_CREATE"]}},
        }
        values.update(changes)
        return RelaySettings(**values)

    def relay(self, testcase: Any, **settings: Any) -> Relay:
        """
        A started relay whose shards are all ready.
        """
        relay = Relay(
            "cookout",
            self.settings(**settings),
            self.env,
            on_fatal=lambda alias, reason: self.fatal.append(reason),
        )
        self.relay_ = relay
        testcase.successResultOf(relay.start())
        greeted = 0
        for _ in range(len(relay.shards) + 2):
            self.clock.advance(0)
            for shard_id, connection in list(enumerate(self.connections))[greeted:]:
                connection.frame({"op": 10, "d": {"heartbeat_interval": 41250}})
                connection.frame(
                    {
                        "op": 0, "t": "READY", "s": 1,
                        "d": {
                            "session_id": f"session{shard_id}",
                            "resume_gateway_url": "wss://resume.example",
                            "user": READY_USER,
                        },
                    }
                )
            greeted = len(self.connections)
            if {s.state for s in relay.shards} == {"ready"}:
                break
            # the next identify slot
            self.clock.advance(5)
        testcase.assertEqual({s.state for s in relay.shards}, {"ready"})
        return relay

    def dispatch(self, t: str, d: dict[str, Any], shard_id: int = 0) -> bytes:
        self.seq += 1
        return self.connections[shard_id].frame({"t": t, "s": self.seq + 1, "op": 0, "d": d})
