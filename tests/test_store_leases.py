"""
Tests for :mod:`dccrelay.store.leases`: the lease timing and its invariant.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from dccrelay.store.leases import LeaseTiming


class LeaseTimingTests(SynchronousTestCase):
    """
    A node that cannot renew stops its bots before its leases can expire.
    """

    def test_defaults(self) -> None:
        """
        By default a lease lasts 10 s, is renewed every 2.5 s, free bots are
        looked for every 2 s, and a node that cannot renew stops its bots 7 s
        after sending its last successful renew: after two failed renews,
        3 s before the lease could expire.
        """
        timing = LeaseTiming()
        self.assertEqual(
            (timing.ttl, timing.renew_interval, timing.claim_interval, timing.stop_after),
            (10.0, 2.5, 2.0, 7.0),
        )
        self.assertLessEqual(timing.ttl + timing.claim_interval, 15.0)

    def test_positive(self) -> None:
        """
        Every duration must be positive, and the error names it.
        """
        for name in ("ttl", "renew_interval", "claim_interval", "margin"):
            with self.assertRaises(ValueError) as caught:
                LeaseTiming(**{name: 0.0})
            self.assertIn(f"lease {name} must be a positive number", str(caught.exception))

    def test_renew_before_stop(self) -> None:
        """
        A ttl too short for one renew interval plus the margin is refused:
        the node would stop its bots between two renews.
        """
        with self.assertRaises(ValueError) as caught:
            LeaseTiming(ttl=5.0, renew_interval=3.0, margin=2.0)
        self.assertIn("must exceed renew interval", str(caught.exception))
        self.assertEqual(LeaseTiming(ttl=5.5, renew_interval=3.0, margin=2.0).stop_after, 3.5)
