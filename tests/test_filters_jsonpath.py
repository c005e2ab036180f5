"""
Tests for the jsonpath filter backend: RFC 9535 queries, match() and search()
on RE2, lists of queries, and the bounds that keep evaluation cheap.

Selection tables give (query, document, the values selected in order); unless
a table says otherwise they are RFC 9535's own examples.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.filters import CriteriaError, FilterLimits, compile_criteria
from dccrelay.filters.jsonpath import JSONPathBackend
from dccrelay.filters.mongo import MongoBackend
from dccrelay.relay.settings import SettingsError, parse_settings
from tests.test_filters_mongo import BOT_USER_ID, SAMPLE_CRITERIA, _message

_BACKEND = JSONPathBackend()


def _matches(criteria: Any, payload: Any) -> bool:
    return _BACKEND.compile(criteria)(payload)


# RFC 9535, section 1.5, figure 1.
STORE: dict[str, Any] = {
    "store": {
        "book": [
            {"category": "reference", "author": "Nigel Rees", "title": "Sayings of the Century", "price": 8.95},
            {"category": "fiction", "author": "Evelyn Waugh", "title": "Sword of Honour", "price": 12.99},
            {
                "category": "fiction",
                "author": "Herman Melville",
                "title": "Moby Dick",
                "isbn": "0-553-21311-3",
                "price": 8.99,
            },
            {
                "category": "fiction",
                "author": "J. R. R. Tolkien",
                "title": "The Lord of the Rings",
                "isbn": "0-395-19395-8",
                "price": 22.99,
            },
        ],
        "bicycle": {"color": "red", "price": 399},
    }
}
_BOOKS = STORE["store"]["book"]

# RFC 9535, section 1.5, table 2 (without $..*, whose order is partly free).
OVERVIEW_CASES: list[tuple[str, Any, list[Any]]] = [
    ("$.store.book[*].author", STORE, [b["author"] for b in _BOOKS]),
    ("$..author", STORE, [b["author"] for b in _BOOKS]),
    ("$.store.*", STORE, [_BOOKS, STORE["store"]["bicycle"]]),
    ("$.store..price", STORE, [8.95, 12.99, 8.99, 22.99, 399]),
    ("$..book[2]", STORE, [_BOOKS[2]]),
    ("$..book[2].author", STORE, ["Herman Melville"]),
    ("$..book[2].publisher", STORE, []),
    ("$..book[-1]", STORE, [_BOOKS[3]]),
    ("$..book[0,1]", STORE, _BOOKS[:2]),
    ("$..book[:2]", STORE, _BOOKS[:2]),
    ("$..book[?@.isbn]", STORE, _BOOKS[2:]),
    ("$..book[?@.price<10]", STORE, [_BOOKS[0], _BOOKS[2]]),
]

# RFC 9535, section 2.3.5.3, the filter selector's examples.
FILTER_DOC: dict[str, Any] = {
    "a": [3, 5, 1, 2, 4, 6, {"b": "j"}, {"b": "k"}, {"b": {}}, {"b": "kilo"}],
    "o": {"p": 1, "q": 2, "r": 3, "s": 5, "t": {"u": 6}},
    "e": "f",
}
_A = FILTER_DOC["a"]

FILTER_CASES: list[tuple[str, Any, list[Any]]] = [
    ("$.a[?@.b == 'kilo']", FILTER_DOC, [{"b": "kilo"}]),
    ("$.a[?(@.b == 'kilo')]", FILTER_DOC, [{"b": "kilo"}]),
    ("$.a[?@>3.5]", FILTER_DOC, [5, 4, 6]),
    ("$.a[?@.b]", FILTER_DOC, _A[6:]),
    ("$[?@.*]", FILTER_DOC, [_A, FILTER_DOC["o"]]),
    ("$[?@[?@.b]]", FILTER_DOC, [_A]),
    ("$.o[?@<3, ?@<3]", FILTER_DOC, [1, 2, 1, 2]),
    ('$.a[?@<2 || @.b == "k"]', FILTER_DOC, [1, {"b": "k"}]),
    ('$.a[?match(@.b, "[jk]")]', FILTER_DOC, [{"b": "j"}, {"b": "k"}]),
    ('$.a[?search(@.b, "[jk]")]', FILTER_DOC, [{"b": "j"}, {"b": "k"}, {"b": "kilo"}]),
    ("$.o[?@>1 && @<4]", FILTER_DOC, [2, 3]),
    ("$.o[?@.u || @.x]", FILTER_DOC, [{"u": 6}]),
    ("$.a[?@.b == $.x]", FILTER_DOC, [3, 5, 1, 2, 4, 6]),
    ("$.a[?@ == @]", FILTER_DOC, _A),
]

# RFC 9535, sections 2.4.4 to 2.4.8, the function extensions, on documents
# of our own (the RFC gives these queries without one).
FUNCTION_DOC: dict[str, Any] = {
    "x": [
        {"authors": ["a", "b"], "date": "1974-05-10", "author": "Bob", "color": "red"},
        {"authors": "abcd", "date": "1974-06-01", "author": "Rob"},
        {"authors": {"k": 1}, "date": "1974-05-1x", "author": "Alice"},
    ]
}
_X = FUNCTION_DOC["x"]

FUNCTION_CASES: list[tuple[str, Any, list[Any]]] = [
    ("$.x[?length(@.authors) >= 2]", FUNCTION_DOC, _X[:2]),
    ("$.x[?length(@.authors) == 1]", FUNCTION_DOC, [_X[2]]),
    ("$.x[?count(@.*) == 3]", FUNCTION_DOC, [_X[1], _X[2]]),
    ('$.x[?match(@.date, "1974-05-..")]', FUNCTION_DOC, [_X[0], _X[2]]),
    ('$.x[?search(@.author, "[BR]ob")]', FUNCTION_DOC, _X[:2]),
    ('$.x[?value(@.color) == "red"]', FUNCTION_DOC, [_X[0]]),
]

# RFC 9535, section 2.4.9: not well-typed, so not queries at all.
NOT_WELL_TYPED = [
    "$[?length(@.*) < 3]",
    "$[?count(1) == 1]",
    "$[?match(@.timezone, 'Europe/.*') == true]",
    "$[?value(@.*)]",
    "$[?@.a == @.*]",
]


class _SelectionTableMixin(SynchronousTestCase):
    def assertSelections(self, cases: list[tuple[str, Any, list[Any]]]) -> None:
        """Check every case's selection and that criteria match exactly when it is not empty."""
        failures = []
        for query, document, expected in cases:
            selected = _BACKEND.select(query, document)
            if selected != expected:
                failures.append(f"{query}: {selected!r}, not {expected!r}")
            if _matches(query, document) is not bool(expected):
                failures.append(f"{query}: matches is not {bool(expected)}")
        if failures:
            self.fail("\n".join(failures))


