"""
Tests for dccrelay.filters.regex: criteria patterns always run on RE2.
"""

from __future__ import annotations

import re2
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.filters.errors import CriteriaError
from dccrelay.filters.regex import MAX_REGEX_LENGTH, Regex, compile_regex

# Patterns pyre2 would hand to Python's re, and what we say about them.
_UNSUPPORTED = [
    ("(?=a)b", "lookahead is not supported by RE2"),
    ("a(?!b)", "lookahead is not supported by RE2"),
    ("(?<=a)b", "lookbehind is not supported by RE2"),
    ("(?<!a)b", "lookbehind is not supported by RE2"),
    ("(a)\\1", "backreferences are not supported by RE2"),
    ("(?P<x>a)\\k<x>", "backreferences are not supported by RE2"),
    ("(?>a+)b", "atomic groups are not supported by RE2"),
    ("(a)?(?(1)b|c)", "conditional groups are not supported by RE2"),
    ("(?<x>a)", "named groups are written (?P<name>...) in RE2"),
    ("a*+", "possessive quantifiers are not supported by RE2"),
    ("a{2}+", "possessive quantifiers are not supported by RE2"),
    ("a{1001}", "repetition counts above 1000 are not supported by RE2"),
    ("a{2,5000}", "repetition counts above 1000 are not supported by RE2"),
]


class CompileTests(SynchronousTestCase):
    def test_re2_pattern(self) -> None:
        """A supported pattern compiles to a Regex backed by an re2.Pattern, never a fallback."""
        regex = compile_regex("^cookout\\b")
        self.assertIsInstance(regex, Regex)
        self.assertIs(type(regex._compiled), re2.Pattern)
        self.assertTrue(regex.search("cookout list"))
        self.assertFalse(regex.search("cookouts"))

    def test_unsupported_constructs(self) -> None:
        """Constructs RE2 lacks are refused with a message naming the construct and quoting the pattern."""
        for pattern, message in _UNSUPPORTED:
            with self.assertRaises(CriteriaError, msg=pattern) as raised:
                compile_regex(pattern, pointer="/p")
            self.assertEqual(raised.exception.message, f"{message}: {pattern!r}")
            self.assertEqual(raised.exception.pointer, "/p")

    def test_escaped_constructs_allowed(self) -> None:
        """Escaped or bracketed look-alikes of unsupported constructs are ordinary RE2."""
        self.assertTrue(compile_regex("\\(\\?=").search("(?="))
        self.assertTrue(compile_regex("[(?=]+").search("?"))
        self.assertTrue(compile_regex("\\\\1").search("\\1"))
        self.assertTrue(compile_regex("a{2}b{1000}").search("aa" + "b" * 1000))
        self.assertTrue(compile_regex("(?P<x>a)").search("a"))

    def test_other_fallbacks_refused(self) -> None:
        """Whatever else would make pyre2 fall back to Python's re is refused, not run."""
        for pattern in ["\\0", "(?x) a", "((a{100}){100}){100}"]:
            with self.assertRaises(CriteriaError, msg=pattern):
                compile_regex(pattern)

    def test_global_fallback_setting_irrelevant(self) -> None:
        """Refusal does not depend on pyre2's process-wide fallback notification."""
        self.addCleanup(re2.set_fallback_notification, re2.FALLBACK_QUIETLY)
        for level in [re2.FALLBACK_EXCEPTION, re2.FALLBACK_QUIETLY]:
            re2.set_fallback_notification(level)
            for pattern in ["(?=a)", "\\0", "(a)\\1"]:
                self.assertRaises(CriteriaError, compile_regex, pattern)

    def test_invalid(self) -> None:
        """Syntax errors are refused with the parser's explanation."""
        for pattern in ["(", "[a", "a**", "\\u00e9", "x)"]:
            with self.assertRaises(CriteriaError, msg=pattern) as raised:
                compile_regex(pattern)
            self.assertIn("invalid regular expression", raised.exception.message)

    def test_not_a_string(self) -> None:
        """Only strings are patterns."""
        for pattern in [5, None, b"a", ["a"]]:
            self.assertRaises(CriteriaError, compile_regex, pattern)

    def test_length_limit(self) -> None:
        """Patterns longer than the limit (default MAX_REGEX_LENGTH characters) are refused."""
        compile_regex("a" * MAX_REGEX_LENGTH)
        with self.assertRaises(CriteriaError) as raised:
            compile_regex("a" * (MAX_REGEX_LENGTH + 1), pointer="/x")
        self.assertEqual(raised.exception.pointer, "/x")
        self.assertRaises(CriteriaError, compile_regex, "abc", max_length=2)

    def test_memory_limit(self) -> None:
        """A pattern whose RE2 program exceeds the memory budget is refused, even if compiled before with more."""
        compile_regex("(abc|def){50}")
        self.assertRaises(CriteriaError, compile_regex, "(abc|def){50}", max_memory=1000)

    def test_unpaired_surrogate_pattern(self) -> None:
        """A pattern with an unpaired surrogate (valid JSON, invalid UTF-8) is refused, not raised."""
        self.assertRaises(CriteriaError, compile_regex, "\ud800")


