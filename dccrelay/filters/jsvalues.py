"""
JavaScript value semantics for parsed JSON, as sift (a JavaScript library)
sees it.

The mongo backend must agree with sift on every payload, and sift compares
JavaScript values. Parsed JSON in Python differs in ways that matter:

- Python's ``True == 1`` (and ``hash(True) == hash(1)``); in JavaScript
  ``true !== 1``. Every comparison here checks types first.
- JavaScript has ``undefined`` (an absent field) besides ``null``;
  :data:`MISSING` stands for it.
- JavaScript strings are UTF-16: ``length`` and indexes count code units and
  ``<`` compares code units, not code points.
- ``%`` coerces its operands to numbers (``"7" % 2 === 1``).

Numbers are compared exactly as Python numbers, not first rounded to doubles
as JavaScript would; payload numbers beyond 2**53 are the only difference.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable
from typing import Any, Final, Optional


class _Missing:
    """JavaScript's ``undefined``: what reading an absent field gives."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

Test = Callable[[Any], bool]

_NUMBER_TYPES = (int, float)

# ECMAScript WhiteSpace and LineTerminator, which Number() trims.
_JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_JS_DECIMAL = re.compile(
    r"[+-]?(?:Infinity|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
)
_JS_RADIX = {
    "x": (16, re.compile(r"[0-9a-fA-F]+")),
    "o": (8, re.compile(r"[0-7]+")),
    "b": (2, re.compile(r"[01]+")),
}
_MAX_ARRAY_INDEX = 2**32 - 2


def js_typeof(value: object) -> str:
    """JavaScript's ``typeof`` of a parsed JSON value."""
    t = type(value)
    if t is str:
        return "string"
    if t is bool:
        return "boolean"
    if t is int or t is float:
        return "number"
    if value is MISSING:
        return "undefined"
    return "object"


def _class_of(value: object) -> str:
    # Object.prototype.toString's class name, which sift's equals compares.
    t = type(value)
    if t is bool:
        return "Boolean"
    if t is int or t is float:
        return "Number"
    if t is str:
        return "String"
    if t is list:
        return "Array"
    if t is dict:
        return "Object"
    if value is None:
        return "Null"
    if value is MISSING:
        return "Undefined"
    return "Other"


def equals(query: object, value: object) -> bool:
    """
    sift's deep equality of a criteria value with a payload value.

    ``null`` equals ``undefined``; objects are equal when they have as many
    keys and each of the query's keys has an equal value (an absent key reads
    as ``undefined``), whatever the order. Recursion follows ``query``, whose
    depth the criteria limits bound.
    """
    if (query is None or query is MISSING) and (value is None or value is MISSING):
        return True
    kind = _class_of(query)
    if kind != _class_of(value):
        return False
    if kind == "Array":
        assert isinstance(query, list) and isinstance(value, list)
        return len(query) == len(value) and all(
            equals(q, v) for q, v in zip(query, value)
        )
    if kind == "Object":
        assert isinstance(query, dict) and isinstance(value, dict)
        return len(query) == len(value) and all(
            equals(q, value.get(k, MISSING)) for k, q in query.items()
        )
    if kind == "Other":
        return query is value
    return query == value


def make_equals_test(query: object) -> Test:
    """A test for ``equals(query, value)``, specialised for scalar queries."""
    if query is None:
        return lambda v: v is None or v is MISSING
    t = type(query)
    if t is str:
        return lambda v: type(v) is str and v == query
    if t is bool:
        return lambda v: v is query
    if t is int or t is float:
        return lambda v: type(v) in _NUMBER_TYPES and v == query
    return lambda v: equals(query, v)


def make_membership_test(values: Iterable[Any]) -> Test:
    """A test for "equals one of ``values``", with set lookups for scalars."""
    strings: set[str] = set()
    numbers: set[float] = set()
    booleans: set[bool] = set()
    containers: list[object] = []
    has_null = False
    for query in values:
        t = type(query)
        if query is None:
            has_null = True
        elif t is str:
            strings.add(query)
        elif t is bool:
            booleans.add(query)
        elif t is int or t is float:
            numbers.add(query)
        else:
            containers.append(query)

    def test(v: object) -> bool:
        # Sets are only probed with values of their own type: True in {1}.
        t = type(v)
        if t is str:
            return v in strings
        if t is int or t is float:
            return v in numbers
        if t is bool:
            return v in booleans
        if v is None or v is MISSING:
            return has_null
        return any(equals(query, v) for query in containers)

    return test