class RFC9535Tests(_SelectionTableMixin):
    def test_overview(self) -> None:
        """The RFC's overview examples select what it says."""
        self.assertSelections(OVERVIEW_CASES)

    def test_filters(self) -> None:
        """The RFC's filter selector examples select what it says, match() and search() on RE2."""
        self.assertSelections(FILTER_CASES)

    def test_functions(self) -> None:
        """length(), count(), match(), search() and value() behave as the RFC defines them."""
        self.assertSelections(FUNCTION_CASES)

    def test_not_well_typed(self) -> None:
        """Queries the RFC calls not well-typed are refused."""
        for query in NOT_WELL_TYPED:
            with self.assertRaises(CriteriaError) as raised:
                _BACKEND.compile(query)
            self.assertIn("invalid JSONPath query", raised.exception.message, query)

    def test_booleans_are_not_numbers(self) -> None:
        """true is not 1 and false is not 0, unlike in Python."""
        document = {"a": [True, 1, False, 0]}
        self.assertEqual(_BACKEND.select("$.a[?@ == 1]", document), [1])
        self.assertEqual(_BACKEND.select("$.a[?@ == true]", document), [True])
        self.assertEqual(_BACKEND.select("$.a[?@ < 1]", document), [0])

    def test_strict_syntax(self) -> None:
        """Syntax other JSONPath dialects accept is refused: only RFC 9535 queries are criteria."""
        for query in [
            "store.book",
            " $.a",
            "$.a | $.b",
            "$..book[?(@.price < 10)].title.length()",
            "$[?(@.a =~ /x/)]",
            "$.a[(@.length-1)]",
            "$[?startswith(@, 'a')]",
            "$['a'",
            "$.a.",
            "",
        ]:
            with self.assertRaises(CriteriaError, msg=query) as raised:
                _BACKEND.compile(query)
            self.assertTrue(raised.exception.message.startswith("invalid JSONPath query"), query)
            self.assertEqual(raised.exception.pointer, "")


