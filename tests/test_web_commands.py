"""
``POST /relays/{alias}/commands`` (:class:`dccrelay.web.relays.CommandsResource`):
who may send, and how each refusal is answered.  (A command forwarded all
the way to the simulator: tests/test_waking_end_to_end.py.)
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from dccrelay.relay.remote import RemoteRelay

from .api_harness import BODY, SECRET, Node, answer, basic

PRESENCE = {"op": 3, "d": {"since": None, "activities": [], "status": "online", "afk": False}}


class CommandsTests(SynchronousTestCase):
    """
    The HTTP side of gateway commands.
    """

    def setUp(self) -> None:
        self.node = Node()
        self.addCleanup(self.node.stop)
        code, _, _ = answer(self, self.node, "PUT", "/relays/sample", BODY)
        self.assertEqual(code, 201)

    def post(
        self, body: object, headers: dict[str, list[str]] | None = None
    ) -> tuple[int, Any, Any]:
        return answer(self, self.node, "POST", "/relays/sample/commands", body, headers)

    def test_needs_the_secret(self) -> None:
        """
        Only the bot's clientSecret may send commands.
        """
        code, body, _ = self.post(PRESENCE)
        self.assertEqual(code, 401)
        code, _, _ = self.post(PRESENCE, basic("admin:not-the-secret"))
        self.assertEqual(code, 401)

    def test_unknown_bot(self) -> None:
        """
        An alias nobody registered is a 404.
        """
        code, body, _ = answer(
            self, self.node, "POST", "/relays/nobody/commands", PRESENCE, basic()
        )
        self.assertEqual(code, 404)

    def test_bad_command(self) -> None:
        """
        A command that fails its checks is a 400 naming the field.
        """
        code, body, _ = self.post({"op": 8, "d": {"guild_id": "x", "user_ids": "1"}}, basic())
        self.assertEqual((code, body["field"]), (400, "/d/guild_id"))

    def test_not_ready(self) -> None:
        """
        While the gateway session is not ready: 503 with Retry-After.
        """
        code, body, response = self.post(PRESENCE, basic())
        self.assertEqual(code, 503)
        self.assertIn("not ready", body["error"])
        self.assertEqual(response.headers.getRawHeaders(b"retry-after"), [b"5"])

    def test_other_node(self) -> None:
        """
        A bot whose gateway session another node holds: 409, naming it.
        """
        relay = self.node.manager.relays["sample"]
        self.addCleanup(self.node.manager.relays.__setitem__, "sample", relay)
        self.node.manager.relays["sample"] = RemoteRelay(
            "sample", relay.settings, owner="node-b"
        )
        code, body, _ = self.post(PRESENCE, basic(SECRET))
        self.assertEqual(code, 409)
        self.assertIn("node-b", body["error"])
