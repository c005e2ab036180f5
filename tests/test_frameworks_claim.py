"""
Claiming an interaction (``POST /relays/{alias}/claim``): the bot that has
an interaction asks the relay whether it may answer Discord's callback, so
that the relay's deferral and the bot's answer never both go there.  (End
to end, with discord.py and hikari: tests/test_frameworks_*.py, /slowchips.)
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.waking.interactions import InteractionDeferrer
from dccrelay.waking.watch import Watch

from .api_harness import BODY, Node, answer, basic

COMMAND = {"id": "123", "token": "tok", "type": 2, "application_id": "42"}


class DeferrerClaimTests(SynchronousTestCase):
    """InteractionDeferrer.claim."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.answers: list[Deferred[None]] = []
        self.deferrer = InteractionDeferrer(self.clock, self.respond, after=2.0, alias="a")

    def respond(self, interaction_id: str, token: str, response: dict[str, Any]) -> Deferred[None]:
        self.calls.append((interaction_id, response))
        d: Deferred[None] = Deferred()
        self.answers.append(d)
        return d

    def test_claimed_in_time(self) -> None:
        """
        Claimed before --defer-after: the bot owns it, and the relay never
        calls the callback for it.
        """
        self.deferrer.arrived(COMMAND, Watch(0.0, False), False)
        self.assertIsNone(self.deferrer.claim("123"))
        self.clock.advance(5)
        self.assertEqual(self.calls, [])
        self.assertEqual(self.deferrer.in_time, 1)

    def test_claimed_while_deferring(self) -> None:
        """
        Claimed while the relay's deferral is on its way to Discord: the
        claim says the relay deferred it (type 5), and so does it once done.
        """
        self.deferrer.arrived(COMMAND, Watch(0.0, False), False)
        self.clock.advance(2)
        self.assertEqual(len(self.calls), 1)
        self.assertEqual(self.deferrer.claim("123"), {"type": 5, "ephemeral": False})
        self.answers[0].callback(None)
        self.assertEqual(self.deferrer.claim("123"), {"type": 5, "ephemeral": False})
        self.assertEqual(self.deferrer.deferred, 1)

    def test_unknown(self) -> None:
        """An interaction the relay is not deferring is the bot's."""
        self.assertIsNone(self.deferrer.claim("999"))


class ClaimEndpointTests(SynchronousTestCase):
    """The HTTP side."""

    def setUp(self) -> None:
        self.node = Node()
        self.addCleanup(self.node.stop)
        code, _, _ = answer(self, self.node, "PUT", "/relays/sample", BODY)
        self.assertEqual(code, 201)

    def test_claim(self) -> None:
        """
        With the clientSecret, a claim of an interaction the relay is not
        deferring answers that the bot owns it.
        """
        code, body, _ = answer(
            self, self.node, "POST", "/relays/sample/claim", {"interaction": "123"}, basic()
        )
        self.assertEqual((code, body), (200, {"owner": "bot"}))

    def test_refused(self) -> None:
        """
        Without the secret a claim is a 401; another body is a 400 naming
        the field.
        """
        code, _, _ = answer(self, self.node, "POST", "/relays/sample/claim", {"interaction": "1"})
        self.assertEqual(code, 401)
        code, body, _ = answer(
            self, self.node, "POST", "/relays/sample/claim", {"interaction": 1}, basic()
        )
        self.assertEqual((code, body["field"]), (400, "/interaction"))