class CriteriaTests(SynchronousTestCase):
    def test_match_means_a_node_selected(self) -> None:
        """A payload matches when the query selects at least one node, whatever its value (null and false too)."""
        self.assertTrue(_matches("$.d", {"d": None}))
        self.assertTrue(_matches("$.d", {"d": False}))
        self.assertTrue(_matches("$.d.list", {"d": {"list": []}}))
        self.assertFalse(_matches("$.d", {"t": "READY"}))
        self.assertFalse(_matches("$[?@ == 'READY']", {"t": "MESSAGE_CREATE"}))
        self.assertTrue(_matches("$", {}))

    def test_list_means_all(self) -> None:
        """A list of queries matches when every one of them selects something."""
        criteria = ["$[?@ == 'MESSAGE_CREATE']", "$.d.content"]
        self.assertTrue(_matches(criteria, {"t": "MESSAGE_CREATE", "d": {"content": "x"}}))
        self.assertFalse(_matches(criteria, {"t": "MESSAGE_CREATE", "d": {}}))
        self.assertFalse(_matches(criteria, {"t": "MESSAGE_UPDATE", "d": {"content": "x"}}))
        self.assertTrue(_matches(["$.d"], {"d": 1}))

    def test_any_json_payload(self) -> None:
        """Payloads of every JSON type give a bool and never raise."""
        matches = _BACKEND.compile(["$..x", "$[?@.a || length(@) > 1]"])
        for payload in [None, 1, 1.5, "xy", True, [], {}, [{"x": 1, "a": 1}], {"x": [1], "y": {"a": 1}}]:
            self.assertIsInstance(matches(payload), bool)

    def test_compiled_once(self) -> None:
        """The predicate does not read the criteria again: changing the list afterwards changes nothing."""
        criteria = ["$.a"]
        matches = _BACKEND.compile(criteria)
        criteria[0] = "$.b"
        self.assertTrue(matches({"a": 1}))
        self.assertFalse(matches({"b": 1}))

    def test_pointers(self) -> None:
        """Errors point at the criteria as a whole for a string, at the offending query in a list."""
        cases: list[tuple[Any, str, str]] = [
            ("$[", "", "invalid JSONPath query"),
            (["$.a", "$["], "/1", "invalid JSONPath query"),
            (["$.a", 5], "/1", "must be a string"),
            ([], "", "non-empty list"),
            ({"t": "READY"}, "", "query string or a non-empty list"),
            (None, "", "query string"),
            ([["$.a"]], "/0", "must be a string"),
            (["$.a", "$[?match(@.b, '(?=x)')]"], "/1", "not an I-Regexp (RFC 9485)"),
            ("$[?search(@.b, 'a\\\\1')]", "", "not an I-Regexp"),
            ("$[?match(@.b, 1)]", "", "takes a string pattern"),
            ("$[?nosuch(@.b)]", "", "function 'nosuch' is not defined"),
            ("$.a[?@.b == 'x'", "", "invalid JSONPath query"),
        ]
        failures = []
        for criteria, pointer, message in cases:
            try:
                _BACKEND.compile(criteria)
            except CriteriaError as e:
                if e.pointer != pointer or message not in e.message:
                    failures.append(f"{criteria!r}: {e.message!r} at {e.pointer!r}")
            else:
                failures.append(f"{criteria!r}: accepted")
        if failures:
            self.fail("\n".join(failures))


class RegistrationTests(SynchronousTestCase):
    """What a bot author sees from the registration API's validation."""

    def body(self, criteria: Any) -> dict[str, Any]:
        return {
            "token": "abc.def",
            "dst": "wss://bot.example/dcc",
            "clientSecret": "admin:secret",
            "filter": "jsonpath",
            "criteria": criteria,
        }

    def test_accepted(self) -> None:
        """A registration with jsonpath criteria is accepted and keeps them."""
        settings = parse_settings(self.body(SAMPLE_JSONPATH), compile_filter=compile_criteria, allow_private_dst=False)
        self.assertEqual((settings.filter, settings.criteria), ("jsonpath", SAMPLE_JSONPATH))

    def test_refused_with_pointer(self) -> None:
        """A bad query in a list is refused with a pointer to it under /criteria."""
        with self.assertRaises(SettingsError) as raised:
            parse_settings(
                self.body(["$.d", "$[?match(@.a, '(?=x)')]"]), compile_filter=compile_criteria, allow_private_dst=False
            )
        self.assertEqual(raised.exception.pointer, "/criteria/1")
        self.assertTrue(raised.exception.message.startswith("criteria: not an I-Regexp (RFC 9485)"))


