"""
Tests for the mongo filter backend: MongoDB query selectors with the
semantics of sift 13.5.4, the newest sift 13 (the prototype relay asked for
``^13.4.0``).

The case tables give (criteria, payload, expected). Except where a table
says otherwise, every expected value is what sift 13.5.4 answers; the
differential test (test_filters_sift) checks many more against sift itself.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.filters import CriteriaError, FilterLimits, event_types
from dccrelay.filters.mongo import MongoBackend

Case = tuple[Any, Any, bool]

_BACKEND = MongoBackend()


def _matches(criteria: Any, payload: Any) -> bool:
    return _BACKEND.compile(criteria)(payload)


class _CaseTableMixin(SynchronousTestCase):
    def assertCases(self, cases: list[Case]) -> None:
        """Check every case; report all that fail at once."""
        failures = []
        for criteria, payload, expected in cases:
            actual = _matches(criteria, payload)
            if actual is not expected:
                failures.append(f"{criteria!r} on {payload!r}: {actual!r}, not {expected!r}")
        if failures:
            self.fail("\n".join(failures))


EQUALITY_CASES: list[Case] = [
    ({"t": "MESSAGE_CREATE"}, {"t": "MESSAGE_CREATE"}, True),
    ({"t": "MESSAGE_CREATE"}, {"t": "MESSAGE_UPDATE"}, False),
    ({"t": "MESSAGE_CREATE"}, {}, False),
    ({"d.author.id": "1"}, {"d": {"author": {"id": "1"}}}, True),
    ({"d.author.id": "1"}, {"d": {"author": None}}, False),
    ({"d.author": {"id": "1"}}, {"d": {"author": {"id": "1"}}}, True),
    ({"d.author": {"id": "1"}}, {"d": {"author": {"id": "1", "bot": True}}}, False),
    ({"d.author": {"id": "1", "bot": True}}, {"d": {"author": {"bot": True, "id": "1"}}}, True),
    ({"a": {}}, {"a": {}}, True),
    ({"a": {}}, {"a": {"x": 1}}, False),
    ({"a": [1, 2]}, {"a": [1, 2]}, True),
    ({"a": [1, 2]}, {"a": [2, 1]}, False),
    ({"a": [1, 2]}, {"a": [[1, 2], 3]}, True),
    ({"a": 1}, {"a": [0, 1]}, True),
    ({"a": 1}, {"a": 1.0}, True),
    ({"a": "1"}, {"a": 1}, False),
    ({"a.b": 1}, {"a": [{"b": 0}, {"b": 1}]}, True),
    ({"a.1.b": 1}, {"a": [{"b": 0}, {"b": 1}]}, True),
    ({"a.0.b": 1}, {"a": [{"b": 0}, {"b": 1}]}, False),
    ({"a.5": 1}, {"a": [1]}, False),
    ({"a": None}, {}, True),
    ({"a": None}, {"a": None}, True),
    ({"a": None}, {"a": 0}, False),
    ({"a.b": None}, {"a": 1}, True),
    ({"a.b": None}, {"a": [{"b": 1}]}, False),
    ({"a": {"$eq": 2}}, {"a": 2}, True),
    ({"a": {"$eq": 2}}, {"a": [1, 2]}, True),
    ({"a": {"$eq": {"x": [1]}}}, {"a": {"x": [1]}}, True),
    ({"a": {"$eq": {"$gt": 1}}}, {"a": {"$gt": 1}}, True),
    ({"a": {"$eq": "x"}}, {"a": {"x": 1}}, False),
]

BOOLEAN_NUMBER_CASES: list[Case] = [
    ({"a": 1}, {"a": True}, False),
    ({"a": True}, {"a": 1}, False),
    ({"a": 0}, {"a": False}, False),
    ({"a": False}, {"a": 0}, False),
    ({"a": True}, {"a": True}, True),
    ({"a": [1]}, {"a": [True]}, False),
    ({"a": {"x": 1}}, {"a": {"x": True}}, False),
    ({"a": {"$in": [1]}}, {"a": True}, False),
    ({"a": {"$in": [True]}}, {"a": 1}, False),
    ({"a": {"$in": [True]}}, {"a": True}, True),
    ({"a": {"$in": [0, 1]}}, {"a": False}, False),
    ({"a": {"$nin": [1]}}, {"a": True}, True),
    ({"a": {"$ne": 1}}, {"a": True}, True),
    ({"a": {"$gt": 0}}, {"a": True}, False),
    ({"a": {"$gte": False}}, {"a": 0}, False),
    ({"a": {"$gt": False}}, {"a": True}, True),
    ({"a": {"$lt": 1}}, {"a": False}, False),
]

NE_CASES: list[Case] = [
    ({"a": {"$ne": 1}}, {"a": 2}, True),
    ({"a": {"$ne": 1}}, {"a": 1}, False),
    ({"a": {"$ne": 1}}, {}, True),
    ({"a": {"$ne": None}}, {}, False),
    ({"a": {"$ne": None}}, {"a": None}, False),
    ({"a": {"$ne": None}}, {"a": 0}, True),
    ({"a": {"$ne": 1}}, {"a": [1, 2]}, False),
    ({"a": {"$ne": 3}}, {"a": [1, 2]}, True),
    ({"a": {"$ne": [1, 2]}}, {"a": [1, 2]}, False),
    ({"a": {"$ne": 3}}, {"a": []}, True),
    ({"a.b": {"$ne": 1}}, {"a": [{"b": 2}, {"b": 1}]}, False),
    ({"a.b": {"$ne": 1}}, {"a": [{"b": 2}, {"b": 3}]}, True),
]

COMPARISON_CASES: list[Case] = [
    ({"a": {"$gt": 1}}, {"a": 2}, True),
    ({"a": {"$gt": 2}}, {"a": 2}, False),
    ({"a": {"$gte": 2}}, {"a": 2}, True),
    ({"a": {"$lt": 2}}, {"a": 1.5}, True),
    ({"a": {"$lte": 2}}, {"a": 2.0}, True),
    ({"a": {"$lte": 2}}, {"a": 3}, False),
    ({"a": {"$lt": 1}}, {}, False),
    ({"a": {"$lt": 1}}, {"a": None}, False),
    ({"a": {"$gt": 1}}, {"a": "2"}, False),
    ({"a": {"$lt": "b"}}, {"a": "a"}, True),
    ({"a": {"$lt": "b"}}, {"a": 1}, False),
    ({"a": {"$gt": "10"}}, {"a": "9"}, True),
    ({"a": {"$gte": "abc"}}, {"a": "abc"}, True),
    ({"a": {"$gt": 5}}, {"a": [1, 9]}, True),
    ({"a": {"$gt": 5}}, {"a": [1, 2]}, False),
    ({"a": {"$gt": 1, "$lt": 5}}, {"a": [0, 10]}, True),
    ({"a": {"$gt": 1, "$lt": 5}}, {"a": 3}, True),
    ({"a": {"$gt": 1}}, {"a": {"b": 2}}, False),
    ({"a": {"$gt": 1}}, {"a": [[2]]}, True),
    ({"a": {"$gte": None}}, {"a": None}, False),
    ({"a": {"$lte": None}}, {}, False),
    ({"a": {"$lt": None}}, {"a": 1}, False),
    # JavaScript compares strings by UTF-16 code units: U+FFFF sorts after
    # the surrogates that encode U+1F600.
    ({"a": {"$lt": "\U0001f600"}}, {"a": "\uffff"}, False),
    ({"a": {"$gt": "\U0001f600"}}, {"a": "\uffff"}, True),
]

IN_NIN_CASES: list[Case] = [
    ({"a": {"$in": [1, 2]}}, {"a": 2}, True),
    ({"a": {"$in": [1, 2]}}, {"a": 3}, False),
    ({"a": {"$in": ["1"]}}, {"a": 1}, False),
    ({"a": {"$in": [1.0]}}, {"a": 1}, True),
    ({"a": {"$in": [None]}}, {}, True),
    ({"a": {"$in": [None]}}, {"a": None}, True),
    ({"a": {"$in": []}}, {"a": 1}, False),
    ({"a": {"$in": [1]}}, {"a": [0, 1]}, True),
    ({"a": {"$in": [[0, 1]]}}, {"a": [0, 1]}, True),
    ({"a": {"$in": [{"x": 1}]}}, {"a": {"x": 1}}, True),
    ({"a": {"$in": [{"x": 1}]}}, {"a": {"x": 1, "y": 2}}, False),
    ({"a": {"$nin": [1, 2]}}, {"a": 3}, True),
    ({"a": {"$nin": [1, 2]}}, {"a": 1}, False),
    ({"a": {"$nin": [1]}}, {}, True),
    ({"a": {"$nin": [None]}}, {}, False),
    ({"a": {"$nin": []}}, {}, True),
    ({"a": {"$nin": [1]}}, {"a": [0, 1]}, False),
    ({"a": {"$nin": [3]}}, {"a": [0, 1]}, True),
    ({"a": {"$nin": [3]}}, {"a": []}, True),
    ({"a.b": {"$nin": [1]}}, {"a": [{"b": 2}, {"b": 1}]}, False),
]

EXISTS_CASES: list[Case] = [
    ({"a": {"$exists": True}}, {"a": None}, True),
    ({"a": {"$exists": True}}, {"a": False}, True),
    ({"a": {"$exists": True}}, {}, False),
    ({"a": {"$exists": False}}, {}, True),
    ({"a": {"$exists": False}}, {"a": 0}, False),
    ({"a.b": {"$exists": False}}, {}, True),
    ({"a.b": {"$exists": True}}, {}, False),
    ({"a.b": {"$exists": True}}, {"a": {"b": None}}, True),
    ({"a.b": {"$exists": False}}, {"a": {"c": 1}}, True),
    ({"a.b": {"$exists": True}}, {"a": [{"c": 1}, {"b": 1}]}, True),
    ({"a.b": {"$exists": False}}, {"a": [{"c": 1}]}, True),
    ({"a.1": {"$exists": True}}, {"a": [5, 6]}, True),
    ({"a.2": {"$exists": True}}, {"a": [5, 6]}, False),
    ({"a.b": {"$exists": False}}, {"a": "text"}, True),
    ({"a": {"$exists": True, "$ne": None}}, {"a": None}, False),
]

# sift 13.5.4 agrees, but throws on "object" (an alias it lacks).
TYPE_CASES: list[Case] = [
    ({"a": {"$type": "string"}}, {"a": "x"}, True),
    ({"a": {"$type": "string"}}, {"a": 1}, False),
    ({"a": {"$type": "number"}}, {"a": 1.5}, True),
    ({"a": {"$type": "number"}}, {"a": 2}, True),
    ({"a": {"$type": "number"}}, {"a": True}, False),
    ({"a": {"$type": "bool"}}, {"a": False}, True),
    ({"a": {"$type": "bool"}}, {"a": 0}, False),
    ({"a": {"$type": "null"}}, {"a": None}, True),
    ({"a": {"$type": "null"}}, {}, False),
    ({"a": {"$type": "array"}}, {"a": []}, True),
    ({"a": {"$type": "array"}}, {"a": {}}, False),
    ({"a": {"$type": "object"}}, {"a": {}}, True),
    ({"a": {"$type": "object"}}, {"a": []}, False),
    ({"a": {"$type": "string"}}, {"a": [1, "x"]}, True),
    ({"a": {"$type": "timestamp"}}, {"a": "2024-01-01T00:00:00+00:00"}, False),
]

REGEX_CASES: list[Case] = [
    ({"a": {"$regex": "^co"}}, {"a": "cookout"}, True),
    ({"a": {"$regex": "^co"}}, {"a": "a cookout"}, False),
    ({"a": {"$regex": "out"}}, {"a": "cookout"}, True),
    ({"a": {"$regex": "^CO"}}, {"a": "cookout"}, False),
    ({"a": {"$regex": "^CO", "$options": "i"}}, {"a": "cookout"}, True),
    ({"a": {"$options": "i", "$regex": "^CO"}}, {"a": "cookout"}, True),
    ({"a": {"$regex": "^b"}}, {"a": "a\nb"}, False),
    ({"a": {"$regex": "^b", "$options": "m"}}, {"a": "a\nb"}, True),
    ({"a": {"$regex": "a.b"}}, {"a": "a\nb"}, False),
    ({"a": {"$regex": "a.b", "$options": "s"}}, {"a": "a\nb"}, True),
    ({"a": {"$regex": "b$"}}, {"a": "ab\n"}, False),
    ({"a": {"$regex": "b", "$options": "y"}}, {"a": "ab"}, False),
    ({"a": {"$regex": "a", "$options": "gy"}}, {"a": "ab"}, True),
    ({"a": {"$regex": "^\\d$"}}, {"a": "\u0663"}, False),
    ({"a": {"$regex": "^\\w+$"}}, {"a": "\u00e9"}, False),
    ({"a": {"$regex": "^\u00e9$", "$options": "i"}}, {"a": "\u00c9"}, True),
    ({"a": {"$regex": "^cookout\\b"}}, {"a": "cookouts"}, False),
    ({"a": {"$regex": "^cookout\\b"}}, {"a": "cookout!"}, True),
    ({"a": {"$regex": "1"}}, {"a": 1}, False),
    ({"a": {"$regex": "true"}}, {"a": True}, False),
    ({"a": {"$regex": "null"}}, {"a": None}, False),
    ({"a": {"$regex": "^$"}}, {}, False),
    ({"a": {"$regex": "x"}}, {"a": {"x": "x"}}, False),
    ({"a": {"$regex": "x"}}, {"a": ["y", "x"]}, True),
    ({"a": {"$not": {"$regex": "^x"}}}, {"a": "xy"}, False),
    ({"a": {"$not": {"$regex": "^x"}}}, {"a": 5}, True),
]

NOT_CASES: list[Case] = [
    ({"$not": {"a": 1}}, {"a": 1}, False),
    ({"$not": {"a": 1}}, {"a": 2}, True),
    ({"$not": {"a": 1, "b": 1}}, {"a": 1}, True),
    ({"a": {"$not": {"$gt": 5}}}, {"a": 3}, True),
    ({"a": {"$not": {"$gt": 5}}}, {}, True),
    ({"a": {"$not": {"$gt": 5}}}, {"a": [1, 9]}, False),
    ({"a": {"$not": 5}}, {"a": 6}, True),
    ({"a": {"$not": 5}}, {"a": 5}, False),
    ({"$not": {"$not": {"a": 1}}}, {"a": 1}, True),
    ({"d.author.bot": {"$not": {"$eq": True}}}, {"d": {"author": {}}}, True),
]

LOGICAL_CASES: list[Case] = [
    ({"$and": [{"a": 1}, {"b": 2}]}, {"a": 1, "b": 2}, True),
    ({"$and": [{"a": 1}, {"b": 2}]}, {"a": 1}, False),
    ({"$or": [{"a": 1}, {"b": 2}]}, {"b": 2}, True),
    ({"$or": [{"a": 1}, {"b": 2}]}, {"c": 3}, False),
    ({"$nor": [{"a": 1}, {"b": 2}]}, {"c": 3}, True),
    ({"$nor": [{"a": 1}, {"b": 2}]}, {"a": 1}, False),
    ({"$or": [{"$and": [{"a": 1}, {"b": 1}]}, {"c": 1}]}, {"a": 1, "b": 1}, True),
    ({"$or": [{"$and": [{"a": 1}, {"b": 1}]}, {"c": 1}]}, {"a": 1}, False),
    ({"a": 1, "$or": [{"b": 1}, {"c": 1}]}, {"a": 1, "c": 1}, True),
    ({"a": 1, "$or": [{"b": 1}, {"c": 1}]}, {"a": 2, "c": 1}, False),
    ({"a": {"$or": [{"$lt": 0}, {"$gt": 10}]}}, {"a": 11}, True),
    ({"a": {"$or": [{"$lt": 0}, {"$gt": 10}]}}, {"a": 5}, False),
    ({"a": {"$and": [{"$gt": 0}, {"$lt": 10}]}}, {"a": 5}, True),
]

ELEM_MATCH_CASES: list[Case] = [
    ({"a": {"$elemMatch": {"x": 1, "y": 2}}}, {"a": [{"x": 1, "y": 2}]}, True),
    ({"a": {"$elemMatch": {"x": 1, "y": 2}}}, {"a": [{"x": 1}, {"y": 2}]}, False),
    # Implicit traversal lets each condition match a different element.
    ({"a.x": 1, "a.y": 2}, {"a": [{"x": 1}, {"y": 2}]}, True),
    ({"a": {"$elemMatch": {"$gt": 1, "$lt": 5}}}, {"a": [0, 10]}, False),
    ({"a": {"$elemMatch": {"$gt": 1, "$lt": 5}}}, {"a": [0, 3]}, True),
    ({"a": {"$elemMatch": {"x": 1}}}, {"a": {"x": 1}}, False),
    ({"a": {"$elemMatch": {"x": 1}}}, {"a": []}, False),
    ({"a": {"$elemMatch": {"x": 1}}}, {}, False),
    ({"a": {"$elemMatch": {"x": 1}}}, {"a": [{"x": 2}, {"x": 1}, {"x": 3}]}, True),
    ({"a": {"$elemMatch": {}}}, {"a": [1]}, True),
    ({"a": {"$elemMatch": 5}}, {"a": [4, 5]}, True),
    ({"a": {"$elemMatch": {"$or": [{"x": 1}, {"y": 1}]}}}, {"a": [{"z": 1}, {"y": 1}]}, True),
    ({"a": {"$elemMatch": {"x": {"$exists": False}}}}, {"a": [{"x": 1}, {"y": 1}]}, True),
    ({"a.b": {"$elemMatch": {"c": 1}}}, {"a": {"b": [{"c": 1}]}}, True),
    # $not inside: some element is not the one excluded.
    ({"d.mentions": {"$elemMatch": {"$not": {"id": "1"}}}}, {"d": {"mentions": [{"id": "1"}, {"id": "2"}]}}, True),
    ({"d.mentions": {"$elemMatch": {"$not": {"id": "1"}}}}, {"d": {"mentions": [{"id": "1"}]}}, False),
    ({"d.mentions": {"$elemMatch": {"id": {"$not": {"$eq": "1"}}}}}, {"d": {"mentions": [{"id": "1"}, {}]}}, True),
    ({"a": {"$elemMatch": {"$not": {"$gt": 1}}}}, {"a": [2, 1]}, True),
    # Only arrays are searched: an element past the end, or a string, is not.
    ({"a.0": {"$elemMatch": {"$not": {"b": -1}}}}, {"a": []}, False),
    ({"a": {"$elemMatch": {"$not": {"b": 1}}}}, {"a": "xy"}, False),
    # In an array of arrays, the first inner array decides: the outer one
    # is never searched, so its element [0, 2] is never tried whole.
    ({"a": {"$elemMatch": {"$gt": 1}}}, {"a": [[0, 2]]}, True),
    ({"a": {"$elemMatch": {"$size": 2}}}, {"a": [[0, 2]]}, False),
]

SIZE_CASES: list[Case] = [
    ({"a": {"$size": 2}}, {"a": [1, 2]}, True),
    ({"a": {"$size": 1}}, {"a": [1, 2]}, False),
    ({"a": {"$size": 2.0}}, {"a": [1, 2]}, True),
    ({"a": {"$size": 1}}, {"a": 5}, False),
    ({"a": {"$size": 1}}, {"a": "x"}, False),
    ({"a": {"$size": 0}}, {"a": None}, False),
    ({"a": {"$size": 1}}, {}, False),
    ({"a": {"$size": 1}}, {"a": {"x": 1}}, False),
    # An empty array has size 0 ("messages without embeds").
    ({"a": {"$size": 0}}, {"a": []}, True),
    ({"d.embeds": {"$size": 0}}, {"d": {"embeds": []}}, True),
    ({"d.embeds": {"$size": 0}}, {"d": {"embeds": [{}]}}, False),
    ({"d.embeds": {"$size": 0}}, {"d": {}}, False),
    # $size looks at the value the path reaches, not at the array holding it.
    ({"d.mentions.username": {"$size": 1}}, {"d": {"mentions": [{}]}}, False),
    ({"d.mentions.username": {"$size": 1}}, {"d": {"mentions": [{"username": "a"}]}}, False),
    ({"a.b": {"$size": 1}}, {"a": [{"b": [1]}]}, True),
    ({"a.0": {"$size": 1}}, {"a": [5]}, False),
    ({"a": {"$size": 2}}, {"a": {"length": 2}}, False),
    ({"a": {"$size": 2}}, {"a": "xy"}, False),
]

ALL_CASES: list[Case] = [
    ({"a": {"$all": [1, 2]}}, {"a": [2, 3, 1]}, True),
    ({"a": {"$all": [1, 4]}}, {"a": [2, 3, 1]}, False),
    ({"a": {"$all": [1]}}, {"a": 1}, True),
    ({"a": {"$all": [1]}}, {}, False),
    ({"a": {"$all": [{"$elemMatch": {"x": 1}}]}}, {"a": [{"x": 1}]}, True),
    ({"a": {"$all": [{"x": 1}, {"x": 2}]}}, {"a": [{"x": 1}, {"x": 2}]}, True),
]

MOD_CASES: list[Case] = [
    ({"a": {"$mod": [4, 1]}}, {"a": 9}, True),
    ({"a": {"$mod": [4, 1]}}, {"a": 10}, False),
    ({"a": {"$mod": [4, -1]}}, {"a": -9}, True),
    ({"a": {"$mod": [1.5, 0.5]}}, {"a": 2}, True),
    ({"a": {"$mod": [2, 1]}}, {"a": [2, 3]}, True),
    ({"a": {"$mod": [2, 0]}}, {}, False),
    ({"a": {"$mod": [2, 0]}}, {"a": {"x": 2}}, False),
]

# Where sift 13.4 disagrees with MongoDB; existing criteria rely on sift.
SIFT_QUIRK_CASES: list[Case] = [
    # Arrays are spread recursively (MongoDB: one level).
    ({"a": 1}, {"a": [[1]]}, True),
    ({"a.b": 1}, {"a": [[{"b": 1}]]}, True),
    # length of arrays and strings (UTF-16 code units), and string indexes.
    ({"d.mentions.length": 0}, {"d": {"mentions": []}}, True),
    ({"d.content.length": 2}, {"d": {"content": "\U0001f600"}}, True),
    ({"a.1": "b"}, {"a": "abc"}, True),
    # $size also sees each element of the array, and arrays nested in it.
    ({"a": {"$size": 2}}, {"a": [[1, 2]]}, True),
    ({"a": {"$size": 0}}, {"a": [1, []]}, True),
    # $ne, $in and $nin see what an array lacks past it.
    ({"a.b": {"$in": [None]}}, {"a": [{"b": 1}]}, True),
    ({"a.b": {"$ne": None}}, {"a": [{"b": 1}]}, False),
    # A sibling that keeps the walk going exposes sift's per-element state.
    ({"a": {"$ne": 5, "$in": [1]}}, {"a": [1, 2]}, False),
    ({"a": {"$ne": 5, "$nin": [1]}}, {"a": [1, 2]}, True),
    ({"a": {"$elemMatch": {"$gt": 1}, "$ne": 5}}, {"a": [1, 2]}, True),
    ({"a": {"$elemMatch": {"$gt": 1}, "$in": [1]}}, {"a": [1, 2]}, False),
    # $exists asks each step's holder.
    ({"a.b": {"$exists": True}}, {"a": None}, True),
    ({"a.b": {"$exists": False}}, {"a": None}, False),
    # Empty logical operators, $all as $and.
    ({"$and": []}, {}, True),
    ({"$or": []}, {}, False),
    ({"$nor": []}, {}, True),
    ({"a": {"$all": []}}, {}, True),
    ({"a": {"$all": [[1, 2]]}}, {"a": [1, 2]}, True),
    # Comparisons with null never match.
    ({"a": {"$gte": None}}, {"a": None}, False),
    # $mod coerces like JavaScript's %.
    ({"a": {"$mod": [2, 1]}}, {"a": "7"}, True),
    ({"a": {"$mod": [2, 1]}}, {"a": [7]}, True),
    ({"a": {"$mod": [2, 1]}}, {"a": True}, True),
    ({"a": {"$mod": [2, 0]}}, {"a": None}, True),
    ({"a": {"$mod": [2, 0]}}, {"a": []}, True),
    # Objects compare key by key, and an absent key reads as null.
    ({"a": {"x": None}}, {"a": {"y": 1}}, True),
]

# Accepted here, refused by sift 13.4 (JavaScript has no x flag).
EXTENSION_CASES: list[Case] = [
    ({"a": {"$regex": "c o o k  # the prefix", "$options": "x"}}, {"a": "cookout"}, True),
    ({"a": {"$regex": "c[ ]o", "$options": "x"}}, {"a": "c o"}, True),
]


class OperatorTests(_CaseTableMixin):
    def test_equality(self) -> None:
        """Implicit equality and $eq: dotted paths, array traversal and indexes, whole objects and arrays, null matching missing."""
        self.assertCases(EQUALITY_CASES)

    def test_booleans_are_not_numbers(self) -> None:
        """JSON true/false never equal, compare with or are members of numbers (Python's True == 1 notwithstanding)."""
        self.assertCases(BOOLEAN_NUMBER_CASES)

    def test_ne(self) -> None:
        """$ne: true for missing fields, false when any array element equals."""
        self.assertCases(NE_CASES)

    def test_comparisons(self) -> None:
        """$gt/$gte/$lt/$lte only compare values of the same type; strings by UTF-16 code units; any element may match."""
        self.assertCases(COMPARISON_CASES)

    def test_in_nin(self) -> None:
        """$in/$nin: membership by sift's equality, null for missing, array elements."""
        self.assertCases(IN_NIN_CASES)

    def test_exists(self) -> None:
        """$exists true/false through missing parents, nulls, arrays and indexes."""
        self.assertCases(EXISTS_CASES)

    def test_type(self) -> None:
        """$type with sift 17's aliases plus object."""
        self.assertCases(TYPE_CASES)

    def test_regex(self) -> None:
        """$regex with $options i, m, s, y; ASCII \\d \\w \\b; never matches non-strings."""
        self.assertCases(REGEX_CASES)

    def test_not(self) -> None:
        """$not at top level and on fields, with operators or a plain value."""
        self.assertCases(NOT_CASES)

    def test_logical(self) -> None:
        """$and, $or, $nor at top level, nested, and under a field."""
        self.assertCases(LOGICAL_CASES)

    def test_elem_match(self) -> None:
        """$elemMatch needs one element to satisfy everything ($not included); implicit traversal does not."""
        self.assertCases(ELEM_MATCH_CASES)

    def test_size(self) -> None:
        """$size matches arrays of that length (0 for an empty one) that the path reaches, never non-arrays nor the array holding them."""
        self.assertCases(SIZE_CASES)

    def test_all(self) -> None:
        """$all: every query matches some element (or the value itself)."""
        self.assertCases(ALL_CASES)

    def test_mod(self) -> None:
        """$mod [divisor, remainder] with JavaScript's truncating %."""
        self.assertCases(MOD_CASES)

    def test_sift_over_mongodb(self) -> None:
        """Where sift 13 and MongoDB disagree, we answer as sift does."""
        self.assertCases(SIFT_QUIRK_CASES)

    def test_extensions(self) -> None:
        """MongoDB's x option (verbose patterns), which sift 13 refuses, works."""
        self.assertCases(EXTENSION_CASES)

    def test_non_object_payloads(self) -> None:
        """A payload that is not a JSON object never matches, even {} criteria."""
        matches = _BACKEND.compile({})
        self.assertTrue(matches({}))
        payloads: list[Any] = [None, 1, "x", [], [{}], True]
        for payload in payloads:
            self.assertIs(matches(payload), False)

    def test_compiled_once(self) -> None:
        """The predicate does not read the criteria again: changing them afterwards changes nothing."""
        criteria = {"t": "MESSAGE_CREATE", "$or": [{"d.content": {"$regex": "^a"}}]}
        matches = _BACKEND.compile(criteria)
        criteria["t"] = "READY"
        criteria["$or"][0]["d.content"]["$regex"] = "^b"  # type: ignore[index]
        self.assertTrue(matches({"t": "MESSAGE_CREATE", "d": {"content": "abc"}}))
        self.assertFalse(matches({"t": "READY", "d": {"content": "bcd"}}))


REJECTION_CASES: list[tuple[Any, str, str]] = [
    ({"$where": "true"}, "/$where", "$where is not supported"),
    ({"a": {"$not": {"$where": "1"}}}, "/a/$not/$where", "$where"),
    ({"$foo": 1}, "/$foo", "unknown operator $foo"),
    ({"a": {"$foo": 1}}, "/a/$foo", "unknown operator $foo"),
    ({"a": {"$elemMatch": {"b": {"$bad": 1}}}}, "/a/$elemMatch/b/$bad", "unknown operator"),
    ({"a~b/c": {"$foo": 1}}, "/a~0b~1c/$foo", "unknown operator"),
    ({"a": {"$gt": 1, "b": 2}}, "/a/b", "mixed with operators"),
    (
        {"$or": [{"a": 1}, {"b": 1}, {"d.content": {"$regex": "(?=x)y"}}]},
        "/$or/2/d.content/$regex",
        "lookahead is not supported by RE2",
    ),
    ({"a": {"$regex": "(?<!x)y"}}, "/a/$regex", "lookbehind is not supported by RE2"),
    ({"a": {"$regex": "(a)\\1"}}, "/a/$regex", "backreferences are not supported by RE2"),
    ({"a": {"$regex": "(?P<n>a)\\k<n>"}}, "/a/$regex", "backreferences are not supported"),
    ({"a": {"$regex": "(?<n>a)"}}, "/a/$regex", "(?P<name>...)"),
    ({"a": {"$regex": "a{1001}"}}, "/a/$regex", "repetition counts above 1000"),
    ({"a": {"$regex": "a++"}}, "/a/$regex", "possessive"),
    ({"a": {"$regex": "("}}, "/a/$regex", "invalid regular expression"),
    ({"a": {"$regex": 5}}, "/a/$regex", "must be a string"),
    ({"a": {"$regex": "x" * 1025}}, "/a/$regex", "the limit is 1024"),
    ({"a": {"$regex": "x", "$options": "q"}}, "/a/$options", "unknown $options letter 'q'"),
    ({"a": {"$regex": "x", "$options": 1}}, "/a/$options", "$options takes a string"),
    ({"a": {"$options": "i"}}, "/a/$options", "needs a $regex"),
    ({"a": {"$exists": 1}}, "/a/$exists", "true or false"),
    ({"$exists": True}, "/$exists", "applies to a field"),
    ({"$or": [{"$exists": False}]}, "/$or/0/$exists", "applies to a field"),
    ({"a": {"$in": 1}}, "/a/$in", "array of values"),
    ({"a": {"$in": [1, {"$gt": 1}]}}, "/a/$in/1", "values, not operators"),
    ({"a": {"$nin": "x"}}, "/a/$nin", "array of values"),
    ({"$and": {}}, "/$and", "array of queries"),
    ({"$or": "x"}, "/$or", "array of queries"),
    ({"$nor": None}, "/$nor", "array of queries"),
    ({"a": {"$all": 1}}, "/a/$all", "array of queries"),
    ({"a": {"$size": -1}}, "/a/$size", "whole number"),
    ({"a": {"$size": 1.5}}, "/a/$size", "whole number"),
    ({"a": {"$size": "1"}}, "/a/$size", "whole number"),
    ({"a": {"$size": True}}, "/a/$size", "whole number"),
    ({"a": {"$mod": [0, 1]}}, "/a/$mod/0", "must not be 0"),
    ({"a": {"$mod": [2]}}, "/a/$mod", "[divisor, remainder]"),
    ({"a": {"$mod": ["2", 1]}}, "/a/$mod", "[divisor, remainder]"),
    ({"a": {"$mod": [True, 1]}}, "/a/$mod", "[divisor, remainder]"),
    ({"a": {"$type": "date"}}, "/a/$type", "$type takes one of"),
    ({"a": {"$type": 2}}, "/a/$type", "$type takes one of"),
    ({"a": {"$gt": [1]}}, "/a/$gt", "compares with a number"),
    ({"a": {"$lt": {"x": 1}}}, "/a/$lt", "compares with a number"),
    (["a"], "", "must be a JSON object"),
    ("MESSAGE_CREATE", "", "must be a JSON object"),
    (None, "", "must be a JSON object"),
    ({"a": float("nan")}, "/a", "finite"),
    ({"a": {"$in": [float("inf")]}}, "/a/$in/0", "finite"),
    ({"a": (1, 2)}, "/a", "JSON data"),
    ({1: 2}, "", "keys must be strings"),
]


class RejectionTests(SynchronousTestCase):
    def test_rejections(self) -> None:
        """Malformed or unsupported criteria raise CriteriaError with a message and a pointer to the offending place."""
        failures = []
        for criteria, pointer, message in REJECTION_CASES:
            try:
                _BACKEND.compile(criteria)
            except CriteriaError as e:
                if e.pointer != pointer or message not in e.message:
                    failures.append(f"{criteria!r}: {e.message!r} at {e.pointer!r}")
            else:
                failures.append(f"{criteria!r}: accepted")
        if failures:
            self.fail("\n".join(failures))

    def test_error_is_value_error(self) -> None:
        """A CriteriaError's str is its message, so it can be shown to the bot author as is."""
        with self.assertRaises(CriteriaError) as raised:
            _BACKEND.compile({"a": {"$regex": "(?=a)"}})
        self.assertEqual(str(raised.exception), "lookahead is not supported by RE2: '(?=a)'")


BOT_USER_ID = "111111111111111111"

# SEED.md, tutorial step 8: the sample cookout bot's criteria.
SAMPLE_CRITERIA = {
    "t": "MESSAGE_CREATE",
    "$not": {"d.author.bot": True},
    "$or": [
        {"d.guild_id": {"$exists": False}},
        {"d.mentions": {"$elemMatch": {"id": BOT_USER_ID}}},
        {"d.content": {"$regex": "^cookout\\b"}},
    ],
}


def _message(
    content: str,
    *,
    guild: bool = True,
    mentions: tuple[str, ...] = (),
    author: str = "222222222222222222",
    bot: bool = False,
    event: str = "MESSAGE_CREATE",
) -> dict[str, Any]:
    """A gateway dispatch shaped like Discord's MESSAGE_CREATE."""
    user: dict[str, Any] = {
        "id": author,
        "username": "alice",
        "global_name": "Alice",
        "avatar": None,
        "discriminator": "0",
        "public_flags": 0,
    }
    if bot:
        user["bot"] = True
    d: dict[str, Any] = {
        "id": "1190000000000000001",
        "channel_id": "1180000000000000001",
        "author": user,
        "content": content,
        "timestamp": "2024-05-01T12:00:00.000000+00:00",
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [{"id": m, "username": "someone", "discriminator": "0"} for m in mentions],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "type": 0,
        "flags": 0,
        "components": [],
        "nonce": "1190000000000000000",
    }
    if guild:
        d["guild_id"] = "1160000000000000001"
        d["member"] = {"roles": [], "joined_at": "2023-01-01T00:00:00+00:00", "deaf": False, "mute": False}
    return {"op": 0, "s": 42, "t": event, "d": d}


class SampleBotTests(SynchronousTestCase):
    """The tutorial's cookout bot: DMs, mentions and prefixed messages from people."""

    def setUp(self) -> None:
        self.matches = _BACKEND.compile(SAMPLE_CRITERIA)

    def test_direct_message(self) -> None:
        """A DM (no guild_id) from a person is delivered, whatever it says."""
        self.assertTrue(self.matches(_message("hello", guild=False)))

    def test_mention(self) -> None:
        """A guild message mentioning the bot is delivered."""
        payload = _message("hi <@111111111111111111>", mentions=("333333333333333333", BOT_USER_ID))
        self.assertTrue(self.matches(payload))

    def test_other_mention(self) -> None:
        """A guild message mentioning only someone else is not."""
        self.assertFalse(self.matches(_message("hi", mentions=("333333333333333333",))))

    def test_prefix(self) -> None:
        """A guild message starting with the prefix word is delivered; a longer word or other case is not."""
        self.assertTrue(self.matches(_message("cookout")))
        self.assertTrue(self.matches(_message("cookout bring buns")))
        self.assertFalse(self.matches(_message("cookouts are fun")))
        self.assertFalse(self.matches(_message("Cookout bring buns")))
        self.assertFalse(self.matches(_message("let's cookout")))

    def test_plain_guild_message(self) -> None:
        """Chatter in a guild that does not concern the bot is not delivered."""
        self.assertFalse(self.matches(_message("what's for lunch?")))

    def test_bot_authors(self) -> None:
        """Messages from bots, including the bot itself, are never delivered."""
        self.assertFalse(self.matches(_message("cookout", bot=True)))
        self.assertFalse(self.matches(_message("hello", guild=False, bot=True)))
        self.assertFalse(self.matches(_message("cookout list", author=BOT_USER_ID, bot=True)))

    def test_other_events(self) -> None:
        """Other dispatches and gateway opcodes are not delivered, even when they look like a match."""
        self.assertFalse(self.matches(_message("cookout", event="MESSAGE_UPDATE")))
        self.assertFalse(self.matches(_message("hello", guild=False, event="MESSAGE_DELETE")))
        self.assertFalse(
            self.matches({"op": 0, "s": 1, "t": "READY", "d": {"v": 10, "session_id": "x", "guilds": []}})
        )
        self.assertFalse(
            self.matches(
                {"op": 0, "s": 2, "t": "TYPING_START", "d": {"user_id": "1", "channel_id": "2", "timestamp": 1}}
            )
        )
        self.assertFalse(self.matches({"op": 0, "s": 3, "t": "GUILD_CREATE", "d": {"id": "1", "channels": []}}))
        self.assertFalse(self.matches({"op": 11, "d": None}))
        self.assertFalse(self.matches({"op": 10, "d": {"heartbeat_interval": 41250}}))

    def test_key_order_irrelevant(self) -> None:
        """Reordering the criteria's keys and $or branches gives the same answers."""
        reordered = {
            "$or": list(reversed(SAMPLE_CRITERIA["$or"])),  # type: ignore[call-overload]
            "$not": {"d.author.bot": True},
            "t": "MESSAGE_CREATE",
        }
        other = _BACKEND.compile(reordered)
        for payload in [
            _message("hello", guild=False),
            _message("cookout"),
            _message("hi", mentions=(BOT_USER_ID,)),
            _message("cookout", bot=True),
            _message("x"),
        ]:
            self.assertEqual(other(payload), self.matches(payload))


class HostileCriteriaTests(SynchronousTestCase):
    """Criteria written to exhaust the relay are refused or stay cheap."""

    def test_deep_nesting(self) -> None:
        """Criteria nested beyond the depth limit are refused without recursion trouble."""
        criteria: dict[str, Any] = {"a": 1}
        for _ in range(10_000):
            criteria = {"$not": criteria}
        with self.assertRaises(CriteriaError) as raised:
            _BACKEND.compile(criteria)
        self.assertIn("nested more than 32 levels", raised.exception.message)
        self.assertEqual(raised.exception.pointer, "/$not" * 32)

    def test_self_reference(self) -> None:
        """A structure containing itself (not JSON, but possible in Python) is refused."""
        criteria: dict[str, Any] = {}
        criteria["$not"] = criteria
        self.assertRaises(CriteriaError, _BACKEND.compile, criteria)

    def test_huge_in(self) -> None:
        """$in beyond its length limit is refused; far beyond, the size limit refuses it first."""
        with self.assertRaises(CriteriaError) as raised:
            _BACKEND.compile({"a": {"$in": list(range(1001))}})
        self.assertEqual(raised.exception.pointer, "/a/$in")
        with self.assertRaises(CriteriaError) as raised:
            _BACKEND.compile({"a": {"$in": list(range(10_000_000))}})
        self.assertEqual(raised.exception.pointer, "")
        self.assertIn("16384", raised.exception.message)

    def test_many_operators(self) -> None:
        """More operators and fields than the limit are refused at the first one over."""
        with self.assertRaises(CriteriaError) as raised:
            _BACKEND.compile({f"f{i}": 1 for i in range(300)})
        self.assertEqual(raised.exception.pointer, "/f256")

    def test_large_criteria(self) -> None:
        """Criteria over the size limit are refused, however the bytes are spent."""
        self.assertRaises(CriteriaError, _BACKEND.compile, {"a": "x" * 20_000})
        self.assertRaises(CriteriaError, _BACKEND.compile, {"x" * 20_000: 1})
        self.assertRaises(CriteriaError, _BACKEND.compile, {"a": "\u00e9" * 9000})

    def test_catastrophic_regex(self) -> None:
        """
        Patterns that make backtracking engines exponential give the right
        answer on long input: on RE2 they are linear (no wall-clock bound is
        asserted; a backtracking engine would simply never return).
        """
        text = "a" * 100_000 + "!"
        for pattern in ["(a+)+$", "(a|a)+$", "(a|aa)+$", "(.*a){20}$", "^(a?){30}a{30}$"]:
            matches = _BACKEND.compile({"d.content": {"$regex": pattern}})
            self.assertFalse(matches({"d": {"content": text}}), pattern)
            self.assertTrue(matches({"d": {"content": "a" * 50}}), pattern)

    def test_deep_payload(self) -> None:
        """Deeply nested payload arrays and objects neither raise nor recurse."""
        deep: Any = 1
        for _ in range(100_000):
            deep = [deep]
        self.assertTrue(_matches({"a": 1}, {"a": deep}))
        self.assertFalse(_matches({"a": 2}, {"a": deep}))
        self.assertTrue(_matches({"a": {"$eq": [[[1]]]}}, {"a": deep}))
        self.assertFalse(_matches({"a": {"$elemMatch": {"$eq": 2}}}, {"a": deep}))
        self.assertTrue(_matches({"a": {"$mod": [2, 1]}}, {"a": deep}))
        nested: Any = {}
        for _ in range(100_000):
            nested = {"a": nested}
        self.assertFalse(_matches({"a.a.a.b": 1}, nested))

    def test_limits_configurable(self) -> None:
        """Each limit can be lowered (or raised) through FilterLimits, per backend or per call."""
        cases: list[tuple[FilterLimits, Any]] = [
            (FilterLimits(max_regex_length=3), {"a": {"$regex": "abcd"}}),
            (FilterLimits(max_in_length=2), {"a": {"$in": [1, 2, 3]}}),
            (FilterLimits(max_depth=2), {"a": {"b": {"c": 1}}}),
            (FilterLimits(max_operators=1), {"a": 1, "b": 1}),
            (FilterLimits(max_criteria_bytes=10), {"a": "0123456789"}),
        ]
        for limits, criteria in cases:
            _BACKEND.compile(criteria)
            self.assertRaises(CriteriaError, MongoBackend(limits).compile, criteria)
            self.assertRaises(CriteriaError, _BACKEND.compile, criteria, limits)
        wide = FilterLimits(max_in_length=2000)
        MongoBackend(wide).compile({"a": {"$in": list(range(2000))}})
        _BACKEND.compile({"a": {"$in": list(range(2000))}}, wide)


# Hypothesis strategies: JSON payloads and a grammar of mongo criteria.
_KEYS = st.sampled_from(["a", "b", "c", "0", "1", "length"])
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["", "x", "y", "7", "\U0001f600", "\ud800"]),
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=12,
)
_PAYLOADS = st.dictionaries(_KEYS, _JSON, max_size=4)
_PATHS = st.sampled_from(["a", "b", "a.b", "a.0", "a.b.c", "b.length", "a.1.a"])
_LITERALS = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from("abc"), inner, max_size=2),
    max_leaves=4,
)


