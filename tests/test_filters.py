"""
Tests for dccrelay.filters' public entry points: backend discovery,
third-party plugins, errors and defaults.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.logger import capturedLogs
from twisted.plugin import IPlugin, pluginPackagePaths
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from dccrelay import plugins
from dccrelay.filters import (
    DEFAULT_BACKEND,
    DEFAULT_CRITERIA,
    DEFAULT_LIMITS,
    CriteriaError,
    FilterLimits,
    IFilterBackend,
    ILimitedFilterBackend,
    UnknownBackendError,
    compile_criteria,
    installed_backends,
    load_backend,
    refresh_backends,
)
from dccrelay.filters.jsonpath import JSONPathBackend
from dccrelay.filters.limits import (
    MAX_CRITERIA_BYTES,
    MAX_DEPTH,
    MAX_IN_LENGTH,
    MAX_OPERATORS,
    MAX_QUERY_LENGTH,
    MAX_REGEX_LENGTH,
)
from dccrelay.filters.mongo import MongoBackend

_THROWAWAY_PLUGIN = '''
from twisted.plugin import IPlugin
from zope.interface import implementer

from dccrelay.filters import CriteriaError, IFilterBackend, ILimitedFilterBackend


@implementer(IPlugin, IFilterBackend)
class Throwaway:
    """Matches payloads whose "t" is the criteria string."""

    name = "throwaway"

    def compile(self, criteria):
        if not isinstance(criteria, str):
            raise CriteriaError("throwaway criteria are a string", "")
        return lambda payload: isinstance(payload, dict) and payload.get("t") == criteria


@implementer(IPlugin, IFilterBackend)
class Impostor:
    """Claims a built-in backend's name."""

    name = "mongo"

    def compile(self, criteria):
        return lambda payload: True


@implementer(IPlugin, IFilterBackend)
class Broken:
    """Claims the interface but has no compile method."""

    name = "broken"


@implementer(IPlugin, ILimitedFilterBackend)
class Unlimited:
    """Claims to take limits but its compile does not accept them."""

    name = "unlimited"

    def compile(self, criteria):
        return lambda payload: True