class RegexFunctionTests(SynchronousTestCase):
    """match() and search() run I-Regexp on RE2, never Python's backtracking engines."""

    def test_match_is_anchored(self) -> None:
        """match() must cover the whole string; search() may find the pattern anywhere."""
        self.assertTrue(_matches("$[?match(@, 'cook.*')]", {"c": "cookout"}))
        self.assertFalse(_matches("$[?match(@, 'out')]", {"c": "cookout"}))
        self.assertTrue(_matches("$[?search(@, 'out')]", {"c": "cookout"}))

    def test_dot_and_anchors(self) -> None:
        """. stops at line breaks and ^ and $ are plain characters, as RFC 9485 says."""
        self.assertFalse(_matches("$[?match(@, 'a.b')]", {"c": "a\nb"}))
        self.assertTrue(_matches("$[?search(@, '^1')]", {"c": "x^1"}))
        self.assertFalse(_matches("$[?search(@, '^1')]", {"c": "1"}))

    def test_non_strings(self) -> None:
        """match() and search() of a value that is not a string, or is absent, are false."""
        for value in [1, None, True, [], {}, ["a"]]:
            self.assertFalse(_matches("$[?search(@.v, 'a')]", {"x": {"v": value}}), value)
        self.assertFalse(_matches("$[?search(@.v, 'a')]", {"x": {}}))

    def test_pattern_from_payload(self) -> None:
        """A pattern read from the payload is compiled when met; when it is not a usable I-Regexp the call is false."""
        query = "$[?match(@.text, @.pattern)]"
        self.assertTrue(_matches(query, {"x": {"text": "abc", "pattern": "a.c"}}))
        self.assertFalse(_matches(query, {"x": {"text": "abc", "pattern": "b"}}))
        for pattern in ["(?=a)abc", "(a)\\1", "a" * 2000, "a{1001}", 5, None]:
            with capturedLogs() as events:
                self.assertFalse(_matches(query, {"x": {"text": "a" * 2000, "pattern": pattern}}))
            self.assertEqual(list(events), [], pattern)

    def test_catastrophic_patterns_linear(self) -> None:
        """
        Patterns that make backtracking engines exponential answer on long
        text: they run on RE2 (no wall-clock bound is asserted; Python's re
        or the regex module would not return).
        """
        text = "a" * 100_000 + "!"
        for pattern in ["(a+)+", "(a|a)+", "(a|aa)+", "(.*a){20}", "(a?){30}a{30}"]:
            matches = _BACKEND.compile(f"$[?match(@.content, '{pattern}')]")
            self.assertFalse(matches({"d": {"content": text}}), pattern)
            self.assertTrue(matches({"d": {"content": "a" * 50}}), pattern)
            dynamic = _BACKEND.compile("$[?search(@.content, @.pattern)]")
            self.assertFalse(dynamic({"d": {"content": text, "pattern": pattern + "!!"}}), pattern)

    def test_library_regex_functions_replaced(self) -> None:
        """The backend's match() and search() are ours, not the library's (which use the `regex` module)."""
        from jsonpath_rfc9535.function_extensions import Match, Search

        from dccrelay.filters.jsonpath import _environment

        functions = _environment(_BACKEND.limits).function_extensions
        self.assertNotIsInstance(functions["match"], Match)
        self.assertNotIsInstance(functions["search"], Search)


