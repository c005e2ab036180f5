"""
Tests for dccrelay.filters.iregexp: I-Regexp (RFC 9485) patterns on RE2.
"""

from __future__ import annotations

import re2
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.filters.errors import CriteriaError
from dccrelay.filters.iregexp import compile_iregexp, is_iregexp, to_re2, try_compile_iregexp

# (pattern, text, fullmatch expected, search expected)
MATCH_CASES: list[tuple[str, str, bool, bool]] = [
    ("a.c", "abc", True, True),
    ("a.c", "a\nc", False, False),
    ("a.c", "a\rc", False, False),
    ("a.c", "a\u00e9c", True, True),
    ("a.c", "a\U0001f600c", True, True),
    ("^a", "^a", True, True),
    ("^a", "a", False, False),
    ("a$", "a$", True, True),
    ("a$", "ba", False, False),
    ("[^a]", "b", True, True),
    ("[a^]", "^", True, True),
    ("[$]", "$", True, True),
    ("[.]", ".", True, True),
    ("[.]", "x", False, False),
    ("\\.", ".", True, True),
    ("\\^$", "^$", True, True),
    ("\\n", "\n", True, True),
    ("\\t+", "\t\t", True, True),
    ("\\p{Lu}+", "\u00c9T\u00c9", True, True),
    ("\\p{Lu}", "e", False, False),
    ("\\P{Lu}", "e", True, True),
    ("\\p{Nd}{3}", "123", True, True),
    ("[\\p{L}\\p{Nd}]+", "a1\u00e9", True, True),
    ("\\p{C}", "\x00", True, True),
    ("\\p{C}", "a", False, False),
    ("\\p{C}", "\U000e0080", True, True),  # unassigned: XSD's C includes Cn
    ("\\p{Cn}", "\U000e0080", True, True),
    ("\\p{Cn}", "\x00", False, False),
    ("\\P{C}", "a", True, True),
    ("\\P{Cn}", "\x00", True, True),
    ("[\\P{C}]", "a", True, True),
    ("[\\P{Cn}]", "\U000e0080", False, False),
    ("ab|cd", "cd", True, True),
    ("b", "abc", False, True),
    ("(ab){2,3}", "ababab", True, True),
    ("[0-9a-f]{8}-[0-9a-f]{12}", "d449f7a5-dca1c35538ec", True, True),
    ("a{10,}", "a" * 10, True, True),
    ("a{10,}", "a" * 9, False, False),
    ("[-a]+", "-a-", True, True),
    ("[a-]+", "-a-", True, True),
    ("[^-]", "-", False, False),
    ("[\\^\\]\\[\\-]+", "^][-", True, True),
    ("[\\n\\t]", "\t", True, True),
    ("[^\\n]", "\n", False, False),
    ("[a-c\\p{Nd}]+", "b7", True, True),
    ("()", "", True, True),
    ("(|a)b", "b", True, True),
    ("x{0}", "", True, True),
    ("", "anything", False, True),
    ("(a+)+", "a" * 10_000 + "b", False, True),
]

INVALID = [
    "(?=a)",
    "(?!a)",
    "(?<=a)b",
    "(a)\\1",
    "\\d",
    "\\w+",
    "\\s",
    "\\b",
    "(?i)a",
    "(?:a)",
    "a{,2}",
    "[[:alpha:]]",
    "\\p{IsBasicLatin}",
    "(",
    "[a",
    "a**",
    "a{2}{3}",
    "a{3,2}",
    "a{x}",
    "{2}",
    "*a",
    "a)",
    "[]",
    "[^]",
    "[a-b-c]",
    "[z-a]",
    "[\\p{L}-z]",
    "a]",
    "a}",
    "\\",
    "\\x41",
    "\\u0041",
    "\\p{Xx}",
    "\\p{Lz}",
    "\\p{L",
    "[a",
    "a\ud800",
]


