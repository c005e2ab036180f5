"""
``python -m bench.sieve_cost``: in process, what a dispatch of a type the
sample criteria cannot match costs the relay past the receive path: passed
over by the sieve (:mod:`dccrelay.gateway.sieve`) against parsed with
``orjson`` and filtered, as before; and what the sieve adds to a wanted
dispatch.  The dispatches are the load generator's other events (typing,
presence updates, reactions, member updates), in Discord's key order.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable

import orjson

from bench.filters import SAMPLE_MONGO
from dccrelay.filters import compile_criteria, event_types
from dccrelay.gateway.sieve import EventSieve
from dccrelay.testing.load import chatter, other_events


def _frames(events: list[tuple[str, object]]) -> list[bytes]:
    return [
        b'{"t":"%s","s":%d,"op":0,"d":%s}' % (t.encode(), n, orjson.dumps(d))
        for n, (t, d) in enumerate(events)
    ]


def _per_frame_us(work: Callable[[bytes], object], frames: list[bytes]) -> float:
    def run() -> None:
        for frame in frames:
            work(frame)

    return min(timeit.repeat(run, number=20, repeat=5)) / 20 / len(frames) * 1e6


def compare() -> list[str]:
    """Lines of a table: µs per dispatch for each way."""
    sieve = EventSieve()
    sieve.want(event_types("mongo", SAMPLE_MONGO))
    predicate = compile_criteria("mongo", SAMPLE_MONGO)
    others = _frames(other_events(400))
    messages = _frames([("MESSAGE_CREATE", d) for d in chatter(400)])

    def parse_and_filter(frame: bytes) -> object:
        return predicate(orjson.loads(frame))

    rows = [
        ("other event, parsed and filtered (before)", parse_and_filter, others),
        ("other event, passed over by the sieve", sieve.passed_over, others),
        ("message, the sieve's check (added)", sieve.passed_over, messages),
    ]
    lines = [f"   {'':44}{'µs':>7}"]
    for label, work, frames in rows:
        lines.append(f"   {label:44}{_per_frame_us(work, frames):>7.2f}")
    return lines


if __name__ == "__main__":
    for line in compare():
        print(line)
