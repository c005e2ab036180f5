"""
:class:`dccrelay_client.answers.InteractionAnswers`: one answer to each
interaction's callback, whoever is slow.  Each test runs its own asyncio
loop; the relay is a stand-in object answering claims.
"""

from __future__ import annotations

import asyncio
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from dccrelay_client.answers import InteractionAnswers
from dccrelay_client.interactions import Deferral

COMMAND = {"id": "123", "token": "tok", "type": 2, "application_id": "42"}


class StandInRelay:
    """Answers every claim with ``answer``."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.claims: list[str] = []

    async def claim_interaction(self, interaction_id: str) -> dict[str, Any]:
        self.claims.append(interaction_id)
        return self.answer


class Calls:
    """What reached Discord, in order."""

    def __init__(self) -> None:
        self.log: list[str] = []

    async def defer(self, d: dict[str, Any], how: Deferral) -> None:
        self.log.append(f"callback {how.type}")

    async def callback(self) -> str:
        self.log.append("callback 4")
        return "answered"

    async def follow_up(self, d: dict[str, Any], how: Deferral) -> str:
        self.log.append(f"follow-up after {how.type}")
        return "followed up"


def no_code(e: Exception) -> int | None:
    return None


class AnswersTests(SynchronousTestCase):
    """Claims, the bot's own deferral, and the relay's."""

    def test_answered_in_time(self) -> None:
        """
        A claimed interaction answered before the self-deferral time gets
        the handler's answer through the callback, and nothing else.
        """
        calls = Calls()

        async def run() -> None:
            relay = StandInRelay({"owner": "bot"})
            answers = InteractionAnswers(relay, self_defer_after=0.2)  # type: ignore[arg-type]
            await answers.arrived(COMMAND, None, calls.defer)
            self.assertEqual(await answers.respond(123, calls.callback, calls.follow_up, no_code), "answered")
            await asyncio.sleep(0.3)
            self.assertEqual(relay.claims, ["123"])

        asyncio.run(run())
        self.assertEqual(calls.log, ["callback 4"])

    def test_slow_handler(self) -> None:
        """
        A claimed interaction whose handler is slow is deferred by the bot
        itself; the handler's answer then edits it (a follow-up), never a
        second callback.
        """
        calls = Calls()

        async def run() -> None:
            answers = InteractionAnswers(StandInRelay({"owner": "bot"}), self_defer_after=0.05)  # type: ignore[arg-type]
            await answers.arrived(COMMAND, None, calls.defer)
            await asyncio.sleep(0.2)
            self.assertEqual(
                await answers.respond(123, calls.callback, calls.follow_up, no_code), "followed up"
            )

        asyncio.run(run())
        self.assertEqual(calls.log, ["callback 5", "follow-up after 5"])

    def test_relay_deferred(self) -> None:
        """
        A claim answered "the relay deferred it" sends the handler's answer
        as a follow-up at once, and the bot never calls the callback.
        """
        calls = Calls()

        async def run() -> None:
            relay = StandInRelay({"owner": "relay", "deferred": {"type": 5, "ephemeral": False}})
            answers = InteractionAnswers(relay, self_defer_after=0.05)  # type: ignore[arg-type]
            await answers.arrived(COMMAND, None, calls.defer)
            await asyncio.sleep(0.1)
            await answers.respond(123, calls.callback, calls.follow_up, no_code)

        asyncio.run(run())
        self.assertEqual(calls.log, ["follow-up after 5"])

    def test_marked_not_claimed(self) -> None:
        """An interaction delivered with the relay's marker is not claimed: it is the relay's."""
        calls = Calls()
        relay = StandInRelay({"owner": "bot"})

        async def run() -> None:
            answers = InteractionAnswers(relay)  # type: ignore[arg-type]
            await answers.arrived(COMMAND, Deferral(6, False), calls.defer)
            await answers.respond(123, calls.callback, calls.follow_up, no_code)

        asyncio.run(run())
        self.assertEqual((relay.claims, calls.log), ([], ["follow-up after 6"]))

    def test_fallback_on_40060(self) -> None:
        """
        Without a relay to claim from, a callback refused with 40060 (the
        relay deferred it meanwhile) is answered as a follow-up after the
        relay's deferral of a command (5).
        """
        calls = Calls()

        class Refused(Exception):
            code = 40060

        async def refused() -> str:
            calls.log.append("callback 4")
            raise Refused()

        async def run() -> None:
            answers = InteractionAnswers(None)
            await answers.arrived(COMMAND, None, calls.defer)
            result = await answers.respond(
                123, refused, calls.follow_up, lambda e: getattr(e, "code", None)
            )
            self.assertEqual(result, "followed up")

        asyncio.run(run())
        self.assertEqual(calls.log, ["callback 4", "follow-up after 5"])
