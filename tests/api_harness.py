"""
A relay node's HTTP API with in-memory neighbours (Discord, bots, the
store), for the access-control, hostile-input and OpenAPI tests: through
``StubTreq`` synchronously, or served on loopback for real clients.
"""

from __future__ import annotations

from base64 import b64encode
from random import Random
from typing import Any

import orjson
from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.web.resource import Resource

from dccrelay.filters import compile_criteria
from dccrelay.relay.manager import RelayManager
from dccrelay.relay.relay import RelayEnvironment
from dccrelay.relay.settings import parse_settings
from dccrelay.web.access import Access
from dccrelay.web.api_request import APIRequest
from dccrelay.web.site import build_resource
from tests.memory_store import MemoryRelayStore
from tests.relay_harness import FakeREST, RecordingChannel

SECRET = "admin:c2VjcmV0c2VjcmV0"
BODY = {
    "token": "MTEx.Gg.token",
    "intents": 4608,
    "criteria": {"t": "MESSAGE_CREATE", "$not": {"d.author.bot": True}},
    "dst": "wss://bot.example/dcc/v1/cookout",
    "clientSecret": SECRET,
}
BASE = "http://relay.example"


def basic(secret: str = SECRET) -> dict[str, list[str]]:
    """
    Basic credentials made of a whole clientSecret.
    """
    return {"Authorization": ["Basic " + b64encode(secret.encode()).decode()]}


def bearer(key: str) -> dict[str, list[str]]:
    """
    ``Authorization: Bearer <key>``.
    """
    return {"Authorization": [f"Bearer {key}"]}


class Node:
    """
    A relay manager and its resource tree, on a memory clock.
    """

    def __init__(
        self,
        *,
        max_relays: int = 5,
        access: Access | None = None,
        allow_private: bool = False,
        store: MemoryRelayStore | None = None,
    ) -> None:
        self.clock = MemoryReactorClock()
        self.store = store if store is not None else MemoryRelayStore()
        self.gateway_urls: list[str] = []
        self.channels: list[RecordingChannel] = []
        env = RelayEnvironment(
            clock=self.clock,
            random=Random(0),
            store=self.store,
            rest=FakeREST(),  # type: ignore[arg-type]
            connect=self.connect,
            compile_filter=compile_criteria,
            make_delivery=self.make_delivery,
            retry_policy=lambda attempt: 1.0,
        )
        self.manager = RelayManager(env, self.store, max_relays=max_relays)
        self.store.open()
        self.manager.startService()
        self.allow_private = allow_private
        self.resource: Resource = build_resource(
            self.manager,
            lambda body: parse_settings(
                body, compile_filter=compile_criteria, allow_private_dst=self.allow_private
            ),
            access,
        )
        self.treq = StubTreq(self.resource)
        # The site's own request class (JSON 404/405, capped bodies), as
        # build_site sets it; StubTreq makes a plain Site of its own.
        self.treq._agent._serverFactory.requestFactory = APIRequest  # type: ignore[attr-defined]

    def connect(self, url: str, listener: Any) -> Deferred[Any]:
        self.gateway_urls.append(url)
        return Deferred()

    def make_delivery(self, **kwargs: Any) -> RecordingChannel:
        channel = RecordingChannel(**kwargs)
        self.channels.append(channel)
        return channel

    def stop(self) -> Any:
        return self.manager.stopService()


def answer(
    testcase: Any,
    node: Node,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, list[str]] | None = None,
    raw: bytes | None = None,
) -> tuple[int, Any, Any]:
    """
    One request through ``StubTreq``: ``(code, parsed JSON or bytes,
    response)``.
    """
    data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
    all_headers = {"Content-Type": ["application/json"], **(headers or {})}
    response = testcase.successResultOf(
        node.treq.request(method, BASE + path, data=data, headers=all_headers)
    )
    content = testcase.successResultOf(response.content())
    try:
        parsed = orjson.loads(content)
    except orjson.JSONDecodeError:
        parsed = content
    return response.code, parsed, response
