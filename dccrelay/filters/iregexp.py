"""
I-Regexp (RFC 9485), the pattern language of JSONPath's ``match()`` and
``search()``, run on RE2.

I-Regexp is a small subset of XML Schema regular expressions, so every
pattern has an RE2 equivalent. :func:`to_re2` checks a pattern against the
RFC's grammar (we do not use the ``iregexp_check`` package: its 0.1.4 refuses
repetition counts of two digits or more, such as ``{10}``) and rewrites the
few places where RE2 reads the same text differently:

- ``.`` matches any character but ``\\n`` and ``\\r`` (RE2's ``.`` takes
  ``\\r``);
- ``^`` and ``$`` are ordinary characters;
- ``\\p{C}`` includes unassigned code points (``Cn``), which RE2 has no
  class for: both are spelt as the complement of the assigned categories.

Matches are anchored at both ends for ``match()`` and unanchored for
``search()``, as RFC 9535 says.
"""

from __future__ import annotations

from typing import Optional

from dccrelay.filters.errors import CriteriaError
from dccrelay.filters.regex import MAX_REGEX_LENGTH, Regex, RegexBudget, compile_regex, shorten

# The general categories RE2 knows; with C (RE2's: Cc Cf Co Cs) they cover
# every assigned code point.
_ASSIGNED = r"\p{L}\p{M}\p{N}\p{P}\p{S}\p{Z}"
# Outside a class: what each escape RE2 cannot read as I-Regexp means it.
_CATEGORY_OUTSIDE = {
    r"\p{C}": f"[^{_ASSIGNED}]",
    r"\P{C}": f"[{_ASSIGNED}]",
    r"\p{Cn}": rf"[^{_ASSIGNED}\p{{C}}]",
    r"\P{Cn}": rf"[{_ASSIGNED}\p{{C}}]",
}
# Inside a class, only the positive spellings fit (RE2 classes cannot
# intersect); the others are refused.
_CATEGORY_INSIDE = {
    r"\P{C}": _ASSIGNED,
    r"\P{Cn}": rf"{_ASSIGNED}\p{{C}}",
}
# RFC 9485's IsCategory: a letter and the subcategories it may take.
_CATEGORIES = {"L": "lmotu", "M": "cen", "N": "dlo", "P": "cdefios", "Z": "lps", "S": "ckmo", "C": "cfno"}
# SingleCharEsc: what may follow a backslash, besides p and P.
_SINGLE_ESCAPES = frozenset("()*+-.?[\\]^{|}nrt")


class IRegexpError(ValueError):
    """A pattern is not an I-Regexp; the message says why and where."""


class NotInRE2Error(IRegexpError):
    """A valid I-Regexp that RE2 cannot express."""