def array_index(key: str) -> Optional[int]:
    """The array index a property name denotes (``"3"``; not ``"03"``), or None."""
    if not (key.isascii() and key.isdigit()) or (key[0] == "0" and key != "0"):
        return None
    index = int(key)
    return index if index <= _MAX_ARRAY_INDEX else None


@functools.lru_cache(maxsize=1024)
def _cached_array_index(key: str) -> Optional[int]:
    return array_index(key)


def is_numeric(key: str) -> bool:
    """JavaScript's ``!isNaN(Number(key))``: sift's test for "an index step"."""
    return not math.isnan(string_to_number(key))


def string_to_number(text: str) -> float:
    """JavaScript's ``Number(text)``."""
    text = text.strip(_JS_WHITESPACE)
    if not text:
        return 0.0
    if _JS_DECIMAL.fullmatch(text):
        return float(text)
    if len(text) > 2 and text[0] == "0" and text[1] in "xXoObB":
        base, digits = _JS_RADIX[text[1].lower()]
        if digits.fullmatch(text, 2):
            return _to_float(int(text[2:], base))
    return math.nan


def to_number(value: Any) -> float:
    """JavaScript's ``Number(value)`` after sift's ``comparable``, for ``%``."""
    t = type(value)
    if t is bool:
        return 1.0 if value else 0.0
    if t is int:
        return _to_float(value)
    if t is float:
        return float(value)
    if t is str:
        return string_to_number(value)
    if value is None:
        return 0.0
    # An array becomes the string its elements join to: only "" (no element)
    # and single elements can read as numbers, "1,2" cannot.
    while type(value) is list:
        if not value:
            return 0.0
        if len(value) > 1:
            return math.nan
        value = value[0]
        t = type(value)
        if value is None:
            return 0.0
        if t is int or t is float:
            return _to_float(value)
        if t is str:
            return string_to_number(value)
    return math.nan


def _to_float(number: int) -> float:
    try:
        return float(number)
    except OverflowError:
        return math.inf if number > 0 else -math.inf


def utf16_length(text: str) -> int:
    """JavaScript's ``text.length``."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def utf16_unit(text: str, index: int) -> object:
    """JavaScript's ``text[index]``: one UTF-16 code unit, or MISSING."""
    if text.isascii():
        return text[index] if index < len(text) else MISSING
    units = text.encode("utf-16-le", "surrogatepass")
    unit = units[2 * index : 2 * index + 2]
    return unit.decode("utf-16-le", "surrogatepass") if unit else MISSING


def string_less(a: str, b: str) -> bool:
    """JavaScript's ``a < b`` for strings: by UTF-16 code units."""
    if a.isascii() and b.isascii():
        return a < b
    return a.encode("utf-16-be", "surrogatepass") < b.encode(
        "utf-16-be", "surrogatepass"
    )


def has_own(owner: Any, key: Any) -> bool:
    """JavaScript's ``owner.hasOwnProperty(key)`` for JSON values."""
    t = type(owner)
    if t is dict:
        return (key if type(key) is str else str(key)) in owner
    if t is list or t is str:
        if key == "length":
            return True
        size = len(owner) if t is list else utf16_length(owner)
        if type(key) is int:
            return 0 <= key < size
        index = _cached_array_index(key) if type(key) is str else None
        return index is not None and index < size
    return False


def js_key_order(obj: dict[str, Any]) -> list[str]:
    """The order of JavaScript's ``for (key in obj)``: array indexes first, ascending."""
    indexes = sorted(
        (index, key)
        for key in obj
        if (index := _cached_array_index(key)) is not None
    )
    if not indexes:
        return list(obj)
    return [key for _, key in indexes] + [
        key for key in obj if _cached_array_index(key) is None
    ]
