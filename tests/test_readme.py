"""
README.rst is what a new user reads first: it must render, and start with
the two commands that set up and run the relay and the tests.
"""

from __future__ import annotations

import os

import docutils.core
from twisted.trial.unittest import SynchronousTestCase

import dccrelay

README = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(dccrelay.__file__))), "README.rst"
)


class ReadmeTests(SynchronousTestCase):
    """
    The README renders cleanly and keeps its two first commands.
    """

    def test_renders_without_warnings(self) -> None:
        """
        docutils reads the README without a warning (a broken table, a bad
        heading underline...).
        """
        with open(README, encoding="utf-8") as f:
            text = f.read()
        docutils.core.publish_string(
            text, writer_name="null",
            settings_overrides={"report_level": 2, "halt_level": 2},
        )

    def test_first_two_commands(self) -> None:
        """
        The first two literal blocks are the run command (SQLite by default,
        twistd dcc) and the test command (trial over tests).
        """
        with open(README, encoding="utf-8") as f:
            blocks = [line.strip() for line in f if line.startswith("    python3 -m venv")]
        self.assertGreaterEqual(len(blocks), 2)
        self.assertIn("twistd --nodaemon --pidfile= dcc", blocks[0])
        self.assertIn("twisted.trial tests", blocks[1])

    def test_commands_use_constraints(self) -> None:
        """
        Both commands install the versions CI tested (``-c
        constraints.txt``), and that file pins every dependency exactly.
        """
        with open(README, encoding="utf-8") as f:
            blocks = [line.strip() for line in f if line.startswith("    python3 -m venv")]
        for block in blocks[:2]:
            self.assertIn("pip install -c constraints.txt ", block)
        root = os.path.dirname(README)
        with open(os.path.join(root, "constraints.txt"), encoding="utf-8") as f:
            pins = {
                line.split("==")[0].lower().replace("_", "-"): line
                for line in f if line.strip() and not line.startswith("#")
            }
        self.assertTrue(all("==" in pin for pin in pins.values()), pins)
        for name in ("twisted", "autobahn", "treq", "psycopg", "mypy"):
            self.assertIn(name, pins)
        self.assertNotIn("dccrelay", pins)

    def test_no_missing_files_cited(self) -> None:
        """
        The README cites no file the repository lacks (it once cited a
        SEED.md that was never in it), and the MIT licence setup.cfg
        names is there.
        """
        with open(README, encoding="utf-8") as f:
            text = f.read()
        self.assertNotIn("SEED.md", text)
        root = os.path.dirname(README)
        self.assertTrue(os.path.exists(os.path.join(root, "LICENSE")))
        for cited in ("docs/client.rst", "docs/receiving.rst", "docs/operations.rst"):
            if cited in text:
                self.assertTrue(os.path.exists(os.path.join(root, cited)), cited)
