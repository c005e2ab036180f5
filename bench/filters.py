"""
``python -m bench.filters``: how many dispatches per second a bot's filter
evaluates, and how long one evaluation takes, for the tutorial's sample bot
(SEED.md, step 8) in the ``mongo`` and ``jsonpath`` backends.

The payloads are MESSAGE_CREATE dispatches built by the simulator's load
generator (:func:`dccrelay.testing.load.chatter`): guild chatter and DMs, mentions
of the bot and of others, bot authors, and messages starting with the bot's
prefix word, in proportions that make about 14% of them match. Baselines
measured in the same process: ``orjson.loads`` of each frame, which the
relay pays for every dispatch anyway, and ``payload["t"] ==
"MESSAGE_CREATE"``, the least any filter does. Figures are medians over
several repeats.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from dccrelay.filters import DEFAULT_CRITERIA, compile_criteria
from dccrelay.testing.load import BOT_USER_ID, chatter

#: SEED.md, tutorial step 8.
SAMPLE_MONGO: dict[str, Any] = {
    "t": "MESSAGE_CREATE",
    "$not": {"d.author.bot": True},
    "$or": [
        {"d.guild_id": {"$exists": False}},
        {"d.mentions": {"$elemMatch": {"id": BOT_USER_ID}}},
        {"d.content": {"$regex": "^cookout\\b"}},
    ],
}

#: The same, in JSONPath (I-Regexp has no \b: the word ends or the text does).
SAMPLE_JSONPATH = [
    "$[?$.t == 'MESSAGE_CREATE' && @.author && @.author.bot != true]",
    "$[?@.author && (!@.guild_id"
    f" || @.mentions[?@.id == '{BOT_USER_ID}']"
    " || match(@.content, 'cookout([^0-9A-Za-z_](.|\\n|\\r)*)?'))]",
]

Predicate = Callable[[Any], bool]


def payloads(n: int, seed: int = 9535) -> list[bytes]:
    """``n`` MESSAGE_CREATE frames, as Discord would send them."""
    return [
        orjson.dumps({"op": 0, "s": i + 2, "t": "MESSAGE_CREATE", "d": d})
        for i, d in enumerate(chatter(n, seed))
    ]


def throughput(predicate: Predicate, items: Sequence[Any], repeats: int) -> float:
    """Median evaluations per second over ``repeats`` passes."""
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        for item in items:
            predicate(item)
        times.append(time.perf_counter() - start)
    return len(items) / statistics.median(times)


def latencies(predicate: Predicate, items: Sequence[Any], repeats: int) -> tuple[float, float]:
    """Median over ``repeats`` passes of the p50 and p99 of one evaluation, in µs."""
    clock = time.perf_counter_ns
    p50s, p99s = [], []
    for _ in range(repeats):
        gc.collect()
        samples = []
        for item in items:
            start = clock()
            predicate(item)
            samples.append(clock() - start)
        cuts = statistics.quantiles(samples, n=100)
        p50s.append(cuts[49] / 1000)
        p99s.append(cuts[98] / 1000)
    return statistics.median(p50s), statistics.median(p99s)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(n: int = 5000, repeats: int = 7) -> None:
    frames = payloads(n)
    parsed = [orjson.loads(f) for f in frames]
    mongo = compile_criteria("mongo", SAMPLE_MONGO)
    jsonpath = compile_criteria("jsonpath", SAMPLE_JSONPATH)
    default = compile_criteria("mongo", DEFAULT_CRITERIA)
    matched = [mongo(p) for p in parsed]
    disagree = sum(m != jsonpath(p) for m, p in zip(matched, parsed))

    def event_check(payload: Any) -> bool:
        return bool(payload["t"] == "MESSAGE_CREATE")

    rows: list[tuple[str, Predicate, Sequence[Any]]] = [
        ('baseline: payload["t"] == ...', event_check, parsed),
        ("baseline: orjson.loads(frame)", orjson.loads, frames),
        ("mongo, sample bot", mongo, parsed),
        ("jsonpath, sample bot", jsonpath, parsed),
        ("mongo, default criteria", default, parsed),
    ]
    results = []
    for label, predicate, items in rows:
        per_second = throughput(predicate, items, repeats)
        p50, p99 = latencies(predicate, items, repeats)
        results.append((label, per_second, p50, p99))
    loads_per_second = results[1][1]

    size = statistics.median(len(f) for f in frames)
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}"
          f" ({platform.python_implementation()})")
    print(f"{n} MESSAGE_CREATE payloads (median {size:.0f} bytes of JSON),"
          f" {sum(matched) / n:.1%} match the sample bot's criteria"
          f" (mongo and jsonpath disagree on {disagree});"
          f" medians of {repeats} runs; p50/p99 include ~{_timer_overhead_us():.2f} µs of timer overhead")
    print(f"{'':32}{'dispatches/s':>14}{'p50 µs':>9}{'p99 µs':>9}{'time vs loads':>15}")
    for label, per_second, p50, p99 in results:
        ratio = loads_per_second / per_second
        print(f"{label:32}{per_second:>14,.0f}{p50:>9.2f}{p99:>9.2f}{ratio:>14.2f}x")


def _timer_overhead_us(samples: int = 100_000) -> float:
    clock = time.perf_counter_ns
    deltas = []
    for _ in range(samples):
        start = clock()
        deltas.append(clock() - start)
    return statistics.median(deltas) / 1000


if __name__ == "__main__":
    main()
