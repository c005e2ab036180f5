"""
The ``mongo`` filter backend: MongoDB query selectors, evaluated as sift does.

The prototype relay filtered with the npm package sift, declared as
``^13.4.0``, which installs sift 13.5.4, the newest sift 13; this backend
reproduces sift 13.5.4 (the model is in :mod:`dccrelay.filters.siftops`), with
every regular expression on RE2. (sift 13.4.0, which the prototype's lock
file held, differed in ``$size``, ``$elemMatch`` and ``$type``: its ``$size``
read the length of the array holding each value, so ``$size: 0`` never
matched, and its ``$elemMatch`` ran on the values the walk spread, so
``$not`` inside it could not see a whole element.) Criteria are compiled once
into closures. tests/test_filters_sift.py checks every answer against sift.

Where sift 13 and MongoDB disagree we follow sift:

- Arrays are spread recursively: ``{"a": 1}`` matches ``{"a": [[1]]}`` and
  ``{"a.b": 1}`` matches ``{"a": [[{"b": 1}]]}``. MongoDB spreads one level.
- ``length`` after an array or string is its length (``{"d.mentions.length":
  0}``), strings count UTF-16 code units, and a numeric step indexes a string.
- ``$size`` tests every array the walk meets, nested ones first: it matches
  ``{"a": [[1, 2]]}`` for 2 and ``{"a": [1, []]}`` for 0.
- ``$elemMatch`` decides on the first array the walk meets: on ``{"a":
  [[0, 2]]}`` it searches ``[0, 2]`` and stops, so ``{"$size": 2}`` inside it
  does not match.
- ``$ne``, ``$in`` and ``$nin`` see what an array lacks past it: ``{"a.b":
  {"$in": [null]}}`` matches ``{"a": [{"b": 1}]}`` (plain ``null`` equality
  does not), and ``{"a.b": {"$ne": null}}`` does not match it.
- Beside an operator that keeps the walk going, ``$in`` and ``$nin`` are
  decided by the last value they see and ``$elemMatch`` is undone by a value
  that is not an array: on ``{"a": [1, 2]}``, ``{"a": {"$ne": 5, "$in":
  [1]}}`` does not match and ``{"a": {"$ne": 5, "$nin": [1]}}`` does; on
  ``{"a": [{"b": [2]}, {"b": 1}]}``, ``{"a.b": {"$elemMatch": {"$gt": 1},
  "$ne": 5}}`` does not match.
- ``$exists`` asks whether each step's holder has the key: ``{"a.b":
  {"$exists": true}}`` matches ``{"a": null}``; ``{"a.b": {"$exists": false}}``
  does not.
- ``$all`` is ``$and`` (its entries are queries, so ``$all: []`` matches
  everything); ``$and``, ``$or`` and ``$nor`` may be empty and may sit under a
  field (``{"d.content": {"$or": [{"$regex": "a"}, {"$regex": "b"}]}}``).
- ``$gt``, ``$gte``, ``$lt`` and ``$lte`` with ``null`` never match, and only
  compare values of the same JavaScript type (strings by UTF-16 code units).
- ``$mod`` coerces as JavaScript's ``%`` does: ``"7"`` and ``[7]`` are 7,
  ``null`` and ``[]`` are 0, ``true`` is 1.
- ``$not``, ``$elemMatch`` and ``$all`` accept plain values (equality), and an
  array used as a query means ``{"0": ..., "1": ...}``.
- ``$type`` takes sift's names: ``number``, ``string``, ``bool``, ``array``,
  ``null`` and ``timestamp`` (which nothing in JSON is).
- ``$where`` is refused, as the prototype refused it: criteria never run code.

Where sift fails on JSON criteria, or safety requires it, we differ; each of
these departures is named in the differential test (tests/sift_oracle.py),
which excuses exactly these differences:

- *regex dialect*: ``$regex`` runs on RE2, not JavaScript, so that no pattern
  costs more than linear time: lookaround, backreferences and repetition
  counts over 1000, which sift accepted, are refused; ``.`` matches a code
  point, not a UTF-16 unit; ``\\s`` is ASCII whitespace; and named groups are
  written ``(?P<name>...)``. ``$options`` takes ``i m s x`` and JavaScript's
  ``g u d y`` (``y`` anchors at the start; the others change nothing for a
  match); JavaScript's ``v`` is refused.
- *refused where sift crashes*: ``$exists`` outside a field, and ``$type``
  with a name sift lacks or that is not a string, on which sift throws while
  matching (the prototype then failed on the dispatch), are refused when the
  criteria are registered.
- *$type object*: ``$type: "object"`` matches JSON objects; sift 13 throws
  on it while matching.
- *malformed operands refused*: operands that make sift match nothing, or
  ignore them, are refused: non-boolean ``$exists``, ``$regex`` that is not a
  string (sift made ``5`` the pattern ``/5/``), ``$options`` without
  ``$regex`` or that is not a string, comparison operands that are objects or
  arrays, ``$size`` that is not a whole number, ``$mod`` that is not
  ``[divisor, remainder]`` with a non-zero divisor, and criteria that are not
  an object. (``$in``, ``$nin``, ``$and``, ``$or``, ``$nor`` or ``$all`` that
  are not arrays, unknown operators and fields mixed with operators are
  refused by both.)
- *$options x*: ``$options: "x"`` (MongoDB's verbose patterns) is accepted;
  JavaScript has no such flag, so sift refused the criteria.
- *numbers beyond 2**53*: numbers compare exactly, not rounded to doubles.
- *inherited properties*: JavaScript's inherited properties
  (``constructor``, ``toString``...) are not emulated; a path through one
  reads nothing.

A payload that is not a JSON object never matches (the gateway sends none).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import Any, Optional

from twisted.logger import Logger
from twisted.plugin import IPlugin
from zope.interface import implementer

from dccrelay.filters import siftops
from dccrelay.filters.errors import CriteriaError
from dccrelay.filters.interfaces import IEventTypes, ILimitedFilterBackend
from dccrelay.filters.jsvalues import (
    Test,
    js_key_order,
    make_equals_test,
    make_membership_test,
    string_less,
    to_number,
)
from dccrelay.filters.limits import DEFAULT_LIMITS, FilterLimits, check_json, pointer_to
from dccrelay.filters.regex import compile_regex
from dccrelay.filters.siftops import KEEP, Op

_TYPE_ALIASES: dict[str, Test] = {
    "number": lambda v: type(v) is int or type(v) is float,
    "string": lambda v: type(v) is str,
    "bool": lambda v: type(v) is bool,
    "array": lambda v: type(v) is list,
    "object": lambda v: type(v) is dict,
    "null": lambda v: v is None,
    "timestamp": lambda v: False,  # JSON has no dates
}

_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": lambda v, operand: v > operand,
    "$gte": lambda v, operand: v >= operand,
    "$lt": lambda v, operand: v < operand,
    "$lte": lambda v, operand: v <= operand,
}

_STRING_COMPARISONS: dict[str, Callable[[str, str], bool]] = {
    "$gt": lambda v, operand: string_less(operand, v),
    "$gte": lambda v, operand: not string_less(v, operand),
    "$lt": string_less,
    "$lte": lambda v, operand: not string_less(operand, v),
}

# $options letters: i m s x are RE2 flags; g u d y are JavaScript's, of which
# y anchors the match at the start and the others change nothing for a test.
_REGEX_FLAGS = frozenset("imsx")
_JAVASCRIPT_FLAGS = frozenset("gudy")


@implementer(IPlugin, ILimitedFilterBackend, IEventTypes)
class MongoBackend:
    """
    MongoDB query selectors with sift 13.5.4's semantics.

    :param limits: the bounds :meth:`compile` enforces when not given others:
        ``max_criteria_bytes``, ``max_depth``, ``max_operators``,
        ``max_regex_length`` and ``max_in_length``.
    """

    name = "mongo"

    def __init__(self, limits: FilterLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits

    def __repr__(self) -> str:
        return f"<MongoBackend {self.limits}>"

    def compile(self, criteria: Any, limits: Optional[FilterLimits] = None) -> Callable[[Any], bool]:
        """See :meth:`ILimitedFilterBackend.compile`."""
        limits = self.limits if limits is None else limits
        check_json(criteria, max_bytes=limits.max_criteria_bytes, max_depth=limits.max_depth)
        if type(criteria) is not dict:
            raise CriteriaError("criteria must be a JSON object", "")
        return _predicate(_Compiler(limits).query(criteria, "", _Context.ROOT))

    def event_types(self, criteria: Any) -> Optional[frozenset[str]]:
        """
        See :meth:`IEventTypes.event_types`: the types a top-level ``t``
        condition allows, when it is a string, ``$eq`` of one or ``$in`` of
        strings.  Every top-level condition must hold for a match, and a
        string ``t`` meets these only by being one of those strings.
        """
        condition = criteria.get("t") if type(criteria) is dict else None
        if type(condition) is str:
            return frozenset((condition,))
        if type(condition) is not dict or len(condition) != 1:
            return None
        (name, operand), = condition.items()
        if name == "$eq" and type(operand) is str:
            return frozenset((operand,))
        if name == "$in" and type(operand) is list and all(type(v) is str for v in operand):
            return frozenset(operand)
        return None


_log = Logger(namespace=__name__)


def _predicate(root: Op) -> Callable[[Any], bool]:
    start, initial = root.start, root.initial

    def matches(payload: Any) -> bool:
        if type(payload) is not dict:
            return False
        try:
            return bool(start()(initial, payload, None, None) & KEEP)
        except Exception:
            # A bug here must cost one dispatch, not the bot's gateway session.
            _log.failure("filter failed on a payload; not delivering it")
            return False

    return matches


class _Context(enum.Enum):
    """How often a query or operator is fed, which decides what may be optimised."""

    #: Fed once per dispatch, with the payload (an object): the criteria and
    #: the operands of ``$and``, ``$or``, ``$nor``, ``$not`` and ``$all``
    #: directly in it.
    ROOT = "root"
    #: Fed once per evaluation with any value: ``$elemMatch``'s query, once
    #: per element.
    ONCE = "once"
    #: Possibly fed several values (array elements, then the array): all that
    #: sits under a field, where sift's order of evaluation can matter.
    MANY = "many"


class _Compiler:
    """
    Turns criteria into a tree of :class:`Op` in sift 13's shape (its
    ``createQueryOperation``).

    A query fed once needs no state between candidates, and its children may
    be reordered cheapest first (plain equality before regular expressions)
    without changing any answer: each child sees the one value either way.
    Under a field, sift re-feeds groups with every array element and the
    order of children can change the answer, so it is kept.
    """

    def __init__(self, limits: FilterLimits) -> None:
        self.limits = limits
        self.operators = 0
        #: What the criteria's regexes may still spend (regex.py).
        self.regexes = limits.regex_bounds().budget()

    def query(self, query: Any, pointer: str, context: _Context) -> Op:
        """A query: sift's ``createQueryOperation``."""
        once = context is not _Context.MANY
        if type(query) is list:
            query = {str(i): v for i, v in enumerate(query)}
        if type(query) is not dict:
            equal = siftops.value_test(make_equals_test(query))
            return siftops.nested((), [equal], once=once)
        own: list[Op] = []
        fields: list[Op] = []
        own_context = _Context.ROOT if context is _Context.ROOT else _Context.MANY
        for key in js_key_order(query):
            where = self._count(pointer, key)
            if key.startswith("$"):
                op = self.operator(key, query[key], query, where, own_context)
                if op is not None:
                    own.append(op)
            else:
                fields.append(self.field(key, query[key], where, once))
        ops = []
        if own and context is _Context.ROOT:
            # The walk of the empty path from an object yields just the object.
            ops.append(siftops.group(_cheapest_first(own), once=True))
        elif own:
            ops.append(siftops.nested((), own, once=once))
        ops.extend(fields)
        if once:
            ops = _cheapest_first(ops)
        return ops[0] if len(ops) == 1 else siftops.group(ops, once=once)

    def field(self, key: str, condition: Any, pointer: str, once: bool) -> Op:
        """One field's condition: sift's ``createNestedOperation``."""
        path = siftops.parse_path(key)
        if not (type(condition) is dict and any(k.startswith("$") for k in condition)):
            equal = siftops.value_test(make_equals_test(condition))
            return siftops.nested(path, [equal], once=once)
        ops = []
        for name in js_key_order(condition):
            where = self._count(pointer, name)
            if not name.startswith("$"):
                raise CriteriaError(
                    f"{name!r} is mixed with operators: a field's condition is"
                    " either all operators (keys starting with $) or an exact"
                    " object to compare with",
                    where,
                )
            op = self.operator(name, condition[name], condition, where, _Context.MANY)
            if op is not None:
                ops.append(op)
        return siftops.nested(path, ops, once=once)

    def operator(
        self, name: str, operand: Any, siblings: dict[str, Any], pointer: str, context: _Context
    ) -> Op | None:
        """One ``$operator``; None for ``$options``, which only modifies ``$regex``."""
        root = context is _Context.ROOT
        if name == "$eq":
            return siftops.value_test(make_equals_test(operand))
        if name == "$ne":
            return siftops.not_equal(make_equals_test(operand))
        if name in _COMPARISONS:
            return self._comparison(name, operand, pointer)
        if name in ("$in", "$nin"):
            test = self._membership(name, operand, pointer)
            return siftops.member(test) if name == "$in" else siftops.not_member(test)
        if name == "$exists":
            if type(operand) is not bool:
                raise CriteriaError("$exists takes true or false", pointer)
            if root:
                raise CriteriaError(
                    '$exists applies to a field: write {"field": {"$exists": ...}}',
                    pointer,
                )
            return siftops.exists(operand)
        if name == "$type":
            if type(operand) is not str or operand not in _TYPE_ALIASES:
                raise CriteriaError(
                    "$type takes one of " + ", ".join(sorted(_TYPE_ALIASES)), pointer
                )
            return siftops.value_test(_TYPE_ALIASES[operand])
        if name == "$size":
            if type(operand) not in (int, float) or operand < 0 or operand != int(operand):
                raise CriteriaError("$size takes a whole number, 0 or more", pointer)
            return siftops.size(int(operand))
        if name == "$mod":
            return siftops.value_test(self._modulo(operand, pointer), cost=2)
        if name == "$regex":
            return self._regex(operand, siblings, pointer)
        if name == "$options":
            if "$regex" not in siblings:
                raise CriteriaError("$options needs a $regex beside it", pointer)
            return None
        if name == "$not":
            return siftops.negate(self.query(operand, pointer, context), once=root)
        if name == "$elemMatch":
            return siftops.elem_match(self.query(operand, pointer, _Context.ONCE))
        if name in ("$and", "$all", "$or", "$nor"):
            if type(operand) is not list:
                raise CriteriaError(f"{name} takes an array of queries", pointer)
            queries = [
                self.query(q, self._count(pointer, str(i)), context)
                for i, q in enumerate(operand)
            ]
            if root:
                queries = _cheapest_first(queries)
            if name in ("$and", "$all"):
                return siftops.group(queries, once=root)
            return siftops.any_of(queries, invert=name == "$nor", once=root)
        if name == "$where":
            raise CriteriaError("$where is not supported: criteria cannot run code", pointer)
        raise CriteriaError(f"unknown operator {name}", pointer)

    def _count(self, pointer: str, key: str) -> str:
        where = pointer_to(pointer, key)
        self.operators += 1
        if self.operators > self.limits.max_operators:
            raise CriteriaError(
                f"criteria have more than {self.limits.max_operators} operators and fields",
                where,
            )
        return where

    def _comparison(self, name: str, operand: Any, pointer: str) -> Op:
        if operand is None:
            return siftops.never()
        kind = type(operand)
        if kind is str:
            compare_strings = _STRING_COMPARISONS[name]
            return siftops.value_test(lambda v: type(v) is str and compare_strings(v, operand))
        compare = _COMPARISONS[name]
        if kind is bool:
            return siftops.value_test(lambda v: type(v) is bool and compare(v, operand))
        if kind is int or kind is float:
            return siftops.value_test(
                lambda v: (type(v) is int or type(v) is float) and compare(v, operand)
            )
        raise CriteriaError(f"{name} compares with a number, a string, a boolean or null", pointer)

    def _membership(self, name: str, operand: Any, pointer: str) -> Test:
        if type(operand) is not list:
            raise CriteriaError(f"{name} takes an array of values", pointer)
        if len(operand) > self.limits.max_in_length:
            raise CriteriaError(
                f"{name} has {len(operand)} values; the limit is {self.limits.max_in_length}",
                pointer,
            )
        for i, value in enumerate(operand):
            if type(value) is dict and any(k.startswith("$") for k in value):
                raise CriteriaError(f"{name} takes values, not operators", pointer_to(pointer, i))
        return make_membership_test(operand)

    def _modulo(self, operand: Any, pointer: str) -> Test:
        def is_number(x: Any) -> bool:
            return type(x) is int or type(x) is float

        if not (type(operand) is list and len(operand) == 2 and all(map(is_number, operand))):
            raise CriteriaError("$mod takes [divisor, remainder], two numbers", pointer)
        divisor, remainder = float(operand[0]), operand[1]
        if divisor == 0:
            raise CriteriaError("$mod's divisor must not be 0", pointer_to(pointer, 0))

        def test(v: Any) -> bool:
            x = to_number(v)
            return math.isfinite(x) and math.fmod(x, divisor) == remainder

        return test

    def _regex(self, pattern: Any, siblings: dict[str, Any], pointer: str) -> Op:
        options = siblings.get("$options", "")
        options_pointer = pointer.rpartition("/")[0] + "/$options"
        if type(options) is not str:
            raise CriteriaError("$options takes a string of letters such as \"im\"", options_pointer)
        for letter in options:
            if letter not in _REGEX_FLAGS and letter not in _JAVASCRIPT_FLAGS:
                raise CriteriaError(
                    f"unknown $options letter {letter!r}; use i, m, s or x", options_pointer
                )
        regex = compile_regex(
            pattern,
            ignore_case="i" in options,
            multiline="m" in options,
            dot_all="s" in options,
            verbose="x" in options,
            max_length=self.limits.max_regex_length,
            budget=self.regexes,
            javascript=True,
            pointer=pointer,
        )
        matcher = regex.match if "y" in options else regex.search
        return siftops.value_test(
            lambda v: type(v) is str and matcher(v), cost=10 + len(pattern) // 16
        )


def _cheapest_first(ops: list[Op]) -> list[Op]:
    return sorted(ops, key=lambda op: op.cost)

