"""
Target 1, idle memory: the relay's resident memory with ``N`` bots, each
READY on its own gateway connection (zlib-stream by default), against the
same relay with no bot; the difference over ``N`` is the cost of one bot,
everything included (socket, TLS, decompression context, protocol and
state machine objects, compiled filter, store rows).

:func:`breakdown` splits that cost by running the same fleet three ways
(plain with no transport compression, plain with zlib-stream, TLS with
zlib-stream): the steps between them are what the inflate context and the
TLS connection cost, and the first is the rest (socket, protocol and state
machine objects, filter, store).
"""

from __future__ import annotations

import time

from bench.fleet import Fleet, bring_up

#: seconds to let start-up garbage go before reading RSS
SETTLE = 3.0


def baseline(compression: str = "zlib-stream", tls: bool = True) -> int:
    """RSS of a relay that holds no bot, in bytes."""
    with bring_up(0, compression=compression, tls=tls) as fleet:
        time.sleep(SETTLE)
        return fleet.relay.rss_bytes()


def measure(fleet: Fleet) -> dict[str, float]:
    """RSS with every bot READY, and how long they took to get there."""
    time.sleep(SETTLE)
    return {
        "rss": fleet.relay.rss_bytes(),
        "ready_after": fleet.ready_after,
        "sim_rss": fleet.sim.rss_bytes(),
    }


#: the runs of :func:`breakdown`: label -> bring_up() arguments
BREAKDOWN_RUNS = {
    "plain, no compression": {"compression": "none", "tls": False},
    "plain, zlib-stream": {"compression": "zlib-stream", "tls": False},
    "TLS, zlib-stream": {"compression": "zlib-stream", "tls": True},
}


def per_bot(bots: int, repeats: int, keep: bool = False, **bring: object) -> float:
    """
    Median bytes per bot, over ``repeats`` runs, of ``bots`` READY bots
    against a relay with none brought up the same way.
    """
    import statistics

    costs = []
    for _ in range(repeats):
        zero = baseline(str(bring.get("compression", "zlib-stream")), bool(bring.get("tls", True)))
        with bring_up(bots, keep=keep, **bring) as fleet:  # type: ignore[arg-type]
            costs.append((measure(fleet)["rss"] - zero) / bots)
    return statistics.median(costs)


def breakdown(bots: int, repeats: int, keep: bool = False) -> dict[str, float]:
    """
    Bytes per idle bot: ``total`` (TLS, zlib-stream, as production runs),
    and its parts ``inflate`` (zlib-stream's context), ``tls`` (the TLS
    connection) and ``rest`` (socket, protocol and state objects, filter,
    store: the plain, uncompressed cost).
    """
    cost = {label: per_bot(bots, repeats, keep, **bring) for label, bring in BREAKDOWN_RUNS.items()}
    plain, zlib_, tls = cost.values()
    return {"total": tls, "rest": plain, "inflate": zlib_ - plain, "tls": tls - zlib_}
