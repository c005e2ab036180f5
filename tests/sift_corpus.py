"""
Regenerates ``tests/sift/corpus.json``: generated cases and sift's answers,
so that the backend is checked against sift where Node.js is absent.

Run from the checkout's root, with sift installed (see .ci/run)::

    .venv/bin/python -m tests.sift_corpus

The corpus holds :data:`SEEDS` times :data:`PER_SEED` generated cases and
:data:`tests.sift_cases.HAND_CASES`, one JSON object per line.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from tests.sift_cases import HAND_CASES, Case, generate
from tests.sift_oracle import CORPUS, SIFT_VERSION, ask_sift, sift_missing

SEEDS = (1, 2)
PER_SEED = 1000


def corpus_cases() -> list[Case]:
    """The corpus's cases, in order."""
    cases = [case for seed in SEEDS for case in generate(seed, PER_SEED)]
    return cases + HAND_CASES


def load() -> tuple[list[Case], list[Any]]:
    """The committed corpus: its cases and sift's outcomes."""
    with open(CORPUS, encoding="utf-8") as f:
        corpus = json.load(f)
    if corpus["sift"] != SIFT_VERSION:
        raise ValueError(f"the corpus holds sift {corpus['sift']}'s answers, not {SIFT_VERSION}'s")
    cases = [Case(entry["criteria"], entry["payload"]) for entry in corpus["cases"]]
    return cases, [entry["sift"] for entry in corpus["cases"]]


def main() -> int:
    missing = sift_missing()
    if missing is not None:
        print(missing, file=sys.stderr)
        return 1
    cases = corpus_cases()
    outcomes = ask_sift(cases)
    lines = [
        json.dumps({"criteria": c.criteria, "payload": c.payload, "sift": o}, ensure_ascii=True)
        for c, o in zip(cases, outcomes, strict=True)
    ]
    with open(CORPUS, "w", encoding="utf-8") as f:
        f.write(f'{{"sift": "{SIFT_VERSION}", "seeds": {list(SEEDS)}, "per_seed": {PER_SEED}, "cases": [\n')
        f.write(",\n".join(lines))
        f.write("\n]}\n")
    print(f"wrote {len(cases)} cases to {CORPUS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
