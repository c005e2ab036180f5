"""
Who answers an interaction's callback: the bot, or the relay that deferred
it.  Only one of them may: a second answer is refused by Discord (40060).

When an interaction arrives without the relay's deferral marker, the bot
claims it from the relay (``POST /relays/{alias}/claim``).  Either the
relay had not deferred it, and now will not: the bot answers through the
callback, and defers it itself if its handler has not answered within
:data:`SELF_DEFER_AFTER` seconds (Discord allows 3); or the relay deferred
it meanwhile, and the bot's answer goes to the interaction's webhook.  A
relay without the claim endpoint (or another node's) leaves the fallback:
a callback refused with 40060 (10062 after the 3 s) is answered as after
the relay's deferral.

The framework's answer and the bot's own deferral take one lock per
interaction, so they never both reach the callback either.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from dccrelay_client.interactions import (
    ALREADY_ACKNOWLEDGED,
    UNKNOWN_INTERACTION,
    Deferral,
    relay_deferral_for,
)
from dccrelay_client.registration import RegistrationError, RelayAPI

log = logging.getLogger(__name__)

T = TypeVar("T")

#: seconds after its arrival the bot defers a claimed interaction its
#: handler has not answered (Discord allows 3 from its creation)
SELF_DEFER_AFTER = 2.0

#: interactions remembered at most (their tokens last 15 minutes)
REMEMBERED = 1000

_AUTOCOMPLETE = 4


class _Interaction:
    __slots__ = ("d", "lock", "deferral", "answered", "timer")

    def __init__(self, d: dict[str, Any], deferral: Deferral | None) -> None:
        self.d = d
        self.lock = asyncio.Lock()
        self.deferral = deferral
        self.answered = False
        self.timer: asyncio.TimerHandle | None = None


class InteractionAnswers:
    """
    One bot's interactions, for its framework adapter.

    :param relay: where to claim interactions (None: only the fallback).
    """

    def __init__(self, relay: RelayAPI | None, self_defer_after: float = SELF_DEFER_AFTER) -> None:
        self._relay = relay
        self._after = self_defer_after
        self._known: OrderedDict[int, _Interaction] = OrderedDict()
        self._deferring: set[asyncio.Task[None]] = set()

    async def arrived(
        self,
        d: dict[str, Any],
        marker: Deferral | None,
        defer: Callable[[dict[str, Any], Deferral], Awaitable[None]],
    ) -> None:
        """
        An INTERACTION_CREATE (its ``d``) is about to be fed; ``marker`` is
        the relay's deferral marker, if any.  ``defer(d, how)`` answers the
        callback with a deferral, for when the bot must defer it itself.
        """
        interaction = _Interaction(d, marker)
        self._known[int(d["id"])] = interaction
        while len(self._known) > REMEMBERED:
            self._known.popitem(last=False)
        if marker is not None or self._relay is None or d.get("type") == _AUTOCOMPLETE:
            return
        try:
            answer = await self._relay.claim_interaction(str(d["id"]))
        except (RegistrationError, OSError, asyncio.TimeoutError) as e:
            log.info("could not claim interaction %s (%s): answering as before", d["id"], e)
            return
        deferred = answer.get("deferred")
        if answer.get("owner") == "relay" and isinstance(deferred, dict):
            interaction.deferral = Deferral(int(deferred["type"]), bool(deferred.get("ephemeral")))
            return
        interaction.timer = asyncio.get_running_loop().call_later(
            self._after, self._defer_later, interaction, defer
        )

    def _defer_later(
        self,
        interaction: _Interaction,
        defer: Callable[[dict[str, Any], Deferral], Awaitable[None]],
    ) -> None:
        task = asyncio.ensure_future(self._defer(interaction, defer))
        self._deferring.add(task)
        task.add_done_callback(self._deferring.discard)

    async def _defer(
        self,
        interaction: _Interaction,
        defer: Callable[[dict[str, Any], Deferral], Awaitable[None]],
    ) -> None:
        async with interaction.lock:
            if interaction.answered or interaction.deferral is not None:
                return
            how = relay_deferral_for(interaction.d)
            try:
                await defer(interaction.d, how)
            except Exception as e:
                log.warning("could not defer interaction %s: %s", interaction.d["id"], e)
                return
            interaction.deferral = how

    def interaction(self, interaction_id: int) -> dict[str, Any] | None:
        """The ``d`` of a known interaction."""
        known = self._known.get(interaction_id)
        return None if known is None else known.d

    async def respond(
        self,
        interaction_id: int,
        callback: Callable[[], Awaitable[T]],
        follow_up: Callable[[dict[str, Any], Deferral], Awaitable[T]],
        error_code: Callable[[Exception], int | None],
    ) -> T:
        """
        The framework answers an interaction: through ``callback`` if the
        bot owns it, else (deferred) through ``follow_up(d, how)``.

        :param error_code: Discord's error code in an exception the
            callback raised, if any.
        """
        interaction = self._known.get(interaction_id)
        if interaction is None:
            return await callback()
        async with interaction.lock:
            if interaction.timer is not None:
                interaction.timer.cancel()
            if interaction.deferral is not None:
                return await follow_up(interaction.d, interaction.deferral)
            try:
                result = await callback()
            except Exception as e:
                if error_code(e) not in (ALREADY_ACKNOWLEDGED, UNKNOWN_INTERACTION):
                    raise
                # The relay deferred it (a relay that takes no claims): answer
                # as after that deferral.
                how = relay_deferral_for(interaction.d)
                try:
                    result = await follow_up(interaction.d, how)
                except Exception:
                    raise e from None
                interaction.deferral = how
                return result
            interaction.answered = True
            return result