class CompileTests(SynchronousTestCase):
    def test_match_and_search(self) -> None:
        """Each pattern fullmatches and searches texts as RFC 9485 reads it."""
        failures = []
        for pattern, text, full, found in MATCH_CASES:
            regex = compile_iregexp(pattern)
            if (regex.fullmatch(text), regex.search(text)) != (full, found):
                failures.append(f"{pattern!r} on {text!r}: {regex.fullmatch(text)}, {regex.search(text)}")
        if failures:
            self.fail("\n".join(failures))

    def test_runs_on_re2(self) -> None:
        """Every compiled pattern is an RE2 pattern, never a backtracking fallback."""
        for pattern, _, _, _ in MATCH_CASES:
            self.assertIs(type(compile_iregexp(pattern)._compiled), re2.Pattern, pattern)

    def test_invalid_refused(self) -> None:
        """Patterns outside RFC 9485's grammar (lookaround, Perl classes, bad counts...) are refused, naming it and where."""
        for pattern in INVALID:
            self.assertFalse(is_iregexp(pattern), pattern)
            with self.assertRaises(CriteriaError) as raised:
                compile_iregexp(pattern, pointer="/0")
            self.assertIn("I-Regexp (RFC 9485)", raised.exception.message, pattern)
            self.assertIn("at position", raised.exception.message, pattern)
            self.assertEqual(raised.exception.pointer, "/0")
            self.assertIsNone(try_compile_iregexp(pattern, 100))

    def test_category_inside_class_refused(self) -> None:
        """\\p{C} and \\p{Cn} inside a class, which RE2 cannot express, are refused with a rewrite to use."""
        for pattern in ["[a\\p{Cn}]", "[^\\p{C}]"]:
            with self.assertRaises(CriteriaError) as raised:
                compile_iregexp(pattern)
            self.assertTrue(raised.exception.message.startswith("\\p{C"), raised.exception.message)
            self.assertIn("not supported by RE2", raised.exception.message)
            self.assertIn("([...]|", raised.exception.message)

    def test_length_limit(self) -> None:
        """Patterns longer than the limit are refused before anything parses them."""
        compile_iregexp("a" * 10, max_length=10)
        with self.assertRaises(CriteriaError) as raised:
            compile_iregexp("a" * 11, max_length=10, pointer="/1")
        self.assertEqual(raised.exception.pointer, "/1")
        self.assertIn("the limit is 10", raised.exception.message)

    def test_length_limit_counts_what_was_written(self) -> None:
        """The limit applies to the pattern as written, not to its longer RE2 translation."""
        pattern = compile_iregexp("." * 40, max_length=40)
        self.assertTrue(pattern.fullmatch("é" * 40))
        self.assertRaises(CriteriaError, compile_iregexp, "." * 41, max_length=40)

    def test_not_a_string(self) -> None:
        """A pattern must be a string."""
        self.assertRaises(CriteriaError, compile_iregexp, 5)
        self.assertIsNone(try_compile_iregexp(None, 100))

    def test_unpaired_surrogates(self) -> None:
        """A pattern with an unpaired surrogate is refused; text with one is matched without raising."""
        self.assertIsNone(try_compile_iregexp("a\ud800", 100))
        self.assertIsNone(try_compile_iregexp("[\ud800]", 100))
        self.assertTrue(compile_iregexp("a.b").fullmatch("a\ud800b"))

    def test_translation(self) -> None:
        """The RE2 spelling rewrites only ., ^, $ and the C categories, outside classes."""
        self.assertEqual(to_re2("a.b"), "a[^\\n\\r]b")
        self.assertEqual(to_re2("^x$"), "\\^x\\$")
        self.assertEqual(to_re2("[.^$]"), "[.^$]")
        self.assertEqual(to_re2("\\.\\^"), "\\.\\^")
        self.assertEqual(to_re2("\\p{Lu}[\\p{N}]"), "\\p{Lu}[\\p{N}]")
        self.assertEqual(to_re2("(a|b){2,10}"), "(a|b){2,10}")

    def test_repetition_limit(self) -> None:
        """Counts over RE2's 1000 are valid I-Regexp but refused, saying why."""
        with self.assertRaises(CriteriaError) as raised:
            compile_iregexp("a{1001}")
        self.assertEqual(raised.exception.message, "repetition counts above 1000 are not supported by RE2: 'a{1001}'")

    def test_errors_quote_what_was_written(self) -> None:
        """Errors from RE2 quote the pattern as written, not its translation."""
        with self.assertRaises(CriteriaError) as raised:
            compile_iregexp(".{2000}")
        self.assertTrue(raised.exception.message.endswith(": '.{2000}'"), raised.exception.message)


_LITERAL_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=8)
_SPECIALS = set(".\\?*+{}()|[]^-")


def _escape(text: str) -> str:
    return "".join("\\" + c if c in _SPECIALS else c for c in text)


class PropertyTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(_LITERAL_TEXT, _LITERAL_TEXT)
    def test_escaped_literal(self, literal: str, text: str) -> None:
        """An escaped literal fullmatches exactly itself and is found exactly where it occurs."""
        regex = compile_iregexp(_escape(literal))
        self.assertEqual(regex.fullmatch(text), text == literal)
        self.assertEqual(regex.search(text), literal in text)

    @settings(max_examples=200, deadline=None)
    @given(_LITERAL_TEXT)
    def test_dot_star(self, text: str) -> None:
        """.* fullmatches any text without line breaks (and text with one never)."""
        regex = compile_iregexp(".*")
        self.assertTrue(regex.fullmatch(text))
        self.assertFalse(regex.fullmatch(text + "\n"))
        self.assertFalse(regex.fullmatch("\r" + text))