class HostileQueryTests(SynchronousTestCase):
    """Queries written to exhaust the relay are refused before they run."""

    def assertRefused(self, criteria: Any, message: str, limits: FilterLimits | None = None) -> None:
        with self.assertRaises(CriteriaError) as raised:
            _BACKEND.compile(criteria, limits)
        self.assertIn(message, raised.exception.message)

    def test_long_query(self) -> None:
        """A query over the length limit is refused; the limit is the operator's."""
        query = "$" + ".a" * 1024
        self.assertRefused(query, "the limit is 2048")
        _BACKEND.compile(query, FilterLimits(max_query_length=4096, max_operators=2000))

    def test_deep_brackets(self) -> None:
        """Brackets and parentheses nested past the depth limit are refused before the recursive parser sees them."""
        self.assertRefused("$" + "[?@" * 500 + "]" * 500, "nested more than 32 levels")
        self.assertRefused("$[?" + "(" * 1000 + "@" + ")" * 1000 + "]", "nested more than 32 levels")
        self.assertRefused("$[?" + "!" * 2000 + "@]", "invalid JSONPath query")

    def test_deep_filters(self) -> None:
        """Filters, negations and calls nested past the depth limit are refused."""
        query = "$" + "[?@" * 12 + "]" * 12
        _BACKEND.compile(query)
        self.assertRefused(query, "nested more than 8 levels", FilterLimits(max_depth=8))

    def test_long_chains_are_shallow(self) -> None:
        """a || b || c... is one level deep however long: only the operator limit bounds it."""
        query = "$[?" + " || ".join(f"@.k{i} == {i}" for i in range(60)) + "]"
        _BACKEND.compile(query)
        self.assertRefused(query, "more than 100 JSONPath operators", FilterLimits(max_operators=100))

    def test_fan_out(self) -> None:
        """Segments with several selectors multiply the branches counted, so $[*,*][*,*]... is refused."""
        _BACKEND.compile("$" + "[*,*]" * 6)
        self.assertRefused("$" + "[*,*]" * 8, "more than 256 JSONPath operators")
        self.assertRefused("$[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0][?@[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]]", "operators")

    def test_operators_shared_by_the_list(self) -> None:
        """The operator limit applies to the criteria, not to each query of a list."""
        self.assertRefused(["$.a.b.c"] * 100, "more than 256 JSONPath operators")

    def test_descendants(self) -> None:
        """One descendant segment per query, and none inside filters, so cost stays linear in the payload."""
        _BACKEND.compile("$..[?@.id == '1']")
        self.assertRefused("$..a..b", "one descendant segment")
        self.assertRefused("$..[?@..x]", "cannot be used inside a filter")
        self.assertRefused("$[?value(@..color) == 'red']", "cannot be used inside a filter")
        self.assertRefused("$[?$..x]", "cannot be used inside a filter")

    def test_absolute_queries_in_filters(self) -> None:
        """Inside a filter, a query from the root must be singular: it runs once per candidate."""
        _BACKEND.compile("$.d[?$.t == 'MESSAGE_CREATE' && $['d'].a[0]]")
        self.assertRefused("$..[?$.*]", "must be a singular query")
        self.assertRefused("$..[?$.a[?@.b]]", "must be a singular query")

    def test_regex_limit(self) -> None:
        """Literal patterns longer than the regex limit are refused."""
        query = "$[?search(@, '" + "a" * 40 + "')]"
        _BACKEND.compile(query)
        self.assertRefused(query, "the limit is 30", FilterLimits(max_regex_length=30))

    def test_size_limit(self) -> None:
        """Criteria over the size limit are refused, one long query or many."""
        self.assertRefused(["$.a"] * 5000, "limit of 16384 bytes")
        self.assertRefused("$.a", "limit of 2 bytes", FilterLimits(max_criteria_bytes=2))

    def test_limits_per_backend(self) -> None:
        """A backend built with limits enforces them when compile is given none."""
        strict = JSONPathBackend(FilterLimits(max_query_length=3))
        self.assertRaises(CriteriaError, strict.compile, "$.ab")
        strict.compile("$.a")

    def test_deep_payload(self) -> None:
        """A descendant segment on a payload nested deeper than the library follows does not match, and does not raise."""
        deep: Any = {"x": 1}
        for _ in range(500):
            deep = {"a": deep}
        with capturedLogs() as events:
            self.assertFalse(_matches("$..x", deep))
        self.assertEqual(list(events), [])
        self.assertTrue(_matches("$.a.a.a", deep))

    def test_wide_payload(self) -> None:
        """A large payload is walked by $.. and filters without trouble."""
        payload = {"d": {"items": [{"id": str(i), "v": [i, {"w": i}]} for i in range(20_000)]}}
        self.assertTrue(_matches("$..[?@.id == '19999']", payload))
        self.assertFalse(_matches("$..[?@.id == 'nope' && search(@.v, 'x')]", payload))


# The tutorial's cookout bot (SEED.md, step 8), in JSONPath: messages being
# created, not by bots, that are DMs, mention the bot or start with the word
# "cookout" (the mongo version's ^cookout\b, in I-Regexp).
SAMPLE_JSONPATH = [
    "$[?$.t == 'MESSAGE_CREATE' && @.author && @.author.bot != true]",
    "$[?@.author && (!@.guild_id"
    f" || @.mentions[?@.id == '{BOT_USER_ID}']"
    " || match(@.content, 'cookout([^0-9A-Za-z_](.|\\n|\\r)*)?'))]",
]


