"""
Target 1, idle memory: the relay's resident memory with ``N`` bots, each
READY on its own gateway connection (zlib-stream by default), against the
same relay with no bot; the difference over ``N`` is the cost of one bot,
everything included (socket, decompression context, protocol and state
machine objects, compiled filter, store rows).
"""

from __future__ import annotations

import time

from bench.fleet import Fleet, bring_up

#: seconds to let start-up garbage go before reading RSS
SETTLE = 3.0


def baseline(compression: str = "zlib-stream") -> int:
    """RSS of a relay that holds no bot, in bytes."""
    fleet = bring_up(0, compression=compression)
    try:
        time.sleep(SETTLE)
        return fleet.relay.rss_bytes()
    finally:
        fleet.close()


def measure(fleet: Fleet) -> dict[str, float]:
    """RSS with every bot READY, and how long they took to get there."""
    time.sleep(SETTLE)
    return {
        "rss": fleet.relay.rss_bytes(),
        "ready_after": fleet.ready_after,
        "sim_rss": fleet.sim.rss_bytes(),
    }
