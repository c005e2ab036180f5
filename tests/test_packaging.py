"""
The distribution's metadata matches the tree: a package moved or added
without setup.cfg knowing installs incompletely, or not at all.
"""

from __future__ import annotations

import configparser
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

import dccrelay

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(dccrelay.__file__)))


def listed_packages() -> set[str]:
    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, "setup.cfg"))
    return {line.strip() for line in config["options"]["packages"].splitlines() if line.strip()}


def tree_packages() -> set[str]:
    found = set()
    for directory, _, files in os.walk(os.path.join(ROOT, "dccrelay")):
        if "__init__.py" in files and "__pycache__" not in directory:
            found.add(os.path.relpath(directory, ROOT).replace(os.sep, "."))
    return found


class PackagesTests(SynchronousTestCase):
    """
    setup.cfg lists exactly the packages of dccrelay/ (and twisted.plugins).
    """

    def test_every_package_listed(self) -> None:
        """Each dccrelay package of the tree is in setup.cfg's packages."""
        self.assertEqual(tree_packages() - listed_packages(), set())

    def test_every_listed_package_exists(self) -> None:
        """Each package setup.cfg lists is a directory of the tree."""
        for package in listed_packages():
            path = os.path.join(ROOT, *package.split("."))
            self.assertTrue(os.path.isdir(path), f"setup.cfg lists {package}, not in the tree")


class InstalledCommandTests(SynchronousTestCase):
    """
    The ``twistd`` of the environment the tests run in knows ``dcc`` from
    any directory, without ``PYTHONPATH``: README's test command installs
    the checkout editable, and its "Trying it without Discord" runs that
    environment's ``twistd dcc``.
    """

    def test_twistd_knows_dcc(self) -> None:
        """``twistd dcc --help`` answers with the plugin's usage."""
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        elsewhere = self.mktemp()
        os.makedirs(elsewhere)
        result = subprocess.run(
            [twistd, "dcc", "--help"], cwd=elsewhere, env=env,
            capture_output=True, text=True, timeout=60, check=False,
        )
        self.assertIn("Usage: twistd [options] dcc", result.stdout, result.stderr[-2000:])
