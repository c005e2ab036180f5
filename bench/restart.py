"""
Target 2, start-up: the relay is stopped with SIGTERM (sessions resumable)
while ``N`` bots are READY and started again; the clock runs from starting
the new process until the simulator has seen every bot RESUME and be ready
again.  The relay's opt-in lag probe (``--lag-probe``) gives the longest
reactor stall meanwhile.
"""

from __future__ import annotations

import time

from bench.fleet import Fleet
from bench.processes import wait_until


def measure(fleet: Fleet, timeout: float = 600.0) -> dict[str, float]:
    before = fleet.sim.summary()
    fleet.restart_relay()
    started = fleet.relay.started

    def resumed() -> bool:
        now = fleet.sim.summary()
        return now["resumes"] - before["resumes"] >= fleet.bots and now["ready"] >= fleet.bots

    wait_until(resumed, timeout, f"{fleet.bots} bots to resume", every=0.2)
    elapsed = time.monotonic() - started
    # the probe reports once a second: let it report the last windows,
    # which include the freeze of what start-up made (dccrelay.ops.collector)
    time.sleep(3.5)
    after = fleet.sim.summary()
    return {
        "resumed_after": elapsed,
        "worst_lag_ms": fleet.relay.worst_lag_ms(),
        "worst_gc_ms": fleet.relay.worst_gc_ms(),
        "worst_on_cpu_ms": fleet.relay.worst_on_cpu_ms(),
        "identifies": after["identifies"] - before["identifies"],
        "frozen": fleet.relay.froze(),
    }
