"""
Tests for :mod:`dccrelay.ops.descriptors`: enough open files for
``--max-relays`` bots, raised at start-up or refused with why.
"""

from __future__ import annotations

import resource

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.ops.descriptors import TooFewDescriptors, descriptors_needed, ensure_descriptors
from dccrelay.tap import Options


class Limits:
    """A process's open-file limits, as getrlimit and setrlimit see them."""

    def __init__(self, soft: int, hard: int) -> None:
        self.soft, self.hard = soft, hard
        self.set_to: list[tuple[int, int]] = []

    def get(self, which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return self.soft, self.hard

    def set(self, which: int, limits: tuple[int, int]) -> None:
        assert which == resource.RLIMIT_NOFILE
        self.set_to.append(limits)
        self.soft = limits[0]


class EnsureDescriptorsTests(SynchronousTestCase):
    """
    The soft limit is raised as far as the bots need, within the hard one.
    """

    def test_raised_to_need(self) -> None:
        """The usual 1,024 is raised to what 1,000 bots need."""
        limits = Limits(1024, 65536)
        self.assertEqual(ensure_descriptors(1000, limits.get, limits.set), 2256)
        self.assertEqual(limits.set_to, [(2256, 65536)])

    def test_enough_already(self) -> None:
        """A soft limit that is enough is left as it is."""
        limits = Limits(100000, 100000)
        self.assertEqual(ensure_descriptors(1000, limits.get, limits.set), 100000)
        self.assertEqual(limits.set_to, [])

    def test_hard_limit_too_low(self) -> None:
        """
        A hard limit below the need: raised to it, then refused with the
        figures and both ways out.
        """
        limits = Limits(1024, 2000)
        with self.assertRaises(TooFewDescriptors) as caught:
            ensure_descriptors(1000, limits.get, limits.set)
        message = str(caught.exception)
        self.assertIn("--max-relays 1000 needs about 2256 open files (2 per bot, 256 for the rest)", message)
        self.assertIn("may open only 2000", message)
        self.assertIn("LimitNOFILE=", message)
        self.assertIn("lower --max-relays", message)

    def test_need(self) -> None:
        """Two per bot and a reserve."""
        self.assertEqual(descriptors_needed(10), 276)


class OptionsTests(SynchronousTestCase):
    """
    ``twistd dcc`` refuses, as a usage error, a --max-relays this process
    cannot hold open.
    """

    def test_usage_error(self) -> None:
        """More bots than this process may open files for: a usage error."""
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            # nothing is too many here: the options are accepted
            Options().parseOptions(["--max-relays", "100000"])
            return
        options = Options()
        with self.assertRaises(usage.UsageError) as caught:
            options.parseOptions(["--max-relays", str(hard)])
        self.assertIn("open files", str(caught.exception))
