"""
The ``jsonpath`` filter backend: RFC 9535 JSONPath queries.

Criteria are one query or a list of them; a dispatch is delivered when every
query selects at least one node of it, e.g.
``"$[?@.author && !@.author.bot && search(@.content, 'cookout')]"``.

Queries are parsed and evaluated by the ``jsonpath-rfc9535`` library, which
follows RFC 9535 strictly. Its ``match()`` and ``search()`` functions are
replaced, through its function extension registry, by ones running I-Regexp
on RE2 (:mod:`dccrelay.filters.iregexp`). Where we differ from the RFC:

- a string literal pattern that is not a valid I-Regexp, or that RE2 cannot
  run, is refused when the criteria are compiled (the RFC makes such a call
  false on every node); so is a pattern literal that is not a string;
- the limits of :mod:`dccrelay.filters.jsonpath_bounds` refuse queries whose
  cost could grow faster than the payload (descendant segments inside
  filters, non-singular ``$`` queries inside filters, ...);
- a descendant segment meeting a payload nested more than 100 levels deep
  selects nothing, so the query does not match.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Optional

from jsonpath_rfc9535 import JSONPathEnvironment, JSONPathError, JSONPathQuery
from jsonpath_rfc9535.function_extensions import ExpressionType, FilterFunction
from twisted.logger import Logger
from twisted.plugin import IPlugin
from zope.interface import implementer

from dccrelay.filters.errors import CriteriaError
from dccrelay.filters.interfaces import ILimitedFilterBackend
from dccrelay.filters.iregexp import try_compile_iregexp
from dccrelay.filters.jsonpath_bounds import QueryBounds, check_text
from dccrelay.filters.limits import DEFAULT_LIMITS, FilterLimits, check_json, pointer_to
from dccrelay.filters.regex import Regex, RegexBounds, RegexBudget

_log = Logger(namespace=__name__)

# Patterns read from payloads (match(@.a, @.b)) are compiled when met; this
# many stay compiled per backend configuration.
_PATTERN_CACHE_SIZE = 256


class _RegexFunction(FilterFunction):
    """RFC 9535's ``match()`` (``anchored``) or ``search()``, on RE2."""

    arg_types = [ExpressionType.VALUE, ExpressionType.VALUE]
    return_type = ExpressionType.LOGICAL

    def __init__(self, *, anchored: bool, max_length: int, bounds: RegexBounds) -> None:
        self.anchored = anchored
        self.max_length = max_length
        self.bounds = bounds
        self._cache: OrderedDict[str, Optional[Regex]] = OrderedDict()

    def __call__(self, value: object, pattern: object) -> bool:
        if not isinstance(value, str) or not isinstance(pattern, str):
            return False
        regex = self.compiled(pattern)
        if regex is None:
            return False
        return regex.fullmatch(value) if self.anchored else regex.search(value)

    def compiled(self, pattern: str) -> Optional[Regex]:
        """``pattern`` on RE2, or None if it is not a usable I-Regexp; cached."""
        try:
            self._cache.move_to_end(pattern)
            return self._cache[pattern]
        except KeyError:
            pass
        # A pattern read from a payload is bounded like one in criteria, but
        # alone: it has no criteria's total to take from.
        regex = try_compile_iregexp(pattern, self.max_length, RegexBudget(self.bounds, None))
        self._cache[pattern] = regex
        if len(self._cache) > _PATTERN_CACHE_SIZE:
            self._cache.popitem(last=False)
        return regex


class _Environment(JSONPathEnvironment):
    """The library's environment, with ``match()`` and ``search()`` on RE2."""

    def __init__(self, limits: FilterLimits) -> None:
        # Read by setup_function_extensions, which the base __init__ calls.
        self.limits = limits
        super().__init__()

    def setup_function_extensions(self) -> None:
        super().setup_function_extensions()
        # Never the library's own, which use the backtracking `regex` module.
        max_length = self.limits.max_regex_length
        bounds = self.limits.regex_bounds()
        self.function_extensions["match"] = _RegexFunction(
            anchored=True, max_length=max_length, bounds=bounds
        )
        self.function_extensions["search"] = _RegexFunction(
            anchored=False, max_length=max_length, bounds=bounds
        )


@functools.lru_cache(maxsize=8)
def _environment(limits: FilterLimits) -> _Environment:
    # One per configuration, so that the pattern caches are shared.
    return _Environment(limits)


@implementer(IPlugin, ILimitedFilterBackend)
class JSONPathBackend:
    """
    RFC 9535 JSONPath queries, all of which must select something.

    :param limits: the bounds :meth:`compile` enforces when not given others:
        ``max_criteria_bytes``, ``max_depth``, ``max_operators``,
        ``max_regex_length`` and ``max_query_length``.
    """

    name = "jsonpath"

    def __init__(self, limits: FilterLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits

    def __repr__(self) -> str:
        return f"<JSONPathBackend {self.limits}>"

    def compile(self, criteria: Any, limits: Optional[FilterLimits] = None) -> Callable[[Any], bool]:
        """See :meth:`ILimitedFilterBackend.compile`."""
        limits = self.limits if limits is None else limits
        check_json(criteria, max_bytes=limits.max_criteria_bytes, max_depth=limits.max_depth)
        if isinstance(criteria, str):
            located = [(criteria, "")]
        elif isinstance(criteria, list) and criteria:
            located = [(query, pointer_to("", i)) for i, query in enumerate(criteria)]
        else:
            raise CriteriaError(
                "jsonpath criteria are a query string or a non-empty list of them", ""
            )
        env = _environment(limits)
        bounds = QueryBounds(
            max_operators=limits.max_operators,
            max_depth=limits.max_depth,
            max_regex_length=limits.max_regex_length,
            regexes=limits.regex_bounds().budget(),
        )
        queries = []
        for query, pointer in located:
            if not isinstance(query, str):
                raise CriteriaError("a JSONPath query must be a string", pointer)
            queries.append(_compile_query(env, query, pointer, limits, bounds))
        return _predicate(tuple(queries))

    def select(self, query: str, value: Any) -> list[Any]:
        """
        The values of the nodes ``query`` selects from ``value``, in order, as
        compiled criteria see them; for bot authors' tools and tests.

        :raises CriteriaError: as :meth:`compile` would for ``query``.
        """
        self.compile(query)
        compiled = _environment(self.limits).compile(query)
        return [node.value for node in compiled.finditer(value)]


def _compile_query(
    env: _Environment, query: str, pointer: str, limits: FilterLimits, bounds: QueryBounds
) -> JSONPathQuery:
    check_text(query, max_length=limits.max_query_length, max_depth=limits.max_depth, pointer=pointer)
    try:
        compiled = env.compile(query)
    except JSONPathError as e:
        raise CriteriaError(f"invalid JSONPath query: {e}", pointer) from None
    except RecursionError:
        # Only malformed text gets here (such as "!!!!..."): bracket and
        # parenthesis nesting was bounded above.
        raise CriteriaError("invalid JSONPath query: nested too deeply", pointer) from None
    bounds.check(compiled, pointer)
    return compiled


def _predicate(queries: tuple[JSONPathQuery, ...]) -> Callable[[Any], bool]:
    def matches(payload: Any) -> bool:
        try:
            for query in queries:
                if next(iter(query.finditer(payload)), None) is None:
                    return False
            return True
        except JSONPathError:
            # The library's own bound on descendant segments: too deep to look.
            return False
        except Exception:
            # A bug here must cost one dispatch, not the bot's gateway session.
            _log.failure("filter failed on a payload; not delivering it")
            return False

    return matches
