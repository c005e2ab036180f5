"""
``python -m bench.regex_cost``: what one bot's criteria can cost the reactor
per dispatch through regular expressions (issue 17, item 6).

Every figure is milliseconds for one evaluation of compiled criteria on one
MESSAGE_CREATE whose content is 4,000 characters (Discord's longest), the
worst of several contents (``x`` repeated, random ``a``/``b``, mixed
accented text, emoji), median of repeats. Three groups, in one process:

1. baseline: the default criteria and a simple ``$regex``;
2. the issue's hostile criteria (a 48-byte counted pattern, an alternation
   of counted repetitions), or the error that refuses them;
3. the worst criteria the relay's default limits accept, found by growing
   each family of costly patterns (the ones that defeat RE2's DFA, so that
   it falls back to stepping every live instruction per byte) until the
   limits refuse it, in ``mongo`` and in ``jsonpath`` (a descendant query,
   which runs the pattern on every string of the payload).

Run against another tree's ``dccrelay`` (``PYTHONPATH``) for a before figure:
it only uses :func:`dccrelay.filters.compile_criteria`.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from dccrelay.filters import DEFAULT_CRITERIA, CriteriaError, compile_criteria

MESSAGE_LENGTH = 4000


def contents() -> dict[str, str]:
    rng = random.Random(17)
    return {
        "x": "x" * MESSAGE_LENGTH,
        "ab": "".join(rng.choice("ab") for _ in range(MESSAGE_LENGTH)),
        "accented": "".join(rng.choice("xyzé ab") for _ in range(MESSAGE_LENGTH)),
        "emoji": "\U0001f600" * MESSAGE_LENGTH,
    }


def payload(content: str) -> dict[str, Any]:
    return {
        "op": 0, "t": "MESSAGE_CREATE", "s": 1,
        "d": {
            "id": "1", "channel_id": "2", "guild_id": "3", "content": content,
            "author": {"id": "4", "username": "someone", "bot": False},
            "mentions": [], "embeds": [], "attachments": [],
        },
    }


def cost(predicate: Callable[[Any], bool], repeats: int) -> tuple[float, str]:
    """The worst content's median milliseconds per evaluation, and its name."""
    worst = (0.0, "")
    for name, content in contents().items():
        message = payload(content)
        predicate(message)  # RE2 builds its DFA states lazily: warm it first
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            predicate(message)
            times.append((time.perf_counter() - started) * 1000)
        worst = max(worst, (statistics.median(times), name))
    return worst


# Families of costly patterns, each growing with k: (name, backend, build).
def _alternation(k: int) -> str:
    return "|".join(f"x{{{i}}}z" for i in range(k, 2 * k))


def _positions(k: int) -> str:
    # [ab]*a then k positions: the DFA needs 2^k states, the NFA k threads.
    return "[ab]*a" + "[ab]{100}" * (k // 100) + (f"[ab]{{{k % 100}}}" if k % 100 else "") + "c"


def _mongo_all(build: Callable[[int], str], parts: int) -> Callable[[int], Any]:
    # Patterns that never match, in $or, so that each is evaluated.
    def criteria(k: int) -> Any:
        return {"$or": [{"d.content": {"$regex": build(k) + f"q{i}"}} for i in range(parts)]}
    return criteria


def _jsonpath(build: Callable[[int], str]) -> Callable[[int], Any]:
    return lambda k: f"$..[?search(@, '{build(k)}')]"


FAMILIES: list[tuple[str, str, Callable[[int], Any]]] = [
    ("dotted counts .{1,k}x{1,k}z", "mongo",
     lambda k: {"d.content": {"$regex": f".{{1,{k}}}x{{1,{k}}}z"}}),
    ("alternation x{k}z|x{k+1}z|...", "mongo",
     lambda k: {"d.content": {"$regex": _alternation(k)}}),
    ("k positions [ab]*a[ab]{k}c", "mongo",
     lambda k: {"d.content": {"$regex": _positions(k)}}),
    ("k positions, two regexes", "mongo", _mongo_all(_positions, 2)),
    ("k positions, four regexes", "mongo", _mongo_all(_positions, 4)),
    ("k positions, jsonpath descent", "jsonpath", _jsonpath(_positions)),
    ("accented classes [^z]{1,k}[^y]{1,k}q", "mongo",
     lambda k: {"d.content": {"$regex": f"[^z]{{1,{k}}}[^y]{{1,{k}}}q"}}),
]


def largest_accepted(backend: str, criteria: Callable[[int], Any], high: int) -> int:
    """The largest k in 1..high whose criteria compile (0 if none)."""
    def accepted(k: int) -> bool:
        try:
            compile_criteria(backend, criteria(k))
            return True
        except CriteriaError:
            return False

    low = 0
    while low < high:
        middle = (low + high + 1) // 2
        if accepted(middle):
            low = middle
        else:
            high = middle - 1
    return low


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-k", type=int, default=3000,
                        help="largest size tried for each family (default 3000)")
    args = parser.parse_args(argv)
    print(f"ms per dispatch, {MESSAGE_LENGTH}-character message, worst content, median of {args.repeats}")
    baseline, _ = cost(compile_criteria("mongo", DEFAULT_CRITERIA), args.repeats)
    print(f"{'baseline: default criteria':48} {baseline:9.3f} ms")
    simple = compile_criteria("mongo", {"d.content": {"$regex": "^!ping\\b"}})
    simple_ms, _ = cost(simple, args.repeats)
    label = "baseline: $regex ^!ping\\b"
    print(f"{label:48} {simple_ms:9.3f} ms")
    hostile = [
        ("issue: .{1,1000}x{1,1000}z (48 bytes)", {"d.content": {"$regex": ".{1,1000}x{1,1000}z"}}),
        ("issue-like: alternation x{100}z|... (1023 bytes)",
         {"d.content": {"$regex": _alternation(100)[:1024].rsplit("|", 1)[0]}}),
    ]
    for name, criteria in hostile:
        try:
            predicate = compile_criteria("mongo", criteria)
        except CriteriaError as e:
            print(f"{name:48} refused: {e.message[:90]}")
            continue
        ms, content = cost(predicate, args.repeats)
        print(f"{name:48} {ms:9.3f} ms  ({ms / max(simple_ms, 1e-6):.0f}x the simple regex; content {content})")
    worst = (0.0, "")
    for name, backend, criteria in FAMILIES:
        k = largest_accepted(backend, criteria, args.max_k)
        if k == 0:
            print(f"{'accepted: ' + name:48} nothing accepted")
            continue
        ms, content = cost(compile_criteria(backend, criteria(k)), args.repeats)
        worst = max(worst, (ms, name))
        print(f"{'accepted: ' + name:48} {ms:9.3f} ms  (k={k}, content {content})")
    print(f"{'worst accepted':48} {worst[0]:9.3f} ms  ({worst[1]};"
          f" {worst[0] / max(simple_ms, 1e-6):.0f}x the simple regex)")


if __name__ == "__main__":
    main()
