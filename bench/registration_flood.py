"""
``python -m bench.registration_flood``: issue 17, item 5, measured.

In one process, on loopback: the Discord simulator over TLS and the real
relay service (``dccrelay.tap.makeService``).  A hostile registrant on
another /24 of the loopback network (127.0.1.1) makes ``--puts`` PUTs on one
alias, each with a new bogus token (its clientSecret after the first, as the
alias's owner); then a legitimate owner (127.0.0.1) registers a bot the
simulator knows and waits up to ``--wait`` seconds for its shard to be READY.

Prints the flood's answers by status code, the invalid requests (401, 403,
429) the simulator's REST API answered, and whether the late bot connected
(or its gateway error).  Uses only what every version of the relay has, so
it runs against another tree's ``dccrelay`` (``PYTHONPATH``) for a before
figure.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from base64 import b64encode
from collections import Counter
from typing import Any

import orjson
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import deferLater, react
from twisted.web.client import Agent, HTTPConnectionPool

from dccrelay.net.tls import ClientTLS
from dccrelay.tap import Options, makeService
from dccrelay.testing.simulator import DiscordSimulator
from dccrelay.testing.tls import ThrowAwayCA

SECRET = "flood:Zmxvb2Qtc2VjcmV0LXNlY3JldA"
LATE_TOKEN = "MjIyMjIyMjIyMjIyMjIyMjIy.Gg1234.late-token"


def _client(source: str) -> HTTPClient:
    return HTTPClient(Agent(reactor, bindAddress=(source, 0), pool=HTTPConnectionPool(reactor)))


async def _put(http: HTTPClient, url: str, body: dict[str, Any], secret: str | None) -> int:
    headers = {"Content-Type": ["application/json"]}
    if secret is not None:
        headers["Authorization"] = ["Basic " + b64encode(secret.encode()).decode()]
    response = await http.put(url, data=orjson.dumps(body), headers=headers)
    await response.content()
    return int(response.code)


async def run(puts: int, wait: float) -> None:
    ca = ThrowAwayCA()
    sim = DiscordSimulator(reactor, tls=ca.server_options())
    await sim.listen("tcp:0:interface=127.0.0.1")
    sim.add_bot(token=LATE_TOKEN, user_id="222")
    options = Options()
    options.parseOptions([
        "--listen", "tcp:0:interface=127.0.0.1", "--data-dir", tempfile.mkdtemp(),
        "--discord-api", sim.api_url, "--allow-private-dst",
    ])
    service = makeService(options, reactor, tls=ClientTLS(trust_root=ca.trust_root()))
    service.startService()
    port = await service.getServiceNamed("http")._waitingForPort
    base = f"http://127.0.0.1:{port.getHost().port}"
    manager = service.getServiceNamed("store").getServiceNamed("relays")
    await manager.ready

    def body(token: str) -> dict[str, Any]:
        return {"token": token, "intents": 513, "dst": "ws://127.0.0.1:9/bot", "clientSecret": SECRET}

    hostile = _client("127.0.1.1")
    codes: Counter[int] = Counter()
    started = time.monotonic()
    for n in range(puts):
        code = await _put(hostile, f"{base}/relays/flood", body(f"bogus.{n}.token"), SECRET if n else None)
        codes[code] += 1
    flood_seconds = time.monotonic() - started
    # Let the bots the flood registered make their calls.
    await deferLater(reactor, 2.0, lambda: None)
    invalid_after_flood = sim.rate_limits.invalid
    owner = _client("127.0.0.1")
    late_code = await _put(owner, f"{base}/relays/late", body(LATE_TOKEN), None)
    deadline = time.monotonic() + wait
    state: list[str] = []
    while time.monotonic() < deadline:
        relay = manager.relays.get("late")
        state = [shard.state for shard in relay.shards] if relay is not None else []
        if state == ["ready"]:
            break
        await deferLater(reactor, 0.2, lambda: None)
    late = manager.relays.get("late")
    error = late.snapshot().gateway_error if late is not None else None
    print(f"flood: {puts} PUTs on one alias in {flood_seconds:.1f} s; answers {dict(sorted(codes.items()))}")
    print(f"invalid requests answered by the simulator's REST: {invalid_after_flood}")
    print(
        f"late bot: PUT {late_code}; shard {state or 'none'}"
        + (" -> connected" if state == ["ready"] else f" -> NOT connected within {wait:g} s; gatewayError {error!r}")
    )
    await service.stopService()
    await sim.stop()
    await hostile._agent._pool.closeCachedConnections()
    await owner._agent._pool.closeCachedConnections()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--puts", type=int, default=5000)
    parser.add_argument("--wait", type=float, default=20.0)
    args = parser.parse_args(argv)
    react(lambda _reactor: ensureDeferred(run(args.puts, args.wait)))


if __name__ == "__main__":
    main()
