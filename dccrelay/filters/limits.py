"""
Bounds on criteria, shared by the filter backends, and the operator's way to
set them.

Criteria are untrusted and are compiled once but evaluated on every dispatch,
so their size bounds both compile work and per-dispatch work. The module
constants are the defaults; :class:`FilterLimits` carries the values an
operator chose to :func:`dccrelay.filters.compile_criteria` and to the
backends.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

from dccrelay.filters.errors import CriteriaError
from dccrelay.filters.regex import (
    MAX_CRITERIA_REGEX_PROGRAM,
    MAX_REGEX_LENGTH,
    MAX_REGEX_PROGRAM,
    MAX_REGEX_REPEAT,
    REGEX_MEMORY,
    RegexBounds,
)

#: Longest criteria, in bytes of compact UTF-8 JSON.
MAX_CRITERIA_BYTES = 16 * 1024
#: Deepest nesting: of JSON objects and arrays in criteria (``{}`` is 1), and
#: of filters, parentheses, ``!`` and function calls in a JSONPath query.
MAX_DEPTH = 32
#: Most operators: in mongo criteria each key of a query or of an operator
#: object counts one, and so does each query in an array operand; in JSONPath
#: each selector counts once per branch the query expands into, and so does
#: each operator, function call and query inside a filter.
MAX_OPERATORS = 256
#: Longest ``$in``/``$nin`` list (mongo).
MAX_IN_LENGTH = 1000
#: Longest JSONPath query, in characters.
MAX_QUERY_LENGTH = 2048

__all__ = [
    "MAX_CRITERIA_BYTES",
    "MAX_DEPTH",
    "MAX_IN_LENGTH",
    "MAX_OPERATORS",
    "MAX_QUERY_LENGTH",
    "MAX_REGEX_LENGTH",
    "MAX_REGEX_PROGRAM",
    "MAX_CRITERIA_REGEX_PROGRAM",
    "MAX_REGEX_REPEAT",
    "REGEX_MEMORY",
    "DEFAULT_LIMITS",
    "FilterLimits",
    "check_json",
    "pointer_to",
]


@dataclass(frozen=True)
class FilterLimits:
    """
    The bounds a relay puts on every bot's criteria; defaults as above.

    Each is a whole number, 1 or more. Lowering one never lets through
    criteria it refused before; raising one trades the relay's CPU and memory
    for bot authors' freedom (a compiled predicate costs up to about
    ``max_operators`` times the payload's size per dispatch).
    """

    #: Size of the criteria as compact UTF-8 JSON, in bytes.
    max_criteria_bytes: int = MAX_CRITERIA_BYTES
    #: Nesting depth; see :data:`MAX_DEPTH`.
    max_depth: int = MAX_DEPTH
    #: Operators and fields; see :data:`MAX_OPERATORS`.
    max_operators: int = MAX_OPERATORS
    #: Length of one regular expression, in characters.
    max_regex_length: int = MAX_REGEX_LENGTH
    #: Values in one ``$in``/``$nin`` list.
    max_in_length: int = MAX_IN_LENGTH
    #: Length of one JSONPath query, in characters.
    max_query_length: int = MAX_QUERY_LENGTH
    #: RE2 program memory of one regex, in bytes; see
    #: :data:`dccrelay.filters.regex.MAX_REGEX_PROGRAM`.
    max_regex_program: int = MAX_REGEX_PROGRAM
    #: RE2 program memory of all the regexes of one criteria, in bytes.
    max_criteria_regex_program: int = MAX_CRITERIA_REGEX_PROGRAM
    #: Largest repetition count in a regex (``{n,m}``).
    max_regex_repeat: int = MAX_REGEX_REPEAT
    #: RE2's memory (``max_mem``) for each compiled regex, in bytes.
    regex_memory: int = REGEX_MEMORY

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if type(value) is not int or value < 1:
                raise ValueError(
                    f"{field.name} must be a whole number, 1 or more; got {value!r}"
                )

    def regex_bounds(self) -> RegexBounds:
        """The bounds on each regex; ``.budget()`` makes one criteria's total."""
        return RegexBounds(
            max_program=self.max_regex_program,
            max_total_program=self.max_criteria_regex_program,
            max_repeat=self.max_regex_repeat,
            memory=self.regex_memory,
        )


#: The limits a relay applies when the operator sets none.
DEFAULT_LIMITS = FilterLimits()


def pointer_to(base: str, key: object) -> str:
    """The JSON pointer (RFC 6901) to ``key`` inside the value at ``base``."""
    return base + "/" + str(key).replace("~", "~0").replace("/", "~1")


def check_json(value: Any, *, max_bytes: int, max_depth: int) -> None:
    """
    Check that ``value`` is plain JSON data within the size and depth bounds.

    Iterative and budgeted (every JSON value takes at least one byte), so a
    huge or self-referencing structure is refused without being walked whole.

    :raises CriteriaError: naming the first offending place.
    """
    budget = max_bytes
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        item, depth, pointer = stack.pop()
        t = type(item)
        if t is dict or t is list:
            if depth > max_depth:
                raise CriteriaError(
                    f"criteria are nested more than {max_depth} levels deep", pointer
                )
            budget -= len(item)
            if budget < 0:
                raise _too_large(max_bytes)
            if t is dict:
                for key, child in item.items():
                    if type(key) is not str:
                        raise CriteriaError("object keys must be strings", pointer)
                    budget -= len(key)
                    stack.append((child, depth + 1, pointer_to(pointer, key)))
            else:
                for index, child in enumerate(item):
                    stack.append((child, depth + 1, pointer_to(pointer, index)))
        elif t is str:
            budget -= len(item)
        elif t is float:
            if not math.isfinite(item):
                raise CriteriaError("numbers must be finite (JSON has no NaN or Infinity)", pointer)
        elif not (t is int or t is bool or item is None):
            raise CriteriaError(f"criteria must be JSON data, not {t.__name__}", pointer)
        if budget < 0:
            raise _too_large(max_bytes)
    try:
        encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except ValueError:  # an integer too long to print
        raise _too_large(max_bytes) from None
    size = len(encoded.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise CriteriaError(
            f"criteria are {size} bytes of JSON; the limit is {max_bytes}", ""
        )


def _too_large(max_bytes: int) -> CriteriaError:
    return CriteriaError(f"criteria are larger than the limit of {max_bytes} bytes of JSON", "")
