"""
``deferInteractions``: answer Discord for a bot that is still waking up.

Discord gives a bot 3 seconds to answer an interaction (a slash command, a
button); after that the person sees "This interaction failed" and the
interaction's token is void.  A sleeping bot's host takes longer to start.
So when a matching ``INTERACTION_CREATE`` has not been delivered to the bot
*and acknowledged* (v2 ack, webhook 2xx; written, for v1) within
``defer_after`` seconds (2 by default), the relay answers Discord's
interaction callback itself with the deferred response that fits:

=========================  ===============================================
interaction                deferred response
=========================  ===============================================
APPLICATION_COMMAND (2)    DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE (5): the
                           person sees "<bot> is thinking..."; with
                           ``deferEphemeral``, only they see it (flags 64)
MESSAGE_COMPONENT (3)      DEFERRED_UPDATE_MESSAGE (6): nothing shows; the
                           bot edits the message later
MODAL_SUBMIT (5)           6 if the modal came from a component (it has a
                           ``message``), else 5 as for a command
=========================  ===============================================

Autocomplete (4) cannot be deferred and is left alone.

The dispatch the bot then gets carries the news, as a first member of the
gateway payload (the only change the relay ever makes to a payload)::

    {"dcc":{"deferred":{"type":5,"ephemeral":false}},"t":"INTERACTION_CREATE",...}

and the bot must answer with the follow-up endpoints, not the callback
(which Discord would refuse: 40060, already acknowledged):
``PATCH /webhooks/{application_id}/{token}/messages/@original`` to put its
answer in place of "thinking..." (type 5) or to edit the component's
message (type 6), or ``POST /webhooks/{application_id}/{token}`` for a new
message; within 15 minutes.  :func:`dccrelay.client.answer_interaction`
does the right one.
"""

from __future__ import annotations

from typing import Any, Callable

import orjson
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from dccrelay.gateway.rest import DiscordHTTPError
from dccrelay.waking.watch import Watch

#: seconds a matching interaction may take to reach the bot before the
#: relay defers it
DEFER_AFTER = 2.0

#: Discord's deadline for the first answer, in seconds
DISCORD_DEADLINE = 3.0

#: seconds an interaction token lasts
TOKEN_LIFETIME = 15 * 60.0

#: deferred interactions remembered at most (for their delivery)
MAX_DEFERRED = 1000

APPLICATION_COMMAND = 2
MESSAGE_COMPONENT = 3
MODAL_SUBMIT = 5

DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE = 5
DEFERRED_UPDATE_MESSAGE = 6

EPHEMERAL = 1 << 6

#: Discord's code for a second answer to one interaction
ALREADY_ACKNOWLEDGED = 40060


def deferred_response(interaction: dict[str, Any], ephemeral: bool) -> dict[str, Any] | None:
    """
    The deferred response that fits an interaction, or None if it cannot
    be deferred.
    """
    kind = interaction.get("type")
    if kind == MESSAGE_COMPONENT or (
        kind == MODAL_SUBMIT and isinstance(interaction.get("message"), dict)
    ):
        return {"type": DEFERRED_UPDATE_MESSAGE}
    if kind in (APPLICATION_COMMAND, MODAL_SUBMIT):
        response: dict[str, Any] = {"type": DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE}
        if ephemeral:
            response["data"] = {"flags": EPHEMERAL}
        return response
    return None


def _marker_of(response: dict[str, Any]) -> dict[str, Any]:
    """What a dispatch's ``dcc`` member says of the deferral ``response``."""
    return {
        "deferred": {
            "type": response["type"],
            "ephemeral": bool(response.get("data", {}).get("flags", 0) & EPHEMERAL),
        }
    }


class _Pending:
    __slots__ = ("interaction_id", "token", "response", "timer", "watch")

    def __init__(
        self,
        interaction_id: str,
        token: str,
        response: dict[str, Any],
        timer: IDelayedCall,
        watch: Watch,
    ) -> None:
        self.interaction_id = interaction_id
        self.token = token
        self.response = response
        self.timer = timer
        self.watch = watch