def _operator_conditions(queries: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    numbers_or_strings = st.one_of(st.integers(-2, 2), st.sampled_from(["x", "7"]), st.booleans(), st.none())
    single = st.one_of(
        st.builds(lambda v: {"$eq": v}, _LITERALS),
        st.builds(lambda v: {"$ne": v}, _LITERALS),
        st.builds(lambda o, v: {o: v}, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), numbers_or_strings),
        st.builds(lambda o, v: {o: v}, st.sampled_from(["$in", "$nin"]), st.lists(_LITERALS, max_size=3)),
        st.builds(lambda v: {"$exists": v}, st.booleans()),
        st.builds(lambda v: {"$size": v}, st.integers(0, 3)),
        st.builds(lambda v: {"$type": v}, st.sampled_from(["number", "string", "array", "null"])),
        st.builds(lambda v: {"$regex": v}, st.sampled_from(["^x", "7", "x|y", "^$"])),
        st.builds(lambda v: {"$mod": v}, st.sampled_from([[2, 0], [2, 1], [3, 1]])),
        st.builds(lambda q: {"$elemMatch": q}, queries),
    )
    return st.lists(single, min_size=1, max_size=2).map(lambda ops: {k: v for op in ops for k, v in op.items()})


def _extend_queries(queries: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.dictionaries(_PATHS, st.one_of(_LITERALS, _operator_conditions(queries)), min_size=1, max_size=2),
        st.builds(lambda qs: {"$and": qs}, st.lists(queries, max_size=2)),
        st.builds(lambda qs: {"$or": qs}, st.lists(queries, max_size=2)),
        st.builds(lambda qs: {"$nor": qs}, st.lists(queries, max_size=2)),
        st.builds(lambda q: {"$not": q}, queries),
    )


