"""
Target 3, throughput: the simulator's load generator writes ``count``
pre-encoded MESSAGE_CREATE dispatches at ``rate`` per second over every
bot's connection; the relay filters each with the sample bot's criteria
(about 14% match) and delivers the matches over websocket v1 to the
receiver.  Relay CPU (``/proc/<pid>/stat``, user + system) from just before
the load until the receiver has every match, over the dispatches sent, is
the relay's CPU per dispatch; the generator's and receiver's are reported
the same way.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import orjson

from bench.filters import SAMPLE_MONGO
from bench.fleet import Fleet
from bench.processes import wait_until
from dccrelay.filters import compile_criteria
from dccrelay.testing.load import chatter, layout, message_index

#: the generator's default number of distinct messages (``POST /_sim/load``)
MESSAGES = 1000


@functools.cache
def _matching() -> tuple[bool, ...]:
    """Whether each of the generator's messages matches the sample criteria."""
    predicate = compile_criteria("mongo", SAMPLE_MONGO)
    return tuple(
        bool(predicate(orjson.loads(orjson.dumps({"op": 0, "t": "MESSAGE_CREATE", "d": d}))))
        for d in chatter(MESSAGES)
    )


def expected_matches(count: int, connections: int, others: float = 0.0) -> int:
    """
    How many of the first ``count`` generated dispatches match, ``others``
    of them other events (which the sample criteria never match).
    """
    matching = _matching()
    flags = [slot is not None and matching[slot] for slot in layout(MESSAGES, others)]
    return sum(flags[message_index(i, connections, len(flags))] for i in range(count))


def measure(
    fleet: Fleet, rate: float, count: int, timeout: float | None = None, others: float = 0.0
) -> dict[str, Any]:
    """
    :param others: the share of dispatches that are other events than
        messages (``POST /_sim/load``'s ``others``).
    """
    # computed before the clock starts: one connection per bot
    expected = expected_matches(count, fleet.bots, others)
    fleet.receiver.reset()
    time.sleep(0.5)
    processes = {"relay": fleet.relay, "generator": fleet.sim, "receiver": fleet.receiver}
    cpu_before = {name: p.cpu_seconds() for name, p in processes.items()}
    started_ns = time.time_ns()
    connections = fleet.sim.load(rate, count, others)["connections"]
    if connections != fleet.bots:
        raise RuntimeError(f"the load went to {connections} connections, not {fleet.bots}")
    limit = timeout if timeout is not None else count / rate * 4 + 60

    def delivered() -> bool:
        return bool(fleet.receiver.stats()["count"] >= expected)

    wait_until(delivered, limit, f"{expected} matching dispatches to arrive", every=0.1)
    cpu_after = {name: p.cpu_seconds() for name, p in processes.items()}
    stats = fleet.receiver.stats()
    load = fleet.sim.load_status()
    elapsed = (stats["last_ns"] - started_ns) / 1e9
    return {
        "count": count,
        "matched": expected,
        "offered_rate": rate,
        "rate": count / elapsed,
        "elapsed": elapsed,
        "skipped": load["skipped"],
        **{f"{name}_us": (cpu_after[name] - cpu_before[name]) / count * 1e6 for name in processes},
        **{f"{name}_cpu": cpu_after[name] - cpu_before[name] for name in processes},
    }
