"""
The mongo backend agrees with sift 13, the npm package the Node.js prototype
filtered with, on every differential case, except the departures that
docs/filters.rst lists (tests.sift_oracle.DEPARTURES says which cases each
one excuses).

The committed corpus (tests/sift/corpus.json: generated cases and sift's
answers) is checked everywhere; where sift is installed (.ci/run installs it
and sets DCC_REQUIRE_SIFT, which turns its absence into a failure), the
corpus's answers are checked against sift itself, and so are cases from seeds
the corpus does not hold.
"""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase

import dccrelay.filters.mongo
from tests.sift_cases import HAND_CASES, generate
from tests.sift_corpus import SEEDS, corpus_cases, load
from tests.sift_oracle import (
    DEPARTURES,
    REQUIRE_ENV,
    ask_backend,
    ask_sift,
    compare,
    departure_for,
    kind,
    sift_missing,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Seeds the corpus does not hold, for the cases checked against live sift.
UNSEEN_SEEDS = range(100, 104)
UNSEEN_PER_SEED = 1500


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


class CorpusTests(SynchronousTestCase):
    """The backend against sift's recorded answers, without Node.js."""

    def test_corpus_agrees(self) -> None:
        """On every corpus case the backend gives sift's outcome, or a documented departure excuses the difference."""
        cases, sift = load()
        comparison = compare(cases, sift, ask_backend(cases))
        if comparison.disagreements:
            self.fail(comparison.report())
        self.assertGreaterEqual(comparison.total, 2000)

    def test_corpus_is_generated(self) -> None:
        """The corpus holds exactly what tests.sift_corpus generates, so regenerating it only refreshes sift's answers."""
        cases, _ = load()
        self.assertEqual(len(cases), len(corpus_cases()))
        for stored, generated in zip(cases, corpus_cases()):
            self.assertEqual(_dumps(stored), _dumps(generated))

    def test_generator_deterministic(self) -> None:
        """A seed always gives the same cases; another seed, others."""
        self.assertEqual(_dumps(generate(7, 50)), _dumps(generate(7, 50)))
        self.assertNotEqual(_dumps(generate(7, 50)), _dumps(generate(8, 50)))
        self.assertNotIn(SEEDS[0], UNSEEN_SEEDS)

    def test_corpus_covers_operators(self) -> None:
        """Every operator the backend knows, $where included, appears in the corpus's criteria, and every outcome kind in sift's answers."""
        cases, sift = load()
        text = "\n".join(json.dumps(c.criteria) for c in cases)
        for name in (
            "$eq $ne $gt $gte $lt $lte $in $nin $exists $type $regex $options $size"
            " $all $elemMatch $not $and $or $nor $mod $where"
        ).split():
            self.assertIn(f'"{name}"', text)
        self.assertEqual({kind(o) for o in sift}, {"true", "false", "refused", "threw"})

    def test_departures_exercised_and_documented(self) -> None:
        """Each departure excuses some corpus case and is named in docs/filters.rst and the backend's docstring."""
        cases, sift = load()
        ours = ask_backend(cases)
        used = {
            departure.name
            for case, s, o in zip(cases, sift, ours)
            if kind(s) != kind(o) and (departure := departure_for(case, s, o)) is not None
        }
        self.assertEqual(used, {d.name for d in DEPARTURES})
        with open(os.path.join(ROOT, "docs", "filters.rst"), encoding="utf-8") as f:
            docs = " ".join(f.read().split())
        docstring = " ".join((dccrelay.filters.mongo.__doc__ or "").split())
        for departure in DEPARTURES:
            self.assertIn(departure.documented, docs, departure.name)
            self.assertIn(departure.name, docstring)

    def test_issue_cases(self) -> None:
        """The cases issue 18 reported: sift's answers, which the backend gives."""
        cases, sift = load()
        recorded = {_dumps(c): s for c, s in zip(cases, sift)}
        reported = HAND_CASES[:4]
        self.assertEqual([recorded[_dumps(c)] for c in reported], [True, False, True, False])
        self.assertEqual(ask_backend(reported), [True, False, True, False])


class LiveSiftTests(SynchronousTestCase):
    """The backend against sift itself, run by Node.js."""

    def setUp(self) -> None:
        missing = sift_missing()
        if missing is None:
            return
        if os.environ.get(REQUIRE_ENV):
            self.fail(f"{REQUIRE_ENV} is set but sift cannot run: {missing}")
        raise SkipTest(missing)

    def test_corpus_is_sifts(self) -> None:
        """sift still gives every answer the corpus recorded."""
        cases, recorded = load()
        live = ask_sift(cases)
        differ = [
            f"{json.dumps(c.criteria)} on {json.dumps(c.payload)}: {r} recorded, {s} now"
            for c, r, s in zip(cases, recorded, live)
            if kind(r) != kind(s)
        ]
        self.assertEqual(differ, [])

    def test_unseen_cases_agree(self) -> None:
        """On cases from seeds the corpus lacks, the backend agrees with sift but for documented departures."""
        cases = [case for seed in UNSEEN_SEEDS for case in generate(seed, UNSEEN_PER_SEED)]
        comparison = compare(cases, ask_sift(cases), ask_backend(cases))
        if comparison.disagreements:
            self.fail(comparison.report())
