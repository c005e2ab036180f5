"""
Tests for dccrelay.filters' public entry points: backend discovery,
third-party plugins, errors and defaults.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
from pathlib import Path

from twisted.logger import capturedLogs
from twisted.plugin import IPlugin, pluginPackagePaths
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from dccrelay import plugins
from dccrelay.filters import (
    DEFAULT_BACKEND,
    DEFAULT_CRITERIA,
    CriteriaError,
    IFilterBackend,
    UnknownBackendError,
    compile_criteria,
    installed_backends,
    load_backend,
    refresh_backends,
)
from dccrelay.filters.mongo import MongoBackend

_THROWAWAY_PLUGIN = '''
from twisted.plugin import IPlugin
from zope.interface import implementer

from dccrelay.filters import CriteriaError, IFilterBackend


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


throwaway = Throwaway()
impostor = Impostor()
broken = Broken()
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
        self.addCleanup(shutil.rmtree, root)
        self.patch(sys, "path", [str(root)] + sys.path)
        # What importing dccrelay.plugins does, again now that root is on sys.path.
        self.original_plugin_path = list(plugins.__path__)
        self.patch(
            plugins, "__path__", self.original_plugin_path + pluginPackagePaths(plugins.__name__)
        )
        self.addCleanup(sys.modules.pop, "dccrelay.plugins.dcc_test_throwaway", None)
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
        """An object failing verifyObject is not installed, and the reason is logged."""
        with capturedLogs() as events:
            names = set(installed_backends())
        self.assertIn("throwaway", names)
        self.assertNotIn("broken", names)
        warnings = [e for e in events if "ignoring filter backend plugin" in e["log_format"]]
        self.assertEqual(len(warnings), 1)
        self.assertIn("compile", warnings[0]["reason"])

    def test_gone_after_cleanup(self) -> None:
        """Without the directory on the plugin path, the plugin is not found."""
        with capturedLogs():
            self.assertIn("throwaway", installed_backends())
        plugins.__path__[:] = self.original_plugin_path
        sys.modules.pop("dccrelay.plugins.dcc_test_throwaway", None)
        refresh_backends()
        self.assertNotIn("throwaway", installed_backends())


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
