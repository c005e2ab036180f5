"""
``python -m bench.lease_round``: the reactor time a cluster node's lease
round spends on sharing its bots' statuses (issue 15, goal 5), in process.

It builds ``--bots`` real relays (started, each with one resuming shard and
a websocket channel, on a fake clock; nothing connects anywhere) and runs
the coordinator's status share against a store that answers at once, so
that only the reactor thread's work is timed, one stretch between two
reactor turns at a time:

- **before**: what a round did before this work, reproduced here: every
  bot's snapshot turned into a record with ``dataclasses.asdict`` and every
  record encoded for the store, in one stretch;
- **every bot**: the round before bots counted their status changes,
  reproduced here: every bot's snapshot taken, a slice per reactor turn,
  and only the records that changed published;
- **first round**: the coordinator's first publish (everything);
- **next round**: a round in which ``--changing`` bots had new dispatches
  (through the relay's dispatch path); the others are not snapshotted.

It prints, per case, the total CPU milliseconds and the longest stretch.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from dataclasses import asdict
from random import Random
from typing import Any, Callable, Iterable, Mapping

import orjson
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.task import Clock

from bench.processes import machine
from dccrelay.cluster.coordinator import STATUS_SLICE, ClusterCoordinator, ClusterNode
from dccrelay.delivery.factory import DeliveryFactory
from dccrelay.filters import compile_criteria
from dccrelay.relay.relay import Relay, RelayEnvironment
from dccrelay.relay.settings import RelaySettings
from dccrelay.relay.snapshots import to_record
from dccrelay.store import SessionState, encode_statuses

CRITERIA = {"t": "MESSAGE_CREATE", "$not": {"d.author.bot": True}}
# a dispatch the criteria do not match: counted, not delivered (nothing
# connects anywhere here)
TYPING = b'{"op":0,"s":2,"t":"TYPING_START","d":{"channel_id":"1"}}'


class _AnsweringStore:
    """The cluster store calls of a status share, answered at once."""

    def __init__(self) -> None:
        self.published = 0

    def lease_owners(self) -> Deferred[dict[str, str]]:
        return succeed({})

    def publish_statuses(self, node_id: str, statuses: Mapping[str, Any]) -> Deferred[None]:
        self.published += len(encode_statuses(statuses))
        return succeed(None)

    def update_statuses(
        self, node_id: str, changed: Mapping[str, Any], withdrawn: Iterable[str]
    ) -> Deferred[None]:
        self.published += len(encode_statuses(changed))
        return succeed(None)

    def load_statuses(self) -> Deferred[dict[str, Any]]:
        return succeed({})


class _Manager:
    """
    The manager calls of a status share, over a list of relays; a reactor
    turn (``breathe``) marks where one stretch ends and the next begins.
    """

    def __init__(self, relays: list[Relay]) -> None:
        self._relays = relays
        self.marks: list[float] = []

    def local_relays(self) -> list[Relay]:
        return self._relays

    def remote_relays(self) -> list[Any]:
        return []

    def breathe(self) -> Deferred[None]:
        self.marks.append(time.thread_time())
        return succeed(None)


def _relays(count: int, clock: Clock) -> list[Relay]:
    env = RelayEnvironment(
        clock=clock,
        random=Random(0),
        store=None,  # type: ignore[arg-type]
        rest=None,  # type: ignore[arg-type]
        connect=lambda url, listener: Deferred(),
        compile_filter=compile_criteria,
        make_delivery=DeliveryFactory(clock, store=None, writer=None, http=None),  # type: ignore[arg-type]
        retry_policy=lambda attempt: 1.0,
    )
    relays = []
    for n in range(count):
        settings = RelaySettings(
            token=f"MTExMTEx{n}.Gg.bench", intents=4608, criteria=CRITERIA,
            dst=f"ws://127.0.0.1:9/bot{n}", client_secret="bench:secret-1234", shards=1,
        )
        relay = Relay(f"bot{n}", settings, env, on_fatal=lambda alias, reason: None)
        relay.start({0: SessionState(0, 1, f"session{n}", 42, "wss://gateway.invalid")})
        relays.append(relay)
    clock.advance(0)
    return relays


def _stretches(start: Callable[[], Deferred[Any]], manager: _Manager) -> list[float]:
    """Run ``start()``, which answers at once: each stretch between turns."""
    manager.marks = [time.thread_time()]
    done = start()
    manager.marks.append(time.thread_time())
    assert done.called
    return [b - a for a, b in zip(manager.marks, manager.marks[1:])]


def _before(relays: list[Relay]) -> Deferred[None]:
    records = {}
    for relay in relays:
        record = asdict(relay.snapshot())
        record["settings"] = record["wake_url"] = None
        records[relay.alias] = record
    encode_statuses(records)
    return succeed(None)


@inlineCallbacks
def _every_bot(
    relays: list[Relay], manager: _Manager, store: _AnsweringStore,
    published: dict[str, dict[str, Any]],
) -> Any:
    records = {}
    for n, relay in enumerate(relays):
        if n and n % STATUS_SLICE == 0:
            yield manager.breathe()
        records[relay.alias] = to_record(relay.snapshot())
    changed = {alias: record for alias, record in records.items()
               if published.get(alias) != record}
    yield store.update_statuses("bench", changed, [])
    published.clear()
    published.update(records)


def _change(relays: list[Relay]) -> None:
    payload = orjson.loads(TYPING)
    for relay in relays:
        relay.dispatch_received(0, TYPING, payload)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bots", type=int, default=10_000)
    parser.add_argument("--changing", type=int, default=100,
                        help="bots with new dispatches between two rounds (default 100)")
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args(argv)
    clock = Clock()
    relays = _relays(options.bots, clock)
    gc.collect()
    gc.freeze()  # as the relay does once started (dccrelay.ops.collector)
    rows: dict[str, list[tuple[float, float]]] = {
        "before": [], "every bot": [], "first round": [], "next round": [],
    }
    manager = _Manager(relays)
    published: dict[str, dict[str, Any]] = {}
    _every_bot(relays, manager, _AnsweringStore(), published)
    changing = options.changing
    for repeat in range(options.repeats):
        stretches = _stretches(lambda: _before(relays), manager)
        rows["before"].append((sum(stretches), max(stretches)))
        store = _AnsweringStore()
        coordinator = ClusterCoordinator(
            ClusterNode("bench"), store, None, clock  # type: ignore[arg-type]
        )
        coordinator.attach(manager)  # type: ignore[arg-type]
        stretches = _stretches(coordinator._share_statuses, manager)
        rows["first round"].append((sum(stretches), max(stretches)))
        _change(relays[repeat * changing:(repeat + 1) * changing])
        stretches = _stretches(coordinator._share_statuses, manager)
        rows["next round"].append((sum(stretches), max(stretches)))
        _change(relays[-(repeat + 1) * changing:][:changing])
        stretches = _stretches(
            lambda: _every_bot(relays, manager, _AnsweringStore(), published), manager
        )
        rows["every bot"].append((sum(stretches), max(stretches)))
    print(machine())
    print(f"{options.bots} bots, {options.changing} changed between rounds;"
          f" medians of {options.repeats}, reactor-thread CPU")
    print(f"{'case':<12} {'total ms':>9} {'longest stretch ms':>19} {'vs before':>10}"
          f" {'vs every bot':>13}")
    before = statistics.median(total for total, _ in rows["before"])
    every = statistics.median(total for total, _ in rows["every bot"])
    for case, figures in rows.items():
        total = statistics.median(t for t, _ in figures)
        longest = statistics.median(s for _, s in figures)
        print(f"{case:<12} {1e3 * total:>9.1f} {1e3 * longest:>19.1f} {total / before:>10.2f}"
              f" {total / every:>13.2f}")


if __name__ == "__main__":
    main()