class FlagTests(SynchronousTestCase):
    def test_ignore_case(self) -> None:
        """ignore_case folds case, including beyond ASCII."""
        self.assertFalse(compile_regex("^abc$").search("ABC"))
        self.assertTrue(compile_regex("^abc$", ignore_case=True).search("ABC"))
        self.assertTrue(compile_regex("^\u00e9$", ignore_case=True).search("\u00c9"))

    def test_multiline(self) -> None:
        """multiline makes ^ and $ match at line breaks; without it $ is only the very end."""
        self.assertFalse(compile_regex("^b$").search("a\nb\nc"))
        self.assertTrue(compile_regex("^b$", multiline=True).search("a\nb\nc"))
        self.assertFalse(compile_regex("a$").search("a\n"))

    def test_dot_all(self) -> None:
        """dot_all lets . match a newline."""
        self.assertFalse(compile_regex("a.b").search("a\nb"))
        self.assertTrue(compile_regex("a.b", dot_all=True).search("a\nb"))

    def test_verbose(self) -> None:
        """verbose ignores whitespace and # comments outside character classes."""
        regex = compile_regex("^ a b [ ] c  # a comment (?=\n$", verbose=True)
        self.assertTrue(regex.search("ab c"))
        self.assertFalse(regex.search("abc"))

    def test_ascii_classes(self) -> None:
        """\\d, \\w and \\b are ASCII, as in JavaScript."""
        self.assertFalse(compile_regex("\\d").search("\u0663"))
        self.assertFalse(compile_regex("\\w").search("\u00e9"))
        self.assertTrue(compile_regex("caf\\b").search("caf\u00e9"))
        self.assertTrue(compile_regex("\\xe9").search("\u00e9"))


class JavaScriptTests(SynchronousTestCase):
    def test_unicode_escapes(self) -> None:
        """JavaScript's \\uXXXX escapes, surrogate pairs included, mean their characters."""
        regex = compile_regex("^caf\\u00e9 \\ud83d\\ude00$", javascript=True)
        self.assertTrue(regex.search("caf\u00e9 \U0001f600"))
        self.assertRaises(CriteriaError, compile_regex, "\\u00e9")

    def test_escaped_punctuation_stays_literal(self) -> None:
        """An escaped ASCII metacharacter is literal, inside a class or not."""
        regex = compile_regex("^a\\u002e[\\u005d\\u002d]$", javascript=True)
        self.assertTrue(regex.search("a.]"))
        self.assertTrue(regex.search("a.-"))
        self.assertFalse(regex.search("ax]"))
        self.assertFalse(regex.search("a.\\"))

    def test_control_and_nul(self) -> None:
        """\\cJ is a newline and \\0 a NUL, as in JavaScript."""
        self.assertTrue(compile_regex("a\\cJb\\0", javascript=True).search("a\nb\x00"))

    def test_escaped_backslash_not_translated(self) -> None:
        """An escaped backslash before "u0041" leaves the text alone."""
        regex = compile_regex("^\\\\u0041$", javascript=True)
        self.assertTrue(regex.search("\\u0041"))
        self.assertFalse(regex.search("\\A"))

    def test_errors_quote_the_original(self) -> None:
        """Refusals quote the pattern as written, before translation."""
        with self.assertRaises(CriteriaError) as raised:
            compile_regex("\\u0041(?=b)", javascript=True)
        self.assertEqual(raised.exception.message, "lookahead is not supported by RE2: '\\\\u0041(?=b)'")


class MatchTests(SynchronousTestCase):
    def test_match_and_fullmatch(self) -> None:
        """match anchors at the start; fullmatch at both ends; search anywhere."""
        regex = compile_regex("b+")
        self.assertTrue(regex.search("abb"))
        self.assertFalse(regex.match("abb"))
        self.assertTrue(regex.match("bba"))
        self.assertFalse(regex.fullmatch("bba"))
        self.assertTrue(regex.fullmatch("bbb"))

    def test_unpaired_surrogates_in_text(self) -> None:
        """Text with unpaired surrogates is matched (they read as U+FFFD), never raises."""
        regex = compile_regex("a.b")
        self.assertTrue(regex.search("a\ud800b"))
        self.assertTrue(regex.match("a\udfffb"))
        self.assertTrue(regex.fullmatch("a\ud83db"))

    def test_linear_time(self) -> None:
        """
        Classic catastrophic-backtracking patterns run on RE2's automaton and
        answer on long input (a backtracking engine would not return here for
        longer than the age of the universe; no wall-clock bound is asserted).
        """
        text = "a" * 200_000 + "!"
        for pattern in ["(a+)+$", "(a*)*b", "(a|aa)+$", "^(\\w+\\s?)*$"]:
            regex = compile_regex(pattern)
            self.assertIs(type(regex._compiled), re2.Pattern, pattern)
            self.assertFalse(regex.fullmatch(text))
            self.assertFalse(regex.search(text) and pattern.endswith("b"))
