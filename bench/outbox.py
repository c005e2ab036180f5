"""
``python -m bench.outbox``: how many dispatches per second the durable
outbox stores, batched by the node-wide :class:`OutboxWriter` (one
transaction for whatever arrived while the previous one ran) against one
transaction per dispatch, on the real SQLite store in a temporary directory.

Dispatches arrive as they would from many bots' shards: a few per reactor
turn (``--per-turn``), spread over ``--bots`` aliases, each a realistic
MESSAGE_CREATE payload built with the simulator's objects.  The clock runs
from the first append to the moment the last one is stored.  Figures are
medians over ``--repeats`` runs, each on a fresh database.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import statistics
import tempfile
import time
from typing import Any, Callable

import orjson
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred
from twisted.internet.task import deferLater, react

from dccrelay.delivery.outbox import OutboxWriter
from dccrelay.store.sqlite import SQLiteStore
from dccrelay.testing.objects import message, user


def payloads(count: int) -> list[bytes]:
    """
    ``count`` MESSAGE_CREATE dispatches, as the gateway sends them.
    """
    author = user("4444", "someone", bot=False)
    return [
        orjson.dumps(
            {
                "op": 0,
                "s": i + 1,
                "t": "MESSAGE_CREATE",
                "d": message(
                    message_id=str(10**17 + i),
                    channel_id="3333",
                    guild_id="2222",
                    author=author,
                    content=f"cookout bring buns, item {i}",
                    now=1_700_000_000.0 + i,
                ),
            }
        )
        for i in range(count)
    ]


async def open_store(reactor: Any, directory: str, bots: int) -> SQLiteStore:
    store = SQLiteStore(os.path.join(directory, "outbox.sqlite3"), reactor)
    await store.open()
    for n in range(bots):
        await store.save_relay(f"bot{n}", {})
    return store


async def feed(
    reactor: Any,
    data: list[bytes],
    bots: int,
    per_turn: int,
    append: Callable[[str, bytes], Deferred[Any]],
) -> float:
    """
    Append ``data``, ``per_turn`` per reactor turn; seconds until all are
    stored.
    """
    started = time.perf_counter()
    pending = []
    for i, payload in enumerate(data):
        pending.append(append(f"bot{i % bots}", payload))
        if (i + 1) % per_turn == 0:
            await deferLater(reactor, 0, lambda: None)
    await DeferredList(pending, fireOnOneErrback=True, consumeErrors=True)
    return time.perf_counter() - started


async def run_batched(reactor: Any, data: list[bytes], bots: int, per_turn: int) -> tuple[float, int]:
    directory = tempfile.mkdtemp(prefix="dcc-bench-")
    try:
        store = await open_store(reactor, directory, bots)
        writer = OutboxWriter(store, reactor)
        seconds = await feed(reactor, data, bots, per_turn, writer.append)
        await store.close()
        return seconds, writer.calls
    finally:
        shutil.rmtree(directory)


async def run_one_each(reactor: Any, data: list[bytes], bots: int, per_turn: int) -> float:
    directory = tempfile.mkdtemp(prefix="dcc-bench-")
    try:
        store = await open_store(reactor, directory, bots)

        def append(alias: str, payload: bytes) -> Deferred[Any]:
            return store.outbox_append([(alias, payload)], time.time())

        seconds = await feed(reactor, data, bots, per_turn, append)
        await store.close()
        return seconds
    finally:
        shutil.rmtree(directory)


async def main(reactor: Any, options: argparse.Namespace) -> None:
    data = payloads(options.dispatches)
    size = statistics.median(len(p) for p in data)
    print(
        f"dccrelay outbox append: {options.dispatches} dispatches of ~{size:.0f} bytes,"
        f" {options.bots} bots, {options.per_turn} per reactor turn,"
        f" median of {options.repeats} runs"
    )
    print(
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version},"
        f" {platform.machine()} {platform.system()}"
    )
    batched, calls, each = [], [], []
    for _ in range(options.repeats):
        seconds, store_calls = await run_batched(reactor, data, options.bots, options.per_turn)
        batched.append(seconds)
        calls.append(store_calls)
        each.append(await run_one_each(reactor, data, options.bots, options.per_turn))
    n = options.dispatches
    rate_batched = n / statistics.median(batched)
    rate_each = n / statistics.median(each)
    print(
        f"  batched (OutboxWriter):        {rate_batched:>10,.0f} dispatches/s"
        f"  ({statistics.median(calls):.0f} transactions, "
        f"{n / statistics.median(calls):.0f} dispatches each)"
    )
    print(f"  one transaction per dispatch:  {rate_each:>10,.0f} dispatches/s  ({n} transactions)")
    print(f"  ratio: {rate_batched / rate_each:.1f}x")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.outbox", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dispatches", type=int, default=5000)
    parser.add_argument("--bots", type=int, default=50)
    parser.add_argument("--per-turn", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    react(lambda reactor: ensureDeferred(main(reactor, arguments)))
