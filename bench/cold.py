"""
Issue 15, goal 2: the first delivery to a sleeping bot, whose connection the
relay opens on demand.  A fresh fleet (no bot connection open), then a light
load (``rate`` over every bot's gateway connection, so each bot gets a few
matching dispatches); for each bot the first dispatch written before its
connection opened is timed from the generator writing it to the receiver
having it, and cut into phases at the receiver (one clock):

- before the dial: the relay reads, filters, checks the address it may
  connect to, and connects (written -> TCP connection accepted);
- TLS handshake and the websocket upgrade request (accepted -> request);
- the opening answer until the first frame (request -> frame received).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.fleet import Fleet
from bench.processes import wait_until

PHASES = (
    ("before the dial (read, filter, address check, connect)", 0, 1),
    ("TLS handshake and upgrade request", 1, 2),
    ("opening answer until the first frame", 2, 3),
    ("first delivery, in all", 0, 3),
)


def measure(fleet: Fleet, rate: float = 500.0, seconds: float = 4.0) -> dict[str, Any]:
    fleet.receiver.reset()
    time.sleep(0.2)
    fleet.sim.load(rate, int(rate * seconds))

    def every_bot_had_one() -> bool:
        return len(fleet.receiver.stats()["first_cold"]) >= fleet.bots

    try:
        wait_until(every_bot_had_one, seconds * 2 + 30, "every bot's first delivery", every=0.2)
    except TimeoutError:
        pass  # a bot none of whose dispatches matched: the others' figures stand
    time.sleep(seconds)  # let the load end before the next run's fleet
    firsts = fleet.receiver.stats()["first_cold"]
    if not firsts:
        raise RuntimeError("no bot had a first delivery")
    row: dict[str, Any] = {"bots": len(firsts)}
    for label, start, end in PHASES:
        spans = sorted((f[end] - f[start]) / 1e6 for f in firsts)
        row[label] = statistics.median(spans)
        if end - start == 3:
            row["p90"] = spans[int(0.9 * (len(spans) - 1))]
            row["max"] = spans[-1]
    return row
