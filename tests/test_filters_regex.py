"""
Tests for dccrelay.filters.regex: criteria patterns always run on RE2.
"""

from __future__ import annotations

import re2
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.filters import FilterLimits, compile_criteria
from dccrelay.filters.errors import CriteriaError
from dccrelay.filters.regex import MAX_REGEX_LENGTH, Regex, RegexBounds, compile_regex, program_size

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
        self.assertTrue(compile_regex("a{2}b{100}").search("aa" + "b" * 100))
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
        self.assertRaises(CriteriaError, compile_regex, "(abc|def){50}", budget=RegexBounds(memory=1000).budget())

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


class CostBoundTests(SynchronousTestCase):
    """
    Each pattern's RE2 program is bounded, alone and with the criteria's
    other patterns, so that no pattern within the bounds can stall the
    reactor (issue 17, item 6).
    """

    def test_hostile_counts_refused(self) -> None:
        """The 48-byte pattern that cost 330 ms a message is refused for its repetition count."""
        with self.assertRaises(CriteriaError) as raised:
            compile_regex(".{1,1000}x{1,1000}z", pointer="/d.content/$regex")
        self.assertIn("repetition count 1000 is above the limit of 100", raised.exception.message)
        self.assertEqual(raised.exception.pointer, "/d.content/$regex")

    def test_hostile_alternation_refused(self) -> None:
        """An alternation of counted repetitions, each within the count limit, is refused for its program size."""
        pattern = "|".join(f"x{{{i}}}z" for i in range(50, 100))
        with self.assertRaises(CriteriaError) as raised:
            compile_regex(pattern)
        self.assertIn("bytes of RE2 program memory", raised.exception.message)

    def test_repeat_limit_is_an_option(self) -> None:
        """The repetition limit comes from the bounds; RE2's own 1000 still applies above it."""
        generous = RegexBounds(max_repeat=1000, max_program=1 << 20, max_total_program=1 << 20)
        compile_regex("a{1000}", budget=generous.budget())
        self.assertRaises(CriteriaError, compile_regex, "a{5}", budget=RegexBounds(max_repeat=4).budget())
        with self.assertRaises(CriteriaError) as raised:
            compile_regex("a{1001}", budget=generous.budget())
        self.assertIn("not supported by RE2", raised.exception.message)

    def test_escaped_counts_are_text(self) -> None:
        """A count inside a class or after a backslash is text, not a repetition."""
        pattern = compile_regex("[{1,5000}]\\{1,5000\\}")
        self.assertTrue(pattern.search("5{1,5000}"))
        self.assertFalse(pattern.search("5" * 5000))

    def test_program_limit(self) -> None:
        """A pattern whose program is above max_program is refused; below, accepted."""
        size = program_size("abcdefgh" * 20, re2.ASCII, 1 << 20)
        compile_regex("abcdefgh" * 20, budget=RegexBounds(max_program=size).budget())
        with self.assertRaises(CriteriaError) as raised:
            compile_regex("abcdefgh" * 20, budget=RegexBounds(max_program=size - 200).budget())
        self.assertIn(f"more than {size - 200} bytes", raised.exception.message)

    def test_total_shared_by_the_criteria(self) -> None:
        """The patterns of one criteria share a total; each is charged its program size."""
        size = program_size("hello", re2.ASCII, 1 << 20)
        budget = RegexBounds(max_total_program=2 * size + 10).budget()
        compile_regex("hello", budget=budget)
        compile_regex("hello", budget=budget)
        self.assertEqual(budget.left, 10)
        with self.assertRaises(CriteriaError) as raised:
            compile_regex("hello", budget=budget, pointer="/2")
        self.assertIn("together need more than", raised.exception.message)
        self.assertEqual(raised.exception.pointer, "/2")

    def test_invalid_large_pattern_says_invalid(self) -> None:
        """A pattern that is invalid is called invalid, not too large."""
        with self.assertRaises(CriteriaError) as raised:
            compile_regex("(" * 10 + "a{50}" * 100)
        self.assertIn("invalid regular expression", raised.exception.message)

    def test_program_size_grows_with_pattern(self) -> None:
        """program_size measures RE2's own figure: more instructions, more bytes, to a 64-byte grain."""
        small = program_size("a", re2.ASCII, 1 << 20)
        large = program_size("a" * 100, re2.ASCII, 1 << 20)
        self.assertGreater(large - small, 99 * 8)


class BackendsShareTheBoundTests(SynchronousTestCase):
    """Every backend that takes regexes applies the same bounds (issue 17, item 6)."""

    limits = FilterLimits(max_criteria_regex_program=3000)

    def test_mongo_total(self) -> None:
        """Mongo's $regex operators share the criteria's total; the error points at the one over it."""
        compile_criteria("mongo", {"d.content": {"$regex": "hello"}}, self.limits)
        criteria = {"$or": [{"d.content": {"$regex": f"word{i}"}} for i in range(5)]}
        with self.assertRaises(CriteriaError) as raised:
            compile_criteria("mongo", criteria, self.limits)
        self.assertIn("together need more than 3000 bytes", raised.exception.message)
        self.assertTrue(raised.exception.pointer.startswith("/$or/"), raised.exception.pointer)

    def test_mongo_hostile(self) -> None:
        """The issue's criteria get a 400-worthy error naming the repetition count."""
        with self.assertRaises(CriteriaError) as raised:
            compile_criteria("mongo", {"d.content": {"$regex": ".{1,1000}x{1,1000}z"}})
        self.assertEqual(raised.exception.pointer, "/d.content/$regex")

    def test_jsonpath_literal_total(self) -> None:
        """JSONPath's literal patterns share the criteria's total, across queries."""
        queries = [f"$.d[?search(@, 'word{i}')]" for i in range(5)]
        with self.assertRaises(CriteriaError) as raised:
            compile_criteria("jsonpath", queries, self.limits)
        self.assertIn("together need more than 3000 bytes", raised.exception.message)

    def test_jsonpath_repeat(self) -> None:
        """A JSONPath pattern with a count above the limit is refused."""
        with self.assertRaises(CriteriaError) as raised:
            compile_criteria("jsonpath", "$.d[?search(@, 'x{1,1000}z')]")
        self.assertIn("repetition count 1000", raised.exception.message)

    def test_jsonpath_pattern_from_payload(self) -> None:
        """A pattern read from the payload is bounded too: one beyond the bounds matches nothing."""
        matches = compile_criteria("jsonpath", "$[?search(@.content, @.pattern)]")
        self.assertTrue(matches({"d": {"content": "xxz", "pattern": "x{1,2}z"}}))
        self.assertFalse(matches({"d": {"content": "x" * 50 + "z", "pattern": ".{1,1000}x{1,1000}z"}}))
        alternation = "|".join(f"x{{{i}}}z" for i in range(50, 100))
        self.assertFalse(matches({"d": {"content": "x" * 60 + "z", "pattern": alternation}}))
