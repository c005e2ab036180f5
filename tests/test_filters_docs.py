"""
docs/filters.rst's example plugin and its test work as the page says: the
module at ``dccrelay/plugins/`` of a plugin author's repository, the test
run from that repository's root with it on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

import dccrelay

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(dccrelay.__file__)))


def _literal_after(text: str, first_line: str, end: str) -> str:
    """The indented literal block that starts with ``first_line``, unindented."""
    start = text.index("    " + first_line)
    block = text[start:text.index(end, start)].rstrip()
    return "\n".join(line[4:] for line in block.splitlines()) + "\n"


class PluginExampleTests(SynchronousTestCase):
    """
    The documented plugin is discovered and its documented test passes.
    """

    def test_documented_plugin(self) -> None:
        """
        From the plugin author's repository root, with ``PYTHONPATH`` as the
        page says (this checkout first, as it is an editable install here),
        the snippet finds ``eventnames`` and it matches.
        """
        with open(os.path.join(ROOT, "docs", "filters.rst"), encoding="utf-8") as f:
            text = f.read()
        module = _literal_after(
            text, '"""A filter backend: criteria are a list of event names', "List the directory"
        )
        test = _literal_after(text, "from zope.interface.verify import", "Twisted keeps a")
        repository = self.mktemp()
        os.makedirs(os.path.join(repository, "dccrelay", "plugins"))
        os.makedirs(os.path.join(repository, "tests"))
        with open(os.path.join(repository, "dccrelay", "plugins", "dcc_eventnames.py"), "w") as f:
            f.write(module)
        with open(os.path.join(repository, "tests", "check_plugin.py"), "w") as f:
            f.write(test + "print('plugin ok')\n")
        result = subprocess.run(
            [sys.executable, os.path.join("tests", "check_plugin.py")],
            cwd=repository,
            env={**os.environ, "PYTHONPATH": ROOT + os.pathsep + "."},
            capture_output=True,
            text=True,
            check=False,
        )
        self.assertEqual(result.stdout.strip(), "plugin ok", result.stderr)