_CRITERIA = st.recursive(
    st.dictionaries(_PATHS, _LITERALS, min_size=1, max_size=2), _extend_queries, max_leaves=6
)


class PropertyTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(_CRITERIA, st.lists(_PAYLOADS, min_size=1, max_size=4))
    def test_total_and_stateless(self, criteria: Any, payloads: list[Any]) -> None:
        """Compiled criteria return a bool for any JSON payload, never raise, and answer each payload the same whatever came before."""
        matches = _BACKEND.compile(criteria)
        first = [matches(p) for p in payloads]
        self.assertTrue(all(type(r) is bool for r in first))
        self.assertEqual([matches(p) for p in reversed(payloads)], first[::-1])

    @settings(max_examples=300, deadline=None)
    @given(_CRITERIA, _PAYLOADS)
    def test_not_inverts(self, criteria: Any, payload: Any) -> None:
        """{"$not": q} matches exactly the payloads q does not."""
        self.assertEqual(_matches({"$not": criteria}, payload), not _matches(criteria, payload))

    @settings(max_examples=300, deadline=None)
    @given(_PATHS, _LITERALS.filter(lambda v: v is not None), _PAYLOADS)
    def test_in_one_is_eq(self, path: str, value: Any, payload: Any) -> None:
        """{"$in": [x]} matches as {"$eq": x} for any x but null (which $in also finds past arrays)."""
        self.assertEqual(_matches({path: {"$in": [value]}}, payload), _matches({path: {"$eq": value}}, payload))

    @settings(max_examples=300, deadline=None)
    @given(_CRITERIA, _PAYLOADS)
    def test_and_of_one(self, criteria: Any, payload: Any) -> None:
        """{"$and": [q]} and {"$or": [q]} match as q; {"$nor": [q]} as {"$not": q}."""
        expected = _matches(criteria, payload)
        self.assertEqual(_matches({"$and": [criteria]}, payload), expected)
        self.assertEqual(_matches({"$or": [criteria]}, payload), expected)
        self.assertEqual(_matches({"$nor": [criteria]}, payload), not expected)

    @settings(max_examples=200, deadline=None)
    @given(_CRITERIA, _PAYLOADS, st.randoms(use_true_random=False))
    def test_top_level_order_irrelevant(self, criteria: Any, payload: Any, random: Any) -> None:
        """Shuffling the top-level keys (which the compiler may reorder cheapest first) never changes the answer."""
        keys = list(criteria)
        random.shuffle(keys)
        shuffled = {k: copy.deepcopy(criteria[k]) for k in keys}
        self.assertEqual(_matches(shuffled, payload), _matches(criteria, payload))


