"""
Where an answer to an interaction goes once the relay deferred it
(:mod:`dccrelay_client.interactions`), the one copy of that logic.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from dccrelay_client.interactions import (
    Deferral,
    after_deferral,
    deferral,
    followup_route,
    relay_deferral_for,
)

COMMAND = {"id": "1", "token": "tok", "application_id": "42", "type": 2}
BUTTON = {**COMMAND, "type": 3, "message": {"id": "9"}}


class FollowupTests(SynchronousTestCase):
    """followup_route, relay_deferral_for and after_deferral."""

    def test_message_after_thinking(self) -> None:
        """A message after "thinking..." (5) replaces it: PATCH of the original."""
        self.assertEqual(
            followup_route(COMMAND, Deferral(5, False), 4, {"content": "x"}),
            ("PATCH", "/webhooks/42/tok/messages/@original", {"content": "x"}),
        )

    def test_message_after_deferred_update(self) -> None:
        """A message after a deferred update (6) is a follow-up; an update edits the original."""
        self.assertEqual(
            followup_route(BUTTON, Deferral(6, False), 4, {"content": "x"}),
            ("POST", "/webhooks/42/tok", {"content": "x"}),
        )
        self.assertEqual(
            followup_route(BUTTON, Deferral(6, False), 7, {"content": "x"})[0],  # type: ignore[index]
            "PATCH",
        )

    def test_deferral_after_deferral(self) -> None:
        """The framework's own deferral after the relay's is nothing to send."""
        self.assertIsNone(followup_route(COMMAND, Deferral(5, False), 5, {}))
        self.assertIsNone(followup_route(BUTTON, Deferral(6, False), 6, {}))

    def test_modal_refused(self) -> None:
        """A modal cannot follow a deferral: the error says what to do instead."""
        with self.assertRaises(ValueError) as caught:
            followup_route(COMMAND, Deferral(5, False), 9, {})
        self.assertIn("--defer-after", str(caught.exception))

    def test_relay_deferral(self) -> None:
        """
        The relay defers a command with 5 and a component (or a modal from
        one) with 6; after a 40060 the answer goes accordingly.
        """
        self.assertEqual(relay_deferral_for(COMMAND).type, 5)
        self.assertEqual(relay_deferral_for(BUTTON).type, 6)
        self.assertEqual(relay_deferral_for({**BUTTON, "type": 5}).type, 6)
        self.assertEqual(relay_deferral_for({**COMMAND, "type": 5}).type, 5)
        event = {"t": "INTERACTION_CREATE", "d": BUTTON}
        self.assertEqual(after_deferral(event, {"content": "x"})[:2], ("POST", "/webhooks/42/tok"))

    def test_marker(self) -> None:
        """deferral reads the relay's marker from bytes or a parsed payload."""
        raw = b'{"dcc":{"deferred":{"type":5,"ephemeral":true}},"t":"INTERACTION_CREATE","d":{}}'
        self.assertEqual(deferral(raw), Deferral(5, True))
        self.assertIsNone(deferral({"t": "INTERACTION_CREATE", "d": {}}))
