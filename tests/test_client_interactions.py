"""
Tests for :mod:`dccrelay.client.interactions`: answering an interaction
whether or not the relay deferred it, against the simulator's REST API
through StubTreq.
"""

from __future__ import annotations

from typing import Any

import orjson
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.client import (
    Deferral,
    InteractionError,
    answer_interaction,
    deferral,
    reply_route,
)
from dccrelay.testing.rest import DiscordAPI
from dccrelay.testing.simulator import DiscordSimulator

API = "http://discord.example/v10"


def event(d: dict[str, Any], deferred: dict[str, Any] | None = None) -> bytes:
    payload = orjson.dumps({"t": "INTERACTION_CREATE", "s": 3, "op": 0, "d": d})
    if deferred is None:
        return payload
    return b'{"dcc":{"deferred":' + orjson.dumps(deferred) + b"}," + payload[1:]


class RouteTests(SynchronousTestCase):
    """
    deferral and reply_route.
    """

    D = {"id": "9", "token": "tok", "application_id": "1111", "type": 2}

    def test_deferral(self) -> None:
        """
        The relay's marker is read; a payload without it was not deferred.
        """
        self.assertIsNone(deferral(event(self.D)))
        self.assertEqual(
            deferral(event(self.D, {"type": 5, "ephemeral": True})), Deferral(5, True)
        )
        self.assertEqual(deferral(orjson.loads(event(self.D, {"type": 6}))), Deferral(6, False))

    def test_routes(self) -> None:
        """
        Not deferred: the callback with a message (or an update); deferred:
        the original response edited, or a follow-up after a deferred
        update.
        """
        message = {"content": "chips"}
        self.assertEqual(
            reply_route(event(self.D), message),
            ("POST", "/interactions/9/tok/callback", {"type": 4, "data": message}),
        )
        self.assertEqual(reply_route(event(self.D), message, update=True)[2]["type"], 7)
        self.assertEqual(
            reply_route(event(self.D, {"type": 5}), message),
            ("PATCH", "/webhooks/1111/tok/messages/@original", message),
        )
        self.assertEqual(
            reply_route(event(self.D, {"type": 6}), message),
            ("POST", "/webhooks/1111/tok", message),
        )
        self.assertEqual(
            reply_route(event(self.D, {"type": 6}), message, update=True)[:2],
            ("PATCH", "/webhooks/1111/tok/messages/@original"),
        )


class AnswerTests(SynchronousTestCase):
    """
    answer_interaction against the simulator.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.sim = DiscordSimulator(self.clock)
        self.bot = self.sim.add_bot(token="token-i", user_id="1111")
        self.treq = StubTreq(DiscordAPI(self.sim))

    def create(self) -> dict[str, Any]:
        return self.sim.interactions.create(
            self.bot, kind=2, name="cookout", custom_id="", guild_id="2222", channel_id="3333"
        )

    def answer(self, payload: bytes) -> Any:
        d = answer_interaction(payload, {"content": "chips"}, http=self.treq, api_base=API)
        self.treq.flush()
        return d

    def test_direct(self) -> None:
        """
        An interaction the relay did not defer is answered directly.
        """
        d = self.create()
        self.successResultOf(self.answer(event(d)))
        record = self.sim.interactions.by_id[d["id"]]
        self.assertEqual((record.outcome, record.answer_type), ("answered", 4))
        self.assertTrue(str(record.answered_by).startswith("DiscordBot (dccrelay-client"))

    def test_deferred(self) -> None:
        """
        A deferred one gets its original response edited.
        """
        d = self.create()
        self.sim.interactions.callback(d["id"], d["token"], {"type": 5}, "relay")
        self.clock.advance(60)
        self.successResultOf(self.answer(event(d, {"type": 5, "ephemeral": False})))
        record = self.sim.interactions.by_id[d["id"]]
        self.assertEqual(record.outcome, "deferred, then answered")
        self.assertEqual(record.edits[0][2], {"content": "chips"})

    def test_deferred_meanwhile(self) -> None:
        """
        When the relay deferred it after sending it unmarked, the refused
        callback (40060) is followed by an edit of the original.
        """
        d = self.create()
        self.sim.interactions.callback(d["id"], d["token"], {"type": 5}, "relay")
        self.successResultOf(self.answer(event(d)))
        self.assertEqual(self.sim.interactions.by_id[d["id"]].outcome, "deferred, then answered")

    def test_too_late(self) -> None:
        """
        An interaction nobody answered in 3 s cannot be answered: the
        error says so.
        """
        d = self.create()
        self.clock.advance(3)
        error = self.failureResultOf(self.answer(event(d)), InteractionError).value
        self.assertEqual((error.status, error.code), (404, 10062))
        self.sim.interactions.stop()
