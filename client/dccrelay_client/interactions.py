"""
Answering interactions behind a relay that may have deferred them.

A bot registered with ``deferInteractions`` may get an INTERACTION_CREATE
that the relay already answered for it (it was asleep; Discord allows 3 s),
with a deferred response: the payload then begins with
``{"dcc":{"deferred":{"type":5|6,"ephemeral":...}},...`` and the bot must
answer through the interaction's webhook instead of its callback.  One race
remains: a dispatch already on its way when the relay deferred it arrives
without the marker, and the bot's callback gets 40060; the answer then goes
the webhook's way too (:func:`after_deferral`).

These functions only decide where an answer goes; the HTTP call is the
caller's (treq in :mod:`dccrelay.client.interactions`, aiohttp or the bot's
framework here).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

CHANNEL_MESSAGE_WITH_SOURCE = 4
DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE = 5
DEFERRED_UPDATE_MESSAGE = 6
UPDATE_MESSAGE = 7

APPLICATION_COMMAND = 2
MESSAGE_COMPONENT = 3
MODAL_SUBMIT = 5

#: Discord's code for a second answer to one interaction
ALREADY_ACKNOWLEDGED = 40060

#: Discord's code for a callback after its 3 s (the relay may have
#: deferred the interaction before them)
UNKNOWN_INTERACTION = 10062

#: the flag of a message only its person sees
EPHEMERAL = 1 << 6


@dataclass(frozen=True)
class Deferral:
    """
    How the relay deferred an interaction.

    :ivar type: 5 (DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE: the person sees
        "thinking...") or 6 (DEFERRED_UPDATE_MESSAGE: a component's
        message will be edited).
    :ivar ephemeral: whether the "thinking..." shows only to the person.
    """

    type: int
    ephemeral: bool


def _event(payload: bytes | str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(payload, (bytes, bytearray, str)):
        parsed = json.loads(payload)
        if not isinstance(parsed, dict):
            raise ValueError("not a gateway payload")
        return parsed
    return payload


def deferral(payload: bytes | str | dict[str, Any]) -> Deferral | None:
    """
    How the relay deferred the interaction in ``payload`` (the gateway
    payload, bytes or parsed), or None if it did not.
    """
    marker = _event(payload).get("dcc")
    deferred = marker.get("deferred") if isinstance(marker, dict) else None
    if not isinstance(deferred, dict) or deferred.get("type") not in (5, 6):
        return None
    return Deferral(int(deferred["type"]), bool(deferred.get("ephemeral")))


def relay_deferral_for(interaction: dict[str, Any]) -> Deferral:
    """
    The deferral the relay gives an interaction (``d`` of its
    INTERACTION_CREATE) when it defers it: 6 for a component, or a modal
    from one; 5 otherwise.  What a 40060 on the callback means happened.
    """
    kind = interaction.get("type")
    from_message = kind == MESSAGE_COMPONENT or (
        kind == MODAL_SUBMIT and interaction.get("message") is not None
    )
    return Deferral(DEFERRED_UPDATE_MESSAGE if from_message else 5, False)


def followup_route(
    interaction: dict[str, Any], how: Deferral, response_type: int, data: dict[str, Any]
) -> tuple[str, str, dict[str, Any]] | None:
    """
    Where an interaction response (``{"type": response_type, "data":
    data}``, as for the callback) goes once the relay deferred it with
    ``how``: the method, the path under the API base and the body, or
    None when the deferral already is that answer (a deferral of either
    kind).

    - a message (4) after "thinking..." (5) replaces it: edit the original;
      after a deferred update (6) it is a follow-up message;
    - an update (7) edits the original, the component's message.

    :raise ValueError: for a response that cannot follow a deferral (a
        modal, autocomplete results).
    """
    webhook = f"/webhooks/{interaction['application_id']}/{interaction['token']}"
    if response_type in (DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE, DEFERRED_UPDATE_MESSAGE):
        return None
    if response_type == CHANNEL_MESSAGE_WITH_SOURCE:
        if how.type == DEFERRED_UPDATE_MESSAGE:
            return "POST", webhook, data
        return "PATCH", webhook + "/messages/@original", data
    if response_type == UPDATE_MESSAGE:
        return "PATCH", webhook + "/messages/@original", data
    raise ValueError(
        f"an interaction response of type {response_type} cannot follow the relay's "
        "deferral: answer within the relay's --defer-after, or register without "
        "deferInteractions"
    )


def reply_route(
    payload: bytes | str | dict[str, Any], message: dict[str, Any], *, update: bool = False
) -> tuple[str, str, dict[str, Any]]:
    """
    How to answer the interaction in ``payload`` with ``message``: the
    method, the path under the API base and the body.

    - not deferred: its callback, ``CHANNEL_MESSAGE_WITH_SOURCE`` (or
      ``UPDATE_MESSAGE`` with ``update``, for a component);
    - deferred: see :func:`followup_route`.

    :param message: a message body (``content``, ``embeds``, ``flags``...).
    """
    event = _event(payload)
    d = event["d"]
    kind = UPDATE_MESSAGE if update else CHANNEL_MESSAGE_WITH_SOURCE
    how = deferral(event)
    if how is None:
        return (
            "POST",
            f"/interactions/{d['id']}/{d['token']}/callback",
            {"type": kind, "data": message},
        )
    route = followup_route(d, how, kind, message)
    assert route is not None  # a message or an update is never a deferral
    return route


def after_deferral(
    payload: bytes | str | dict[str, Any], message: dict[str, Any], *, update: bool = False
) -> tuple[str, str, dict[str, Any]]:
    """
    Where the answer goes when the callback said 40060: the relay deferred
    the interaction while the bot was receiving it, as it defers such an
    interaction.
    """
    d = _event(payload)["d"]
    kind = UPDATE_MESSAGE if update else CHANNEL_MESSAGE_WITH_SOURCE
    route = followup_route(d, relay_deferral_for(d), kind, message)
    assert route is not None
    return route