class ShortcutTests(SynchronousTestCase):
    """
    The shapes that compiled criteria evaluate without sift's walk (a path
    through objects, a lone $elemMatch on an array of non-arrays), and their
    neighbours that need the walk, give sift 13.5.4's answers (recorded from
    sift; tests/test_filters_sift.py checks many more against it live).
    """

    PAYLOADS = [
        {"a": None}, {"a": {"b": 1}}, {"a": {"b": 3}}, {"a": [{"b": 1}]}, {"a": {"b": [1]}},
        {"a": {"b": [{"c": 1}]}}, {"a": {"b": [[{"c": 1}]]}}, {"a": {"b": [{"c": 2}, None]}},
        {"a": {"b": [{}, {"c": 1}]}}, {"a": {"b": "xy"}}, {"a": {"b": [0, 6]}}, {"a": "s"}, {},
    ]
    #: criteria, then sift's answer on each of PAYLOADS
    ANSWERS: list[tuple[Any, str]] = [
        ({"a.b": 1}, "0101100000000"),
        ({"a.b": {"$gt": 0, "$lt": 5}}, "0111100000100"),
        ({"a.b": {"$elemMatch": {"c": 1}}}, "0000011010000"),
        ({"a.b": {"$elemMatch": {"$not": {"c": 1}}}}, "0000100110100"),
        ({"a.b": {"$elemMatch": {"c": None}}}, "0000100110100"),
        ({"a.b.length": 2}, "0000000111100"),
        ({"$not": {"a.b": None}}, "0111111011100"),
        (
            {"$or": [{"a.b": {"$exists": False}}, {"a.b": {"$elemMatch": {"c": 1}}}]},
            "0001011010011",
        ),
        ({"a.b": {"$elemMatch": {"c": 1}, "$size": 1}}, "0000011000000"),
    ]

    def test_sifts_answers(self) -> None:
        """Each criteria gives sift's answer on each payload."""
        for criteria, expected in self.ANSWERS:
            matches = _BACKEND.compile(criteria)
            answers = "".join("1" if matches(p) else "0" for p in self.PAYLOADS)
            self.assertEqual(answers, expected, criteria)