throwaway = Throwaway()
impostor = Impostor()
broken = Broken()
unlimited = Unlimited()
'''


class LoadBackendTests(SynchronousTestCase):
    def setUp(self) -> None:
        refresh_backends()
        self.addCleanup(refresh_backends)

    def test_mongo_is_installed(self) -> None:
        """The built-in mongo backend is discovered and provides IFilterBackend fully."""
        backend = load_backend("mongo")
        self.assertTrue(verifyObject(IFilterBackend, backend))
        self.assertTrue(IPlugin.providedBy(backend))
        self.assertEqual(backend.name, "mongo")
        self.assertIsInstance(backend, MongoBackend)

    def test_jsonpath_is_installed(self) -> None:
        """The built-in jsonpath backend is discovered and provides ILimitedFilterBackend fully."""
        backend = load_backend("jsonpath")
        self.assertTrue(verifyObject(ILimitedFilterBackend, backend))
        self.assertTrue(IPlugin.providedBy(backend))
        self.assertIsInstance(backend, JSONPathBackend)
        self.assertTrue(compile_criteria("jsonpath", "$.d")({"d": 1}))

    def test_default_backend_is_installed(self) -> None:
        """DEFAULT_BACKEND names an installed backend, and it accepts DEFAULT_CRITERIA."""
        self.assertEqual(DEFAULT_BACKEND, "mongo")
        self.assertIn(DEFAULT_BACKEND, installed_backends())
        matches = compile_criteria(DEFAULT_BACKEND, DEFAULT_CRITERIA)
        self.assertTrue(matches({"t": "MESSAGE_CREATE", "d": {"author": {"id": "1"}}}))

    def test_default_criteria(self) -> None:
        """DEFAULT_CRITERIA is the prototype's default: new messages not written by bots."""
        self.assertEqual(
            DEFAULT_CRITERIA, {"t": "MESSAGE_CREATE", "$not": {"d.author.bot": True}}
        )
        matches = compile_criteria("mongo", DEFAULT_CRITERIA)
        self.assertFalse(
            matches({"t": "MESSAGE_CREATE", "d": {"author": {"id": "1", "bot": True}}})
        )
        self.assertFalse(matches({"t": "MESSAGE_UPDATE", "d": {"author": {"id": "1"}}}))

    def test_unknown_backend(self) -> None:
        """An unknown name raises UnknownBackendError naming it and every installed backend."""
        with self.assertRaises(UnknownBackendError) as raised:
            load_backend("nosuch")
        error = raised.exception
        self.assertIsInstance(error, LookupError)
        self.assertEqual(error.name, "nosuch")
        self.assertEqual(error.installed, sorted(installed_backends()))
        self.assertIn("mongo", error.installed)
        self.assertEqual(
            str(error),
            "unknown filter backend 'nosuch'; installed: " + ", ".join(error.installed),
        )

    def test_compile_criteria_unknown_backend(self) -> None:
        """compile_criteria raises UnknownBackendError for an unknown backend name."""
        self.assertRaises(UnknownBackendError, compile_criteria, "nosuch", {})

    def test_compile_criteria_rejects(self) -> None:
        """compile_criteria passes on the backend's CriteriaError."""
        with self.assertRaises(CriteriaError) as raised:
            compile_criteria("mongo", {"$where": "true"})
        self.assertEqual(raised.exception.pointer, "/$where")

    def test_discovery_is_cached(self) -> None:
        """Discovery runs once; refresh_backends makes the next lookup discover again."""
        first = installed_backends()
        self.assertIs(installed_backends(), first)
        refresh_backends()
        self.assertIsNot(installed_backends(), first)

    def test_installed_backends_read_only(self) -> None:
        """Callers cannot change the cached discovery result."""
        with self.assertRaises(TypeError):
            installed_backends()["x"] = load_backend("mongo")  # type: ignore[index]


class ThirdPartyPluginTests(SynchronousTestCase):
    """A backend shipped by another distribution, in its own dccrelay/plugins/."""

    def setUp(self) -> None:
        root = Path(self.mktemp()).absolute()
        directory = root / "dccrelay" / "plugins"
        directory.mkdir(parents=True)
        # No __init__.py: pluginPackagePaths only adds such directories.
        (directory / "dcc_test_throwaway.py").write_text(textwrap.dedent(_THROWAWAY_PLUGIN))
        self.directory = directory
        self.addCleanup(shutil.rmtree, root)
        self.patch(sys, "path", [str(root)] + sys.path)
        # What importing dccrelay.plugins does, again now that root is on sys.path.
        self.original_plugin_path = list(plugins.__path__)
        self.patch(
            plugins, "__path__", self.original_plugin_path + pluginPackagePaths(plugins.__name__)
        )
        self.addCleanup(sys.modules.pop, "dccrelay.plugins.dcc_test_throwaway", None)
        self.addCleanup(sys.modules.pop, "dccrelay.plugins.dcc_test_unimportable", None)
        refresh_backends()
        self.addCleanup(refresh_backends)

    def test_discovered(self) -> None:
        """A plugin module in another sys.path entry's dccrelay/plugins/ is found and works."""
        with capturedLogs():
            backend = load_backend("throwaway")
        self.assertTrue(verifyObject(IFilterBackend, backend))
        matches = compile_criteria("throwaway", "READY")
        self.assertTrue(matches({"t": "READY"}))
        self.assertFalse(matches({"t": "RESUMED"}))
        self.assertRaises(CriteriaError, compile_criteria, "throwaway", 1)

    def test_builtin_not_shadowed(self) -> None:
        """A third-party backend claiming a built-in name is ignored, with a warning."""
        with capturedLogs() as events:
            backend = load_backend("mongo")
        self.assertIsInstance(backend, MongoBackend)
        self.assertTrue(
            any("two filter backend plugins are called" in e["log_format"] for e in events)
        )

    def test_broken_plugin_ignored(self) -> None:
        """Objects failing verifyObject, for the most specific interface they claim, are not installed; the reasons are logged."""
        with capturedLogs() as events:
            names = set(installed_backends())
        self.assertIn("throwaway", names)
        self.assertNotIn("broken", names)
        self.assertNotIn("unlimited", names)
        warnings = [e for e in events if "ignoring filter backend plugin" in e["log_format"]]
        self.assertEqual(len(warnings), 2)
        self.assertTrue(all("compile" in w["reason"] for w in warnings))

    def test_limits_for_plugins_without_them(self) -> None:
        """A plugin that takes no limits still gets the criteria size and depth limits, checked before it compiles."""
        with capturedLogs():
            compile_criteria("throwaway", "READY", FilterLimits(max_criteria_bytes=7))
        with self.assertRaises(CriteriaError) as raised:
            compile_criteria("throwaway", "READY!!", FilterLimits(max_criteria_bytes=7))
        self.assertIn("the limit is 7", raised.exception.message)
        self.assertRaises(CriteriaError, compile_criteria, "throwaway", "x" * (MAX_CRITERIA_BYTES + 1))

    def test_gone_after_cleanup(self) -> None:
        """Without the directory on the plugin path, the plugin is not found."""
        with capturedLogs():
            self.assertIn("throwaway", installed_backends())
        plugins.__path__[:] = self.original_plugin_path
        sys.modules.pop("dccrelay.plugins.dcc_test_throwaway", None)
        refresh_backends()
        self.assertNotIn("throwaway", installed_backends())


class MissingDependencyTests(SynchronousTestCase):
    """
    A built-in backend whose library is missing costs only that backend.
    """

    def test_mongo_survives_without_jsonpath_library(self) -> None:
        """
        With the JSONPath library not importable, ``mongo`` still loads and
        ``jsonpath`` is simply not installed.
        """
        saved = {
            name: sys.modules.pop(name)
            for name in list(sys.modules)
            if name in ("dccrelay.filters.jsonpath", "dccrelay.plugins.dcc_jsonpath")
        }
        sys.modules["jsonpath_rfc9535"] = None  # type: ignore[assignment]

        def restore() -> None:
            del sys.modules["jsonpath_rfc9535"]
            for name in ("dccrelay.filters.jsonpath", "dccrelay.plugins.dcc_jsonpath"):
                sys.modules.pop(name, None)
            sys.modules.update(saved)
            refresh_backends()

        self.addCleanup(restore)
        refresh_backends()
        with capturedLogs():
            names = set(installed_backends())
        self.assertIn("mongo", names)
        self.assertNotIn("jsonpath", names)
        # twisted.plugin reports the module that failed to import.
        self.assertEqual(len(self.flushLoggedErrors(ImportError)), 1)


class LimitsTests(SynchronousTestCase):
    def setUp(self) -> None:
        refresh_backends()
        self.addCleanup(refresh_backends)

    def test_documented_defaults(self) -> None:
        """FilterLimits() and DEFAULT_LIMITS are the module's documented defaults."""
        self.assertEqual(
            FilterLimits(),
            FilterLimits(
                max_criteria_bytes=MAX_CRITERIA_BYTES,
                max_depth=MAX_DEPTH,
                max_operators=MAX_OPERATORS,
                max_regex_length=MAX_REGEX_LENGTH,
                max_in_length=MAX_IN_LENGTH,
                max_query_length=MAX_QUERY_LENGTH,
            ),
        )
        self.assertEqual(DEFAULT_LIMITS, FilterLimits())
        self.assertEqual(
            (MAX_CRITERIA_BYTES, MAX_DEPTH, MAX_OPERATORS, MAX_REGEX_LENGTH, MAX_IN_LENGTH, MAX_QUERY_LENGTH),
            (16384, 32, 256, 1024, 1000, 2048),
        )

    def test_validated(self) -> None:
        """Each limit must be a whole number, 1 or more; the error names the field."""
        for bad in [0, -1, 1.5, True, "10", None]:
            with self.assertRaises(ValueError) as raised:
                FilterLimits(max_depth=bad)  # type: ignore[arg-type]
            self.assertIn("max_depth must be a whole number, 1 or more", str(raised.exception))

    def test_compile_criteria_passes_limits(self) -> None:
        """compile_criteria hands the operator's limits to every built-in backend."""
        tight = FilterLimits(max_regex_length=3)
        cases = [("mongo", {"a": {"$regex": "abcd"}}), ("jsonpath", "$[?search(@, 'abcd')]")]
        for name, criteria in cases:
            compile_criteria(name, criteria)
            with self.assertRaises(CriteriaError, msg=name) as raised:
                compile_criteria(name, criteria, tight)
            self.assertIn("the limit is 3", raised.exception.message)

    def test_frozen(self) -> None:
        """Limits cannot change under a backend that holds them."""
        with self.assertRaises(AttributeError):
            DEFAULT_LIMITS.max_depth = 1  # type: ignore[misc]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=12,
)


class _BackendContractMixin:
    """
    IFilterBackend's contract, for every built-in backend: subclasses name the
    backend and criteria in its language that deliver MESSAGE_CREATE only.
    """

    backend: ClassVar[IFilterBackend]
    criteria: ClassVar[Any]
    #: Criteria that the backend refuses, with the pointer it reports.
    malformed: ClassVar[list[tuple[Any, str]]]

    def test_provides_interfaces(self: Any) -> None:
        """The backend provides IPlugin and ILimitedFilterBackend, and is installed under its name."""
        self.assertTrue(verifyObject(ILimitedFilterBackend, self.backend))
        self.assertTrue(IPlugin.providedBy(self.backend))
        refresh_backends()
        self.addCleanup(refresh_backends)
        self.assertIs(type(load_backend(self.backend.name)), type(self.backend))

    def test_predicate(self: Any) -> None:
        """Compiled criteria are a predicate returning True or False."""
        matches = self.backend.compile(self.criteria)
        self.assertIs(matches({"op": 0, "t": "MESSAGE_CREATE", "d": {"content": "x"}}), True)
        self.assertIs(matches({"op": 0, "t": "READY", "d": {}}), False)

    def test_total(self: Any) -> None:
        """The predicate returns a bool for any JSON value, never raising."""
        matches = self.backend.compile(self.criteria)

        # Defined per test run: hypothesis wants one executor per test function.
        @settings(max_examples=200, deadline=None)
        @given(_JSON)
        def check(payload: Any) -> None:
            self.assertIsInstance(matches(payload), bool)

        check()

    def test_malformed(self: Any) -> None:
        """Malformed criteria raise CriteriaError with a pointer."""
        for criteria, pointer in self.malformed:
            with self.assertRaises(CriteriaError, msg=repr(criteria)) as raised:
                self.backend.compile(criteria)
            self.assertEqual(raised.exception.pointer, pointer, criteria)

    def test_not_json(self: Any) -> None:
        """Values JSON cannot hold are refused, not compiled."""
        looped: list[Any] = []
        looped.append(looped)
        for criteria in [float("nan"), (1, 2), {1: 2}, object(), looped]:
            self.assertRaises(CriteriaError, self.backend.compile, criteria)

    def test_limits(self: Any) -> None:
        """Limits given to compile override the backend's own."""
        self.backend.compile(self.criteria, FilterLimits())
        self.assertRaises(CriteriaError, self.backend.compile, self.criteria, FilterLimits(max_criteria_bytes=5))
        self.assertRaises(CriteriaError, self.backend.compile, self.criteria, FilterLimits(max_operators=1))


class MongoContractTests(_BackendContractMixin, SynchronousTestCase):
    backend = MongoBackend()
    criteria = {"t": "MESSAGE_CREATE", "d.content": {"$exists": True}}
    malformed = [({"$where": "1"}, "/$where"), ([], ""), ({"a": {"$regex": "("}}, "/a/$regex")]


class JSONPathContractTests(_BackendContractMixin, SynchronousTestCase):
    backend = JSONPathBackend()
    criteria = ["$[?@ == 'MESSAGE_CREATE']", "$.d.content"]
    malformed = [("$[", ""), ({}, ""), (["$.a", "$[?match(@, '(')]"], "/1")]


class ErrorTests(SynchronousTestCase):
    def test_criteria_error(self) -> None:
        """CriteriaError is a ValueError whose str is the message and which keeps the pointer."""
        error = CriteriaError("unknown operator $foo", "/$or/2/$foo")
        self.assertIsInstance(error, ValueError)
        self.assertEqual(str(error), "unknown operator $foo")
        self.assertEqual(error.message, "unknown operator $foo")
        self.assertEqual(error.pointer, "/$or/2/$foo")
        self.assertEqual(CriteriaError("bad").pointer, "")

    def test_unknown_backend_error(self) -> None:
        """UnknownBackendError sorts the installed names and says when there are none."""
        error = UnknownBackendError("foo", ["mongo", "jsonpath"])
        self.assertEqual(error.name, "foo")
        self.assertEqual(error.installed, ["jsonpath", "mongo"])
        self.assertEqual(str(error), "unknown filter backend 'foo'; installed: jsonpath, mongo")
        self.assertEqual(
            str(UnknownBackendError("foo", [])), "unknown filter backend 'foo'; installed: (none)"
        )


class SharedPredicateTests(SynchronousTestCase):
    """
    Bots with the same criteria share one compiled predicate.
    """

    def test_same_criteria_same_predicate(self) -> None:
        """
        Compiling the same criteria twice gives the same object; other
        criteria, another key order, other limits or another backend do not.
        """
        criteria = {"t": "MESSAGE_CREATE", "d.content": {"$regex": "^cookout"}}
        first = compile_criteria("mongo", criteria)
        self.assertIs(compile_criteria("mongo", dict(criteria)), first)
        reordered = {"d.content": {"$regex": "^cookout"}, "t": "MESSAGE_CREATE"}
        self.assertIsNot(compile_criteria("mongo", reordered), first)
        self.assertIsNot(compile_criteria("mongo", {"t": "READY"}), first)
        self.assertIsNot(
            compile_criteria("mongo", criteria, FilterLimits(max_regex_length=100)), first
        )
        self.assertIsNot(compile_criteria("jsonpath", "$[?@.t == 'X']"), first)

    def test_refused_criteria_not_remembered(self) -> None:
        """
        Criteria that fail to compile fail every time.
        """
        for _ in range(2):
            self.assertRaises(CriteriaError, compile_criteria, "mongo", {"$where": "1"})