class SampleBotTests(SynchronousTestCase):
    """The sample bot's criteria in JSONPath deliver what its mongo criteria do."""

    def setUp(self) -> None:
        self.jsonpath = _BACKEND.compile(SAMPLE_JSONPATH)
        self.mongo = MongoBackend().compile(SAMPLE_CRITERIA)

    def test_tutorial_cases(self) -> None:
        """DMs, mentions and the prefix are delivered; bots, chatter and other events are not."""
        delivered = [
            _message("hello", guild=False),
            _message("hi", mentions=("333333333333333333", BOT_USER_ID)),
            _message("cookout"),
            _message("cookout bring buns"),
            _message("cookout\nbring buns"),
            _message("cookout!"),
        ]
        dropped = [
            _message("hi", mentions=("333333333333333333",)),
            _message("cookouts are fun"),
            _message("Cookout bring buns"),
            _message("let's cookout"),
            _message("what's for lunch?"),
            _message("cookout", bot=True),
            _message("hello", guild=False, bot=True),
            _message("cookout", event="MESSAGE_UPDATE"),
            {"op": 0, "s": 1, "t": "READY", "d": {"v": 10, "session_id": "x", "guilds": []}},
            {"op": 11, "d": None},
        ]
        for payload in delivered:
            self.assertTrue(self.jsonpath(payload), payload["d"])
            self.assertTrue(self.mongo(payload), payload["d"])
        for payload in dropped:
            self.assertFalse(self.jsonpath(payload), payload["d"])
            self.assertFalse(self.mongo(payload), payload["d"])

    @settings(max_examples=300, deadline=None)
    @given(
        st.text(alphabet="cokut \n!_Ab1", max_size=12),
        st.booleans(),
        st.lists(st.sampled_from([BOT_USER_ID, "333333333333333333"]), max_size=2),
        st.booleans(),
        st.sampled_from(["MESSAGE_CREATE", "MESSAGE_UPDATE", "TYPING_START"]),
    )
    def test_agrees_with_mongo(self, content: str, guild: bool, mentions: list[str], bot: bool, event: str) -> None:
        """On any message, the JSONPath and mongo versions of the criteria agree."""
        payload = _message(content, guild=guild, mentions=tuple(mentions), bot=bot, event=event)
        self.assertEqual(self.jsonpath(payload), self.mongo(payload))


_KEYS = st.sampled_from(["a", "b", "t", "0"])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["", "a", "ab", "ba"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=10,
)
_QUERIES = st.sampled_from(
    [
        "$.a",
        "$..a",
        "$[*]",
        "$.a[0]",
        "$.a[-1:]",
        "$[?@.a]",
        "$[?@ == 'a']",
        "$..[?@ > 1]",
        "$[?length(@) > 1]",
        "$[?count(@.*) == 0]",
        "$..[?match(@, 'a.?')]",
        "$..[?search(@, 'b')]",
        "$[?@.a == $.b]",
        "$[?!@.t && @.b != null]",
    ]
)


class PropertyTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(st.lists(_QUERIES, min_size=1, max_size=3), st.lists(_JSON, min_size=1, max_size=4))
    def test_total_and_stateless(self, criteria: list[str], payloads: list[Any]) -> None:
        """Compiled criteria give a bool for any JSON, never raise or log, and answer each payload the same whatever came before."""
        matches = _BACKEND.compile(criteria)
        with capturedLogs() as events:
            first = [matches(p) for p in payloads]
            again = [matches(p) for p in reversed(payloads)]
        self.assertTrue(all(type(r) is bool for r in first))
        self.assertEqual(again, first[::-1])
        self.assertEqual(list(events), [])

    @settings(max_examples=300, deadline=None)
    @given(st.lists(_QUERIES, min_size=1, max_size=3), _JSON)
    def test_list_is_conjunction(self, criteria: list[str], payload: Any) -> None:
        """A list of queries matches exactly when each query alone does."""
        expected = all(_matches(query, payload) for query in criteria)
        self.assertEqual(_matches(criteria, payload), expected)

    @settings(max_examples=300, deadline=None)
    @given(_QUERIES, _JSON)
    def test_matches_is_selection(self, query: str, payload: Any) -> None:
        """A query matches exactly when it selects at least one node."""
        self.assertEqual(_matches(query, payload), bool(_BACKEND.select(query, payload)))

    @settings(max_examples=200, deadline=None)
    @given(_QUERIES, _JSON)
    def test_payload_untouched(self, query: str, payload: Any) -> None:
        """Evaluating never changes the payload."""
        before = copy.deepcopy(payload)
        _matches(query, payload)
        self.assertEqual(payload, before)
