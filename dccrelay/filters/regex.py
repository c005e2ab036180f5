"""
Regular expressions from criteria, always run on RE2.

Patterns come from bot authors and run against every dispatch, so none may
backtrack: RE2 (through pyre2) matches in time linear in the text, whatever
the pattern. pyre2, though, quietly compiles what RE2 cannot with Python's
backtracking ``re`` instead and returns an ``re2.FallbackPattern``. We refuse
those patterns, by checking the type of each compiled pattern rather than
through pyre2's process-wide fallback setting, and say which construct RE2
lacks when we can tell.

Each pattern's cost is bounded, because a pattern runs on every dispatch on the
reactor thread. RE2 matches in time linear in the text, but the factor is the
size of the compiled program: when RE2's DFA cannot keep its states in memory
it falls back to an NFA that steps every live instruction for each byte, so a
48-character ``.{1,1000}x{1,1000}z`` took 330 ms on a 4,000-character message.
We bound what drives that factor: the program's size, in RE2's own accounting
(the memory RE2 needs to compile it, the figure its ``max_mem`` option limits),
per pattern and in total over one criteria (:class:`RegexBudget`), and every
repetition count. Programs within the bounds keep RE2's DFA within its memory
(:data:`REGEX_MEMORY`), and its NFA fallback within a known cost per byte
(``bench/regex_cost.py`` prints the worst case).

Perl classes ``\\d``, ``\\w``, ``\\s`` and ``\\b`` are ASCII, as in JavaScript
(pyre2 would otherwise widen them to Unicode, as Python's ``re`` does).
Patterns written for JavaScript may have their escapes that RE2 spells
differently translated first (``javascript=True``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import re2

from dccrelay.filters.errors import CriteriaError

#: Longest pattern accepted, in characters.
MAX_REGEX_LENGTH = 1024

#: Most RE2 program memory one pattern may need, in bytes: RE2's own figure
#: for the compiled program (about 12 bytes an instruction, plus about 700),
#: measured by compiling with ``max_mem``. ``hello`` needs 780, ``\\d{17,20}``
#: 996, ``.{1,20}`` 5,988 (``.`` is any UTF-8 sequence), ``\\p{L}+`` 16,488.
MAX_REGEX_PROGRAM = 24 * 1024

#: Most RE2 program memory all the patterns of one criteria may need together.
MAX_CRITERIA_REGEX_PROGRAM = 24 * 1024

#: Largest repetition count, as in ``{n}`` or ``{n,m}`` (RE2's own limit is
#: 1000). Counts are what make small patterns compile to large programs.
MAX_REGEX_REPEAT = 100

#: RE2's memory per compiled pattern, in bytes (its ``max_mem``): the program
#: and the DFA's state cache. A DFA that fills it starts again or falls back to
#: the NFA, whose cost the program bounds above keep small.
REGEX_MEMORY = 1 << 20

# RE2's own limit on repetition counts.
_RE2_MAX_REPEAT = 1000
# Program sizes are measured to this many bytes (about 5 instructions).
_PROGRAM_GRAIN = 64

# Constructs RE2 lacks, found by a left-to-right tokenizer of the pattern so
# that escapes and character classes are skipped as units. This only explains
# a refusal; the decision is RE2's.
_TOKENS = r"""
    \\ (?: (?P<backref> [1-9] | k< ) | . )
  | \[ \^? \]? (?: \\. | [^\]\\] )* \]
  | (?P<lookahead> \(\?[=!] )
  | (?P<lookbehind> \(\?<[=!] )
  | (?P<atomic> \(\?> )
  | (?P<conditional> \(\?\( )
  | (?P<named> \(\?< )
  | (?P<possessive> [*+?]\+ )
  | \{ (?P<low> [0-9]+ ) (?: , (?P<high> [0-9]* ) )? \} (?P<possessive_count> \+ )?
"""
_SCANNER = re.compile(_TOKENS + r"| .", re.VERBOSE | re.DOTALL)
_VERBOSE_SCANNER = re.compile(
    _TOKENS + r"| \#[^\n]* | .", re.VERBOSE | re.DOTALL
)

# JavaScript escapes with an RE2 equivalent: \uXXXX (a surrogate pair is one
# character), \cX and \0. Every escape is matched, so that \\u0041 (an
# escaped backslash, then text) is left alone.
_JAVASCRIPT_ESCAPE = re.compile(
    r"\\(?:u(?P<unit>[0-9a-fA-F]{4})(?:\\u(?P<low>[dD][c-fC-F][0-9a-fA-F]{2}))?"
    r"|c(?P<control>[A-Za-z])|(?P<nul>0)(?![0-9])|.)",
    re.DOTALL,
)

_UNSUPPORTED = {
    "backref": "backreferences are not supported by RE2",
    "lookahead": "lookahead is not supported by RE2",
    "lookbehind": "lookbehind is not supported by RE2",
    "atomic": "atomic groups are not supported by RE2",
    "conditional": "conditional groups are not supported by RE2",
    "named": "named groups are written (?P<name>...) in RE2",
    "possessive": "possessive quantifiers are not supported by RE2",
    "possessive_count": "possessive quantifiers are not supported by RE2",
}


@dataclass(frozen=True)
class RegexBounds:
    """
    The bounds on patterns, from the operator's filter limits.

    :ivar max_program: most RE2 program memory one pattern may need, bytes.
    :ivar max_total_program: most that all the patterns of one criteria may
        need together, bytes.
    :ivar max_repeat: largest repetition count.
    :ivar memory: RE2's ``max_mem`` for each compiled pattern, bytes.
    """

    max_program: int = MAX_REGEX_PROGRAM
    max_total_program: int = MAX_CRITERIA_REGEX_PROGRAM
    max_repeat: int = MAX_REGEX_REPEAT
    memory: int = REGEX_MEMORY

    def budget(self) -> RegexBudget:
        """A fresh total for the patterns of one criteria."""
        return RegexBudget(self, self.max_total_program)


class RegexBudget:
    """
    What the patterns of one criteria may still spend of their total; made by
    :meth:`RegexBounds.budget` and passed to every :func:`compile_regex` of the
    criteria. ``left`` None means no total (one pattern, such as a pattern
    read from a payload, bounded only by ``max_program``).
    """

    __slots__ = ("bounds", "left")

    def __init__(self, bounds: RegexBounds, left: Optional[int]) -> None:
        self.bounds = bounds
        self.left = left


#: Bounds for the patterns compiled without a criteria's budget.
DEFAULT_BOUNDS = RegexBounds()


class Regex:
    """
    A pattern compiled by RE2. Its methods take any ``str``, including ones
    with unpaired surrogates (JSON allows them, UTF-8 does not), and never
    raise.
    """

    __slots__ = ("pattern", "_compiled")

    def __init__(self, pattern: str, compiled: re2.Pattern) -> None:
        self.pattern = pattern
        self._compiled = compiled

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r})"

    def search(self, text: str) -> bool:
        """Whether the pattern matches anywhere in ``text``."""
        try:
            return self._compiled.search(text) is not None
        except UnicodeEncodeError:
            return self._compiled.search(_replace_surrogates(text)) is not None

    def match(self, text: str) -> bool:
        """Whether the pattern matches at the start of ``text``."""
        try:
            return self._compiled.match(text) is not None
        except UnicodeEncodeError:
            return self._compiled.match(_replace_surrogates(text)) is not None

    def fullmatch(self, text: str) -> bool:
        """Whether the pattern matches the whole of ``text``."""
        try:
            return self._compiled.fullmatch(text) is not None
        except UnicodeEncodeError:
            return self._compiled.fullmatch(_replace_surrogates(text)) is not None


def compile_regex(
    pattern: object,
    *,
    ignore_case: bool = False,
    multiline: bool = False,
    dot_all: bool = False,
    verbose: bool = False,
    max_length: int = MAX_REGEX_LENGTH,
    budget: Optional[RegexBudget] = None,
    javascript: bool = False,
    pointer: str = "",
    shown: Optional[str] = None,
) -> Regex:
    """
    Compile ``pattern`` with RE2, or explain why not.

    :param verbose: ignore whitespace and ``#`` comments outside character
        classes (MongoDB's and PCRE's ``x`` option).
    :param javascript: first translate JavaScript's ``\\uXXXX``, ``\\cX`` and
        ``\\0`` escapes, which RE2 spells differently.
    :param budget: the bounds, and what the criteria's patterns may still
        spend, which this pattern's program then takes from; the default
        bounds, with no total, if None.
    :param pointer: where the pattern is in the criteria, for the error.
    :param shown: the pattern as the bot author wrote it, quoted in errors,
        when ``pattern`` is a translation of it.
    :raises CriteriaError: if ``pattern`` is not a string, is longer than
        ``max_length``, is invalid, uses something RE2 does not support, or
        is beyond the bounds of ``budget``.
    """
    if budget is None:
        budget = RegexBudget(DEFAULT_BOUNDS, None)
    bounds = budget.bounds
    if not isinstance(pattern, str):
        raise CriteriaError("a regular expression must be a string", pointer)
    quoted = shorten(pattern if shown is None else shown)
    if len(pattern) > max_length:
        raise CriteriaError(
            f"regular expression is {len(pattern)} characters long;"
            f" the limit is {max_length}",
            pointer,
        )
    source = _translate_javascript(pattern) if javascript else pattern
    # Explain the constructs we know RE2 lacks before pyre2 would hand them
    # to the fallback.
    reason = _unsupported_construct(source, verbose, bounds.max_repeat)
    if reason is not None:
        raise CriteriaError(f"{reason}: {quoted}", pointer)
    flags = re2.ASCII
    if ignore_case:
        flags |= re2.IGNORECASE
    if multiline:
        flags |= re2.MULTILINE
    if dot_all:
        flags |= re2.DOTALL
    if verbose:
        flags |= re2.VERBOSE
    _spend(budget, source, flags, quoted, pointer)
    return Regex(pattern, _compile(source, flags, bounds.memory, quoted, pointer))


def _compile(source: str, flags: int, memory: int, quoted: str, pointer: str) -> re2.Pattern:
    try:
        # Not re2.compile: its cache ignores max_mem.
        compiled = re2._compile(source, flags, memory)
    except (re.error, ValueError, TypeError, OverflowError) as e:
        # re2.RegexError is re.error; UnicodeEncodeError (unpaired surrogates)
        # is a ValueError.
        raise CriteriaError(
            f"invalid regular expression ({e}): {quoted}", pointer
        ) from None
    if type(compiled) is not re2.Pattern:
        raise CriteriaError(
            "RE2 cannot compile this regular expression (it uses syntax RE2"
            f" lacks or is too large): {quoted}",
            pointer,
        )
    return compiled


def _spend(budget: RegexBudget, source: str, flags: int, quoted: str, pointer: str) -> None:
    # The probe compiles stop at their budget, so a huge pattern costs no
    # more than one within the bounds.
    limit = budget.bounds.max_program
    if budget.left is not None:
        limit = min(limit, budget.left)
    if not _fits(source, flags, limit):
        # An invalid pattern does not fit either: say what is wrong with it.
        _compile(source, flags, budget.bounds.memory, quoted, pointer)
        if limit < budget.bounds.max_program and _fits(source, flags, budget.bounds.max_program):
            raise CriteriaError(
                "the criteria's regular expressions together need more than"
                f" {budget.bounds.max_total_program} bytes of RE2 program memory,"
                f" the limit; {budget.left} were left for this one: use fewer or"
                f" simpler regular expressions: {quoted}",
                pointer,
            )
        raise CriteriaError(
            f"regular expression needs more than {budget.bounds.max_program} bytes"
            " of RE2 program memory, the limit: use smaller repetition counts,"
            " fewer alternatives or narrower classes (each . or large class is"
            f" many instructions): {quoted}",
            pointer,
        )
    if budget.left is not None:
        budget.left -= program_size(source, flags, limit)


def program_size(source: str, flags: int, limit: int) -> int:
    """
    The RE2 program memory ``source`` needs, in bytes, rounded up to
    :data:`_PROGRAM_GRAIN`; it must be known to fit in ``limit``.

    pyre2 does not expose RE2's program size, so it is found by bisection
    on ``max_mem``: each compile stops once past its budget, so this costs a
    few compiles of at most ``limit`` bytes.
    """
    # Bisect over whole grains, so that the answer does not depend on limit.
    low, high = 0, -(-limit // _PROGRAM_GRAIN)
    while high - low > 1:
        middle = (low + high) // 2
        if _fits(source, flags, middle * _PROGRAM_GRAIN):
            high = middle
        else:
            low = middle
    return min(high * _PROGRAM_GRAIN, limit)


def _fits(source: str, flags: int, memory: int) -> bool:
    # RE2 refuses a program larger than its max_mem allows; pyre2 then
    # quietly hands the pattern to Python's re, which we recognise by type.
    try:
        return type(re2._compile(source, flags, memory)) is re2.Pattern
    except (re.error, ValueError, TypeError, OverflowError):
        return False


def _unsupported_construct(pattern: str, verbose: bool, max_repeat: int) -> Optional[str]:
    scanner = _VERBOSE_SCANNER if verbose else _SCANNER
    for token in scanner.finditer(pattern):
        kind = token.lastgroup
        if kind in _UNSUPPORTED:
            return _UNSUPPORTED[kind]
        if kind in ("low", "high"):
            counts = [token.group("low"), token.group("high")]
            largest = max(int(c) for c in counts if c)
            if largest > _RE2_MAX_REPEAT:
                return f"repetition counts above {_RE2_MAX_REPEAT} are not supported by RE2"
            if largest > max_repeat:
                return (
                    f"repetition count {largest} is above the limit of {max_repeat}"
                    " (counts make large programs, slow on every message)"
                )
    return None


def _translate_javascript(pattern: str) -> str:
    def translate(escape: re.Match[str]) -> str:
        unit, low = escape.group("unit"), escape.group("low")
        if unit is not None:
            code = int(unit, 16)
            if low is None:
                return _literal(code)
            if 0xD800 <= code <= 0xDBFF:
                return _literal(0x10000 + ((code - 0xD800) << 10) + int(low, 16) - 0xDC00)
            return _literal(code) + _literal(int(low, 16))
        if escape.group("control") is not None:
            return _literal(ord(escape.group("control")) % 32)
        if escape.group("nul") is not None:
            return _literal(0)
        return escape.group(0)

    return _JAVASCRIPT_ESCAPE.sub(translate, pattern)


def _literal(code: int) -> str:
    # ASCII as \xHH, so that punctuation stays literal, in a class or not;
    # anything else is never special. An unpaired surrogate is left for the
    # compiler to refuse.
    return f"\\x{code:02x}" if code < 0x80 else chr(code)


def shorten(pattern: str, limit: int = 80) -> str:
    """``pattern``'s repr, cut to ``limit`` characters, for error messages."""
    text = repr(pattern)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _replace_surrogates(text: str) -> str:
    # Unpaired surrogates become U+FFFD, which no sensible pattern targets.
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
