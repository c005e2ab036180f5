"""
A bot whose calls to Discord keep failing stops spending the node's
invalid-request budget: its gateway session backs off while the node's
budget is short, and is disabled, saying why, once its own share is spent
(issue 17, item 5).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.gateway.rest import GatewayInfo, InvalidRequestBudgetSpent
from dccrelay.relay.relay import Relay
from tests.relay_harness import RelayHarness


class ShareTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.harness = RelayHarness()
        self.asked = 0
        self.refusal: InvalidRequestBudgetSpent | None = None
        self.harness.rest.get_gateway_bot = self.gateway_bot  # type: ignore[method-assign]

    def gateway_bot(self, token: str) -> Deferred[GatewayInfo]:
        self.asked += 1
        assert self.refusal is not None
        return fail(self.refusal)

    def start(self) -> Relay:
        relay = Relay(
            "cookout", self.harness.settings(), self.harness.env,
            on_fatal=lambda alias, reason: self.harness.fatal.append(reason),
        )
        relay.start()
        self.harness.clock.advance(0)
        return relay

    def test_own_share_spent_disables(self) -> None:
        """A refusal for the token's own share disables the bot, with a reason naming the count and the fix."""
        self.refusal = InvalidRequestBudgetSpent(300.0, own_share=True, share=50)
        self.start()
        self.assertEqual(len(self.harness.fatal), 1)
        reason = self.harness.fatal[0]
        self.assertIn("failed 50 times in 10 minutes", reason)
        self.assertIn("check the bot token", reason)
        self.harness.clock.advance(10)
        self.assertEqual(self.asked, 1)

    def test_node_budget_backs_off(self) -> None:
        """A refusal for the node's budget is retried with backoff, and the status says why."""
        self.refusal = InvalidRequestBudgetSpent(300.0)
        relay: Any = self.start()
        self.assertEqual(self.harness.fatal, [])
        self.assertIn("too many invalid requests", relay.snapshot().gateway_error)
        self.harness.clock.advance(1.0)
        self.assertEqual(self.asked, 2)