class _Translator:
    """One pass over a pattern, checking RFC 9485's grammar and writing RE2."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.at = 0
        self.out: list[str] = []

    def fail(self, reason: str) -> IRegexpError:
        return IRegexpError(f"{reason} at position {self.at}")

    def peek(self, ahead: int = 0) -> str:
        index = self.at + ahead
        return self.pattern[index] if index < len(self.pattern) else ""

    def translate(self) -> str:
        # Groups nest with a counter, not recursion: patterns are untrusted.
        groups = 0
        quantifiable = False
        while self.at < len(self.pattern):
            ch = self.pattern[self.at]
            if ch == "(":
                groups += 1
                quantifiable = False
                self.emit(ch)
            elif ch == ")":
                if not groups:
                    raise self.fail("unbalanced )")
                groups -= 1
                quantifiable = True
                self.emit(ch)
            elif ch == "|":
                quantifiable = False
                self.emit(ch)
            elif ch in "*+?{":
                if not quantifiable:
                    raise self.fail(f"{ch} repeats nothing")
                self.quantifier()
                quantifiable = False
            elif ch == "[":
                self.char_class()
                quantifiable = True
            elif ch == "\\":
                self.out.append(self.escape(inside=False))
                quantifiable = True
            elif ch in "}]":
                raise self.fail(f"unescaped {ch}")
            elif ch == ".":
                self.emit(r"[^\n\r]")
                quantifiable = True
            elif ch in "^$":
                self.emit("\\" + ch)
                quantifiable = True
            else:
                self.emit(self.normal(ch))
                quantifiable = True
        if groups:
            raise self.fail("unbalanced (")
        return "".join(self.out)

    def emit(self, text: str) -> None:
        self.out.append(text)
        self.at += 1

    def normal(self, ch: str) -> str:
        if "\ud800" <= ch <= "\udfff":
            raise self.fail("unpaired surrogate")
        return ch

    def quantifier(self) -> None:
        ch = self.pattern[self.at]
        if ch != "{":
            self.emit(ch)
            return
        end = self.pattern.find("}", self.at)
        body = self.pattern[self.at + 1 : end] if end > 0 else ""
        low, comma, high = body.partition(",")
        if not (low.isascii() and low.isdigit() and (not high or (high.isascii() and high.isdigit()))):
            raise self.fail("a repetition count is {n}, {n,} or {n,m}")
        if high and int(high) < int(low):
            raise self.fail(f"repetition {{{body}}} has its bounds reversed")
        self.out.append("{" + body + "}")
        self.at = end + 1

    def escape(self, inside: bool) -> str:
        """The escape at the cursor, translated; the cursor moves past it."""
        ch = self.peek(1)
        if ch in _SINGLE_ESCAPES:
            self.at += 2
            return "\\" + ch
        if ch in ("p", "P") and self.peek(2) == "{":
            end = self.pattern.find("}", self.at)
            name = self.pattern[self.at + 3 : end] if end > 0 else ""
            if not (1 <= len(name) <= 2 and name[0] in _CATEGORIES and name[1:] in _CATEGORIES[name[0]]):
                raise self.fail(f"unknown Unicode category \\{ch}{{{name}}}")
            text = self.pattern[self.at : end + 1]
            table = _CATEGORY_INSIDE if inside else _CATEGORY_OUTSIDE
            if inside and text in _CATEGORY_OUTSIDE and text not in table:
                raise NotInRE2Error(
                    f"{text} inside a character class is not supported by RE2;"
                    f" write ([...]|{text}) instead"
                )
            self.at = end + 1
            return table.get(text, text)
        raise self.fail(f"\\{ch} is not an I-Regexp escape")

    def char_class(self) -> None:
        parts = ["["]
        self.at += 1
        if self.peek() == "^":
            parts.append("^")
            self.at += 1
        if self.peek() == "-":
            parts.append("-")
            self.at += 1
        elif self.peek() == "]":
            raise self.fail("empty character class")
        while True:
            ch = self.peek()
            if ch == "":
                raise self.fail("unbalanced [")
            if ch == "]":
                break
            if ch == "-":
                if self.peek(1) != "]":
                    raise self.fail("- inside a class is a range or comes last")
                parts.append("-")
                self.at += 1
                continue
            low, text = self.class_char()
            parts.append(text)
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                if low is None:
                    raise self.fail("a category cannot start a range")
                self.at += 1
                high, high_text = self.class_char()
                if high is None or high < low:
                    raise self.fail("invalid range")
                parts.append("-" + high_text)
        parts.append("]")
        self.at += 1
        self.out.append("".join(parts))

    def class_char(self) -> tuple[Optional[int], str]:
        # A character or escape inside a class: (its code point, or None for
        # a category, and its RE2 text).
        ch = self.peek()
        if ch == "\\":
            escaped = self.peek(1)
            text = self.escape(inside=True)
            if escaped in _SINGLE_ESCAPES:
                return ord({"n": "\n", "r": "\r", "t": "\t"}.get(escaped, escaped)), text
            return None, text
        if ch in "[-":
            raise self.fail(f"unescaped {ch} inside a class")
        text = self.normal(ch)
        self.at += 1
        return ord(ch), text


def is_iregexp(pattern: str) -> bool:
    """Whether ``pattern`` is a valid I-Regexp that RE2 can express."""
    try:
        to_re2(pattern)
    except IRegexpError:
        return False
    return True


def to_re2(pattern: str) -> str:
    """
    The RE2 spelling of an I-Regexp.

    :raises IRegexpError: if it is not one; :class:`NotInRE2Error` for
        ``\\p{C}`` or ``\\p{Cn}`` inside a class, which RE2 cannot express.
    """
    return _Translator(pattern).translate()


def compile_iregexp(
    pattern: object,
    *,
    max_length: int = MAX_REGEX_LENGTH,
    budget: Optional[RegexBudget] = None,
    pointer: str = "",
) -> Regex:
    """
    Compile an I-Regexp with RE2, or say why not.

    :param budget: as for :func:`~dccrelay.filters.regex.compile_regex`.

    :raises CriteriaError: if ``pattern`` is not a string, is too long, is not
        a valid I-Regexp, or is one RE2 cannot run.
    """
    if not isinstance(pattern, str):
        raise CriteriaError("a regular expression must be a string", pointer)
    if len(pattern) > max_length:
        # Checked before the pattern is even parsed.
        raise CriteriaError(
            f"regular expression is {len(pattern)} characters long;"
            f" the limit is {max_length}",
            pointer,
        )
    try:
        source = to_re2(pattern)
    except NotInRE2Error as e:
        raise CriteriaError(f"{e}: {shorten(pattern)}", pointer) from None
    except IRegexpError as e:
        raise CriteriaError(
            f"not an I-Regexp (RFC 9485), the pattern language of JSONPath ({e}):"
            f" {shorten(pattern)}; it has no anchors, lookaround, backreferences,"
            " \\d, \\w or \\s, and match() is anchored at both ends, search() is not",
            pointer,
        ) from None
    # The translation may lengthen the pattern (each "." by 6): the limit
    # applies to what the bot author wrote, checked above.
    return compile_regex(
        source, max_length=max_length * 8, budget=budget, pointer=pointer, shown=pattern
    )


def try_compile_iregexp(
    pattern: object, max_length: int, budget: Optional[RegexBudget] = None
) -> Optional[Regex]:
    """:func:`compile_iregexp`, or None where it would raise."""
    try:
        return compile_iregexp(pattern, max_length=max_length, budget=budget)
    except CriteriaError:
        return None
