"""
Issue 15, goal 6: added latency (gateway frame written -> bot has it, as
:mod:`bench.latency` measures it) at each load of ``loads`` (bots, rate),
the relay as it is and as it was before (:mod:`bench.baseline`) in
alternating runs of the same invocation, so that the machine's noise falls
on both; medians over runs of each run's p50, p99 and maximum.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bench import latency
from bench.baseline import alternating
from bench.fleet import bring_up

#: (bots, dispatches/s) of the issue's two p99 figures
LOADS = ((1000, 2000.0), (50, 400.0))


@dataclass(frozen=True)
class Run:
    bots: int
    rate: float
    now: bool
    row: dict[str, Any]


def parse_loads(text: str) -> tuple[tuple[int, float], ...]:
    """``"1000@2000,50@400"`` -> ((1000, 2000.0), (50, 400.0))."""
    loads = []
    for part in text.split(","):
        bots, _, rate = part.strip().partition("@")
        loads.append((int(bots), float(rate)))
    return tuple(loads)


def runs(
    loads: Sequence[tuple[int, float]],
    seconds: float,
    repeats: int,
    before: str | None,
    tls: bool = True,
    progress: Callable[[str], None] = lambda text: None,
) -> Iterator[Run]:
    """One fleet per run: now, then before, ``repeats`` times for each load."""
    for bots, rate in loads:
        for n, label, code in alternating(before, repeats):
            progress(f"latency at {rate:g}/s over {bots} bots, {label}, run {n + 1}")
            with bring_up(bots, tls=tls, code=code) as fleet:
                yield Run(bots, rate, label == "now", latency.measure(fleet, rate, seconds))


def table(results: Sequence[Run]) -> list[str]:
    """Per load: before and now, p50 / p99 / max ms and relay µs per dispatch."""
    lines = [f"   {'bots':>6}{'disp/s':>8}  {'':7}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}"
             f"{'relay µs/disp':>15}{'samples':>9}"]
    loads = dict.fromkeys((r.bots, r.rate) for r in results)
    for bots, rate in loads:
        for now in (False, True):
            rows = [r.row for r in results if (r.bots, r.rate, r.now) == (bots, rate, now)]
            if not rows:
                continue

            def median(key: str) -> float:
                return statistics.median(float(row[key]) for row in rows)

            lines.append(
                f"   {bots:>6,}{rate:>8,.0f}  {'now' if now else 'before':7}"
                f"{median('p50_ms'):>8.2f}{median('p99_ms'):>8.2f}{median('max_ms'):>8.1f}"
                f"{median('relay_us'):>15.1f}{median('samples'):>9,.0f}"
            )
    return lines
