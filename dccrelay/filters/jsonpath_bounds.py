"""
What a JSONPath query may cost, checked before and after parsing it.

RFC 9535 lets a short query do a lot of work: ``$[*,*][*,*]...`` doubles the
nodes it visits with each segment, and a descendant segment (``..``) or a
query that starts from the root (``$``), evaluated inside a filter once per
candidate node, multiplies the work by the size of the payload. So that a
query costs at most about its size times the payload's, we refuse:

- descendant segments inside filters, and more than one in a query;
- queries inside filters that start from ``$`` and are not singular (name
  and index selectors only, such as ``$.t`` or ``$['d'][0]``);
- more operators than ``max_operators``, counting each selector once per
  branch the query has expanded into by then (so ``$['a','b'].c`` counts 2
  for ``['a','b']`` and 2 for ``.c``), and each comparison, logical
  operator, function call and query inside a filter once per branch too;
- nesting (filters, parentheses, ``!``, calls) deeper than ``max_depth``;
- ``match()`` and ``search()`` with a literal pattern that is not a string,
  not an I-Regexp, longer than ``max_regex_length`` or beyond RE2.

The parser of our JSONPath library is recursive, so bracket and parenthesis
nesting is also bounded on the raw text before it sees the query.
"""

from __future__ import annotations

from typing import Optional

from jsonpath_rfc9535 import JSONPathQuery
from jsonpath_rfc9535.filter_expressions import (
    ComparisonExpression,
    Expression,
    FilterExpressionLiteral,
    FilterQuery,
    FunctionExtension,
    LogicalExpression,
    PrefixExpression,
    RootFilterQuery,
)
from jsonpath_rfc9535.segments import JSONPathRecursiveDescentSegment
from jsonpath_rfc9535.selectors import FilterSelector

from dccrelay.filters.errors import CriteriaError
from dccrelay.filters.iregexp import compile_iregexp
from dccrelay.filters.regex import DEFAULT_BOUNDS, RegexBudget


def check_text(query: str, *, max_length: int, max_depth: int, pointer: str) -> None:
    """
    Refuse a query that is too long or whose brackets and parentheses nest
    too deeply, before it is parsed.
    """
    if len(query) > max_length:
        raise CriteriaError(
            f"JSONPath query is {len(query)} characters long; the limit is {max_length}",
            pointer,
        )
    depth = 0
    quote = ""
    escaped = False
    for ch in query:
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "[(":
            depth += 1
            if depth > max_depth:
                raise _too_deep(max_depth, pointer)
        elif ch in "])":
            depth -= 1


class QueryBounds:
    """
    Walks a parsed query, counting operators and nesting and refusing what
    the module docstring lists.
    """

    def __init__(
        self,
        *,
        max_operators: int,
        max_depth: int,
        max_regex_length: int,
        regexes: Optional[RegexBudget] = None,
    ) -> None:
        self.max_operators = max_operators
        self.max_depth = max_depth
        self.max_regex_length = max_regex_length
        #: What the criteria's literal patterns may still spend (regex.py).
        self.regexes = DEFAULT_BOUNDS.budget() if regexes is None else regexes
        #: Operators counted so far; shared by every query of the criteria.
        self.operators = 0
        #: Where the query being checked is in the criteria.
        self.pointer = ""

    def check(self, query: JSONPathQuery, pointer: str) -> None:
        """Check one query of the criteria, found at ``pointer``."""
        self.pointer = pointer
        self.query(query)

    def query(self, query: JSONPathQuery, *, branches: int = 1, depth: int = 0, in_filter: bool = False) -> None:
        """
        Check ``query`` and everything in it.

        :param depth: the nesting so far: filters, ``!``, parenthesised
            operands of ``&&``/``||`` and function calls each add one, as
            their brackets and parentheses do in the text.
        """
        descents = 0
        for segment in query.segments:
            if isinstance(segment, JSONPathRecursiveDescentSegment):
                if in_filter:
                    self._refuse(
                        "descendant segments (..) cannot be used inside a filter: their"
                        " cost would grow with the square of the payload"
                    )
                descents += 1
                if descents > 1:
                    self._refuse("a JSONPath query can have one descendant segment (..) at most")
            branches *= len(segment.selectors)
            self._count(branches)
            for selector in segment.selectors:
                if isinstance(selector, FilterSelector):
                    self._check_depth(depth + 1)
                    self.expression(selector.expression.expression, branches, depth + 1)

    def expression(self, expression: Expression, branches: int, depth: int) -> None:
        """Check one filter expression, ``depth`` levels deep, and what it contains."""
        if isinstance(expression, LogicalExpression):
            # a && b && c is one level, however long, as in the text; a
            # parenthesised (x || y) inside it is one more.
            for operand in _operands(expression):
                self._count(branches)
                inner = depth + 1 if isinstance(operand, LogicalExpression) else depth
                self._check_depth(inner)
                self.expression(operand, branches, inner)
        elif isinstance(expression, PrefixExpression):
            self._count(branches)
            self._check_depth(depth + 1)
            self.expression(expression.right, branches, depth + 1)
        elif isinstance(expression, ComparisonExpression):
            self._count(branches)
            self.expression(expression.left, branches, depth)
            self.expression(expression.right, branches, depth)
        elif isinstance(expression, FunctionExtension):
            self._count(branches)
            self._function(expression)
            self._check_depth(depth + 1)
            for argument in expression.args:
                self.expression(argument, branches, depth + 1)
        elif isinstance(expression, FilterQuery):
            self._count(branches)
            self.query(expression.query, branches=branches, depth=depth, in_filter=True)
            if isinstance(expression, RootFilterQuery) and not expression.query.singular_query():
                self._refuse(
                    f"{expression} inside a filter must be a singular query (names and"
                    " indexes only, such as $.t): it is evaluated for every candidate node"
                )

    def _function(self, call: FunctionExtension) -> None:
        # Literal patterns are compiled now, so that mistakes are errors.
        if call.name not in ("match", "search"):
            return
        pattern = call.args[1]
        if isinstance(pattern, FilterExpressionLiteral):
            if not isinstance(pattern.value, str):
                self._refuse(f"{call.name}() takes a string pattern, not {pattern}")
            compile_iregexp(
                pattern.value, max_length=self.max_regex_length, budget=self.regexes,
                pointer=self.pointer,
            )

    def _count(self, operators: int) -> None:
        self.operators += operators
        if self.operators > self.max_operators:
            self._refuse(
                f"criteria have more than {self.max_operators} JSONPath operators"
                " (selectors count once per branch the query has expanded into)"
            )

    def _check_depth(self, depth: int) -> None:
        if depth > self.max_depth:
            raise _too_deep(self.max_depth, self.pointer)

    def _refuse(self, message: str) -> None:
        raise CriteriaError(message, self.pointer)


def _operands(expression: LogicalExpression) -> list[Expression]:
    # The operands of a chain of one operator, left to right, iteratively:
    # the parser nests a && b && c as ((a && b) && c).
    operands: list[Expression] = []
    pending: list[Expression] = [expression]
    while pending:
        item = pending.pop()
        if isinstance(item, LogicalExpression) and item.operator == expression.operator:
            pending.append(item.right)
            pending.append(item.left)
        else:
            operands.append(item)
    return operands


def _too_deep(max_depth: int, pointer: str) -> CriteriaError:
    return CriteriaError(
        f"JSONPath query is nested more than {max_depth} levels deep"
        " (filters, parentheses, !, function calls)",
        pointer,
    )
