"""
Regular expressions from criteria, always run on RE2.

Patterns come from bot authors and run against every dispatch, so none may
backtrack: RE2 (through pyre2) matches in time linear in the text, whatever
the pattern. pyre2, though, quietly compiles what RE2 cannot with Python's
backtracking ``re`` instead and returns an ``re2.FallbackPattern``. We refuse
those patterns, by checking the type of each compiled pattern rather than
through pyre2's process-wide fallback setting, and say which construct RE2
lacks when we can tell.

Perl classes ``\\d``, ``\\w``, ``\\s`` and ``\\b`` are ASCII, as in JavaScript
(pyre2 would otherwise widen them to Unicode, as Python's ``re`` does).
Patterns written for JavaScript may have their escapes that RE2 spells
differently translated first (``javascript=True``).
"""

from __future__ import annotations

import re
from typing import Optional

import re2

from dccrelay.filters.errors import CriteriaError

#: Longest pattern accepted, in characters.
MAX_REGEX_LENGTH = 1024

#: RE2's memory budget per pattern, in bytes. Compiling a pattern whose
#: program needs more fails (the pattern is refused); matching that would need
#: more falls back to RE2's slower, still linear, NFA.
REGEX_MAX_MEMORY = 1 << 20

_MAX_REPEAT = 1000

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
    max_memory: int = REGEX_MAX_MEMORY,
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
    :param pointer: where the pattern is in the criteria, for the error.
    :param shown: the pattern as the bot author wrote it, quoted in errors,
        when ``pattern`` is a translation of it.
    :raises CriteriaError: if ``pattern`` is not a string, is longer than
        ``max_length``, is invalid, or uses something RE2 does not support.
    """
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
    reason = _unsupported_construct(source, verbose)
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
    try:
        # Not re2.compile: its cache ignores max_mem.
        compiled = re2._compile(source, flags, max_memory)
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
    return Regex(pattern, compiled)


def _unsupported_construct(pattern: str, verbose: bool) -> Optional[str]:
    scanner = _VERBOSE_SCANNER if verbose else _SCANNER
    for token in scanner.finditer(pattern):
        kind = token.lastgroup
        if kind in _UNSUPPORTED:
            return _UNSUPPORTED[kind]
        if kind in ("low", "high"):
            counts = [token.group("low"), token.group("high")]
            if any(c and int(c) > _MAX_REPEAT for c in counts):
                return f"repetition counts above {_MAX_REPEAT} are not supported by RE2"
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