class InteractionDeferrer:
    """
    Deferred interactions for one bot.

    :param clock: for the timers.
    :param respond: ``(interaction_id, token, response)`` answers Discord's
        callback for the bot; may fail with :class:`DiscordHTTPError`.
    :param after: seconds before deferring.
    :param alias: the bot, for logs.
    :param on_change: called whenever one of the counts below changed.

    :ivar deferred: interactions the relay deferred.
    :ivar in_time: interactions the bot took before they had to be.
    :ivar failed: deferrals Discord refused or that did not go (the bot
        may still have answered in time: see ``answered_first``).
    :ivar answered_first: deferrals refused because the interaction was
        answered already (by the bot, which got it just in time).
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        respond: Callable[[str, str, dict[str, Any]], Deferred[None]],
        *,
        after: float = DEFER_AFTER,
        alias: str = "",
        on_change: Callable[[], object] = lambda: None,
    ) -> None:
        self._clock = clock
        self._respond = respond
        self._on_change = on_change
        self._after = after
        self._alias = alias
        self._pending: dict[str, _Pending] = {}
        # interaction id -> (marker bytes, when the token expires)
        self._markers: dict[str, tuple[bytes, float]] = {}
        # interaction id -> the deferral being sent now
        self._deferring: dict[str, dict[str, Any]] = {}
        self.deferred = 0
        self.in_time = 0
        self.failed = 0
        self.answered_first = 0

    def arrived(self, interaction: Any, watch: Watch, ephemeral: bool) -> None:
        """
        A matching INTERACTION_CREATE (its ``d``) is on its way to the bot.
        """
        if not isinstance(interaction, dict):
            return
        interaction_id = interaction.get("id")
        token = interaction.get("token")
        response = deferred_response(interaction, ephemeral)
        if not isinstance(interaction_id, str) or not isinstance(token, str) or response is None:
            return
        if interaction_id in self._pending:
            return
        if watch.done:
            self.in_time += 1
            self._on_change()
            return
        timer = self._clock.callLater(self._after, self._due, interaction_id)
        self._pending[interaction_id] = _Pending(interaction_id, token, response, timer, watch)
        watch.when_done(lambda _: self._taken(interaction_id))

    def claim(self, interaction_id: str) -> dict[str, Any] | None:
        """
        The bot, which has the interaction, asks to answer it itself, so
        that the relay's deferral and the bot's answer never both go to
        Discord's callback.

        :return: None when the bot may answer through the callback (the
            relay will not defer it: its timer is cancelled, or it was
            never the relay's to defer); else the deferral the relay made
            or is making, ``{"type": 5 | 6, "ephemeral": bool}``, after
            which the bot answers through the interaction's webhook.
        """
        entry = self._pending.pop(interaction_id, None)
        if entry is not None:
            if entry.timer.active():
                entry.timer.cancel()
            self.in_time += 1
            self._on_change()
            return None
        if interaction_id in self._deferring:
            return self._deferring[interaction_id]
        marker = self._markers.get(interaction_id)
        if marker is not None:
            deferred: dict[str, Any] = orjson.loads(marker[0])["deferred"]
            return deferred
        return None

    def stop(self) -> None:
        """
        Cancel every timer (the relay stops).
        """
        pending, self._pending = self._pending, {}
        for entry in pending.values():
            if entry.timer.active():
                entry.timer.cancel()

    def annotate(self, payload: bytes) -> bytes:
        """
        ``payload`` as the bot must get it: with the ``"dcc"`` member if it
        is an interaction the relay deferred, else unchanged (and not
        copied).
        """
        if not self._markers or b'"INTERACTION_CREATE"' not in payload:
            return payload
        try:
            parsed = orjson.loads(payload)
            interaction_id = parsed["d"]["id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return payload
        if not isinstance(interaction_id, str) or interaction_id not in self._markers:
            return payload
        marker = self._markers[interaction_id][0]
        start = payload.index(b"{") + 1
        return payload[:start] + b'"dcc":' + marker + b"," + payload[start:]

    def _taken(self, interaction_id: str) -> None:
        entry = self._pending.pop(interaction_id, None)
        if entry is None:
            return
        if entry.timer.active():
            entry.timer.cancel()
            self.in_time += 1
            self._on_change()

    def _due(self, interaction_id: str) -> None:
        entry = self._pending.pop(interaction_id, None)
        if entry is None or entry.watch.done:
            return
        self._deferring[interaction_id] = _marker_of(entry.response)["deferred"]
        d = self._respond(entry.interaction_id, entry.token, entry.response)
        d.addCallbacks(self._deferred, self._refused, callbackArgs=(entry,), errbackArgs=(entry,))

    def _deferred(self, _: object, entry: _Pending) -> None:
        self._deferring.pop(entry.interaction_id, None)
        self.deferred += 1
        self._on_change()
        now = self._clock.seconds()
        for stale in [i for i, (_, until) in self._markers.items() if until <= now]:
            del self._markers[stale]
        marker = _marker_of(entry.response)
        self._markers[entry.interaction_id] = (orjson.dumps(marker), now + TOKEN_LIFETIME)
        while len(self._markers) > MAX_DEFERRED:
            del self._markers[next(iter(self._markers))]
        self.log.info(
            "{alias}: deferred an interaction (type {type}) for the waking bot",
            alias=self._alias,
            type=entry.response["type"],
        )

    def _refused(self, failure: Failure, entry: _Pending) -> None:
        self._deferring.pop(entry.interaction_id, None)
        if failure.check(DiscordHTTPError):
            error: DiscordHTTPError = failure.value  # type: ignore[assignment]
            if error.code == ALREADY_ACKNOWLEDGED:
                # the bot got it just in time and answered first
                self.answered_first += 1
                self._on_change()
                return
            self.failed += 1
            self._on_change()
            self.log.info(
                "{alias}: Discord refused to defer an interaction (HTTP {status}: {message})",
                alias=self._alias,
                status=error.status,
                message=error.message,
            )
            return
        self.failed += 1
        self._on_change()
        # Our own words (a refused id or token says why, never the token) or
        # the kind of failure; never other exception text.
        why = str(failure.value) if failure.check(ValueError) else type(failure.value).__name__
        self.log.info(
            "{alias}: could not defer an interaction ({error})", alias=self._alias, error=why
        )
