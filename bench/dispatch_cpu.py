"""
Issue 15, goals 1 and 3: relay CPU per dispatch at 50 bots with the sample
bot's criteria, websocket v1, for zlib-stream (the default) and no transport
compression, over TLS and plain, the relay as it is and as it was before
(:mod:`bench.baseline`) in alternating runs of the same invocation, so the
machine's noise (shared, 2 cores) hits both alike; the ratio of the two is
the figure to trust.

The generator writes a batch every millisecond spread over every bot's
connection, so at 20,000/s over 50 bots a connection gets one frame per
read, as from Discord.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bench import throughput
from bench.baseline import alternating
from bench.fleet import bring_up
from bench.processes import REPO

#: (transport compression, TLS) of each row
VARIANTS = (("zlib-stream", True), ("none", True), ("zlib-stream", False), ("none", False))


@dataclass(frozen=True)
class Run:
    compression: str
    tls: bool
    code: str
    row: dict[str, Any]


def runs(
    bots: int,
    rate: float,
    count: int,
    repeats: int,
    before: str | None,
    variants: tuple[tuple[str, bool], ...] = VARIANTS,
    progress: Callable[[str], None] = lambda text: None,
    others: float = 0.0,
) -> Iterator[Run]:
    """
    One fleet per run: the current relay, then the baseline's (``before``,
    a source tree), ``repeats`` times for each variant.

    :param others: the share of dispatches that are other events.
    """
    for compression, tls in variants:
        for n, label, code in alternating(before, repeats):
            progress(f"dispatch CPU, {compression}, {'TLS' if tls else 'plain'},"
                     f" {label}, run {n + 1}")
            with bring_up(bots, compression=compression, tls=tls, code=code) as fleet:
                yield Run(compression, tls, code,
                          throughput.measure(fleet, rate, count, others=others))


def table(results: list[Run]) -> list[str]:
    """Median per variant and code, and now/before."""
    lines = [f"   {'compression':13}{'transport':>10}{'before µs':>11}{'now µs':>9}"
             f"{'now/before':>12}{'disp/s before':>15}{'disp/s now':>12}"]
    variants = dict.fromkeys((r.compression, r.tls) for r in results)
    for compression, tls in variants:
        def median(code_is_now: bool, key: str) -> float | None:
            values = [r.row[key] for r in results if r.compression == compression
                      and r.tls == tls and (r.code == REPO) == code_is_now]
            return statistics.median(values) if values else None

        now_us, now_rate = median(True, "relay_us"), median(True, "rate")
        old_us, old_rate = median(False, "relay_us"), median(False, "rate")
        ratio = f"{now_us / old_us:>12.2f}" if now_us and old_us else f"{'-':>12}"
        lines.append(
            f"   {compression:13}{'TLS' if tls else 'plain':>10}"
            f"{_cell(old_us, 11, '.1f')}{_cell(now_us, 9, '.1f')}{ratio}"
            f"{_cell(old_rate, 15, ',.0f')}{_cell(now_rate, 12, ',.0f')}"
        )
    return lines


def _cell(value: float | None, width: int, spec: str) -> str:
    return f"{value:>{width}{spec}}" if value is not None else f"{'-':>{width}}"