_TYPES = st.sampled_from(["MESSAGE_CREATE", "TYPING_START", "READY", ""])
_TYPE_CONDITIONS = (
    _TYPES
    | st.builds(lambda t: {"$eq": t}, _TYPES)
    | st.builds(lambda ts: {"$in": ts}, st.lists(_TYPES, max_size=3))
)


class EventTypeTests(SynchronousTestCase):
    """
    :meth:`MongoBackend.event_types` names the only types criteria can
    match, from a top-level ``t`` condition it understands.
    """

    def test_types_read(self) -> None:
        """A string, $eq of one or $in of strings at the top level give their types."""
        types = _BACKEND.event_types
        self.assertEqual(types({"t": "MESSAGE_CREATE", "d.x": 1}), {"MESSAGE_CREATE"})
        self.assertEqual(types({"t": {"$eq": "A"}}), {"A"})
        self.assertEqual(types({"t": {"$in": ["A", "B"]}, "$or": [{"a": 1}]}), {"A", "B"})
        self.assertEqual(types({"t": {"$in": []}}), frozenset())

    def test_unknown(self) -> None:
        """Anything else says nothing: every type may match."""
        types = _BACKEND.event_types
        for criteria in (
            {},
            {"d.t": "A"},
            {"$or": [{"t": "A"}, {"t": "B"}]},
            {"$and": [{"t": "A"}]},
            {"t": {"$ne": "A"}},
            {"t": {"$regex": "^A"}},
            {"t": {"$in": ["A", 1]}},
            {"t": {"$eq": "A", "$exists": True}},
            {"t": ["A"]},
            {"t": None},
            [{"t": "A"}],
        ):
            self.assertIsNone(types(criteria), criteria)

    def test_through_the_registry(self) -> None:
        """dccrelay.filters.event_types asks the named backend; an unknown one says nothing."""
        self.assertEqual(event_types("mongo", {"t": "A"}), {"A"})
        self.assertIsNone(event_types("jsonpath", ["$[?@.t == 'A']"]))
        self.assertIsNone(event_types("no-such-backend", {"t": "A"}))

    @settings(max_examples=500, deadline=None)
    @given(_TYPE_CONDITIONS, _CRITERIA, _TYPES, _PAYLOADS)
    def test_exact(self, condition: Any, rest: Any, t: str, payload: Any) -> None:
        """A payload whose t is a string outside the types never matches."""
        criteria = {"t": condition, **{k: v for k, v in rest.items() if k != "t"}}
        types = _BACKEND.event_types(criteria)
        self.assertIsNotNone(types)
        assert types is not None
        if t not in types:
            self.assertFalse(_matches(criteria, {**payload, "t": t}))
