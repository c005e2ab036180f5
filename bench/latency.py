"""
Target 4, latency: at ``rate`` dispatches per second spread over the
bots' connections, how long from the generator writing a gateway frame
(its nanosecond timestamp is the message's ``nonce``) to the receiver
having the delivered frame, for every matching dispatch.  Both clocks are
this machine's.
"""

from __future__ import annotations

import time
from typing import Any

from bench import throughput
from bench.fleet import Fleet


def measure(fleet: Fleet, rate: float, seconds: float) -> dict[str, Any]:
    result = throughput.measure(fleet, rate, int(rate * seconds))
    stats = fleet.receiver.stats()
    time.sleep(0.1)
    return {**result, **{k: stats[k] for k in ("samples", "p50_ms", "p95_ms", "p99_ms", "max_ms")}}
