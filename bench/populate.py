"""
``python -m bench.populate DATA_DIR COUNT DST``: registrations written
straight into a relay's SQLite store (through :class:`SQLiteStore`, as
``PUT /relays/...`` would leave them), so that a benchmark with thousands of
bots need not make thousands of HTTP calls first.  Bot ``n`` has alias
``bot<n>``, token ``bench<n>`` (the simulator's bulk bots) and the sample
bot's criteria; its ``dst`` is DST with ``{alias}`` replaced.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import react

from bench.filters import SAMPLE_MONGO
from bench.receiver import SECRET
from dccrelay.filters import compile_criteria
from dccrelay.relay.settings import RelaySettings
from dccrelay.store.sqlite import SQLiteStore
from dccrelay.tap import STORE_FILE


async def populate(reactor: Any, data_dir: str, count: int, dst: str, protocol: int) -> None:
    compile_criteria("mongo", SAMPLE_MONGO)
    os.makedirs(data_dir, exist_ok=True)
    store = SQLiteStore(os.path.join(data_dir, STORE_FILE), reactor)
    await store.open()
    for n in range(count):
        alias = f"bot{n}"
        settings = RelaySettings(
            token=f"bench{n}",
            dst=dst.replace("{alias}", alias),
            client_secret=SECRET,
            criteria=SAMPLE_MONGO,
            delivery_protocol=protocol,
        )
        await store.save_relay(alias, settings.to_json())
    await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.populate")
    parser.add_argument("data_dir")
    parser.add_argument("count", type=int)
    parser.add_argument("dst")
    parser.add_argument("--protocol", type=int, default=1)
    a = parser.parse_args()
    react(lambda reactor: Deferred.fromCoroutine(
        populate(reactor, a.data_dir, a.count, a.dst, a.protocol)
    ))
