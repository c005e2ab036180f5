"""
Target 4, latency: at ``rate`` dispatches per second spread over the
bots' connections, how long from the generator writing a gateway frame
(its nanosecond timestamp is the message's ``nonce``) to the receiver
having the delivered frame, for every matching dispatch.  Both clocks are
this machine's.  Dispatches that had to wait for the relay to open its
connection to a bot (the generator wrote them before it was opened) are
counted apart: the targets are for a bot whose connection is open, and a
warm-up load first opens nearly every bot's.
"""

from __future__ import annotations

import time
from typing import Any

from bench import throughput
from bench.fleet import Fleet

#: dispatches per bot in the warm-up, at the throughput rate: with ~14% of
#: them matching, all but a handful of bots have had one, so their
#: connections are open when the measured run starts
WARM_UP_PER_BOT = 40


def measure(fleet: Fleet, rate: float, seconds: float) -> dict[str, Any]:
    throughput.measure(fleet, max(rate, 10000.0), fleet.bots * WARM_UP_PER_BOT)
    result = throughput.measure(fleet, rate, int(rate * seconds))
    stats = fleet.receiver.stats()
    time.sleep(0.1)
    keys = ("samples", "p50_ms", "p95_ms", "p99_ms", "max_ms", "cold_samples", "cold_p50_ms",
            "cold_max_ms")
    return {**result, **{k: stats[k] if stats[k] is not None else 0.0 for k in keys}}
