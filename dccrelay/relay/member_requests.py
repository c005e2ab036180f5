"""
The member requests (op 8) a bot made through the relay and still waits
for: their answers (``GUILD_MEMBERS_CHUNK``, or ``RATE_LIMITED``, carrying
the request's nonce) reach the bot whatever its criteria say.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime

from dccrelay.gateway.commands import CommandError, answers_request

#: member requests of one bot waiting for their answers, at most
MAX_MEMBER_REQUESTS = 100

#: seconds a member request's answers are waited for
MEMBER_REQUEST_TIMEOUT = 120.0

#: the dispatch types that may answer a member request (answers_request)
ANSWER_TYPES = frozenset({"GUILD_MEMBERS_CHUNK", "RATE_LIMITED"})


class MemberRequests:
    """
    One bot's member requests still waiting for answers, by nonce.
    """

    __slots__ = ("_clock", "_until")

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        # nonce -> when to stop waiting for its answers
        self._until: dict[str, float] = {}

    def __bool__(self) -> bool:
        return bool(self._until)

    def expect(self, nonce: str) -> None:
        """
        A request with ``nonce`` is about to be sent.

        :raise CommandError: 429 when too many requests still wait.
        """
        now = self._clock.seconds()
        until = self._until
        for expired in [n for n, deadline in until.items() if deadline <= now]:
            del until[expired]
        if len(until) >= MAX_MEMBER_REQUESTS and nonce not in until:
            raise CommandError(
                f"{len(until)} member requests still wait for their answers",
                status=429,
                retry_after=MEMBER_REQUEST_TIMEOUT,
            )
        until[nonce] = now + MEMBER_REQUEST_TIMEOUT

    def answered_by(self, payload: dict[str, Any]) -> bool:
        """
        Whether ``payload`` answers one of the requests; its last answer
        ends the wait for that request.
        """
        nonce = answers_request(payload, self._until)
        if nonce is None:
            return False
        d = payload["d"]
        index, count = d.get("chunk_index"), d.get("chunk_count")
        if payload.get("t") == "RATE_LIMITED" or (
            isinstance(index, int) and isinstance(count, int) and index >= count - 1
        ):
            del self._until[nonce]
        return True
