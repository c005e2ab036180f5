"""
Answering interactions behind a relay that may have deferred them.

A bot registered with ``deferInteractions`` may get an INTERACTION_CREATE
that the relay already answered for it (it was asleep; Discord allows 3 s),
with a deferred response: the payload then begins with
``{"dcc":{"deferred":{"type":5|6,"ephemeral":...}},...`` and the bot must
answer through the interaction's webhook instead of its callback (see
docs/waking.rst, "Deferred interactions").  :func:`answer_interaction` does
the right thing either way::

    def on_dispatch(payload: bytes) -> Deferred[None] | None:
        event = json.loads(payload)
        if event["t"] == "INTERACTION_CREATE":
            return answer_interaction(event, {"content": "Chips are on me."})
        return None

and falls back to the webhook when the callback says the interaction was
acknowledged already (the relay deferred it while the bot was getting it).
"""

from __future__ import annotations

from typing import Any

import orjson
import treq
from treq.client import HTTPClient
from twisted.internet.defer import Deferred

from dccrelay import __version__
from dccrelay_client.interactions import (
    ALREADY_ACKNOWLEDGED,
    Deferral,
    _event,
    after_deferral,
    deferral,
    reply_route,
)

__all__ = [
    "ALREADY_ACKNOWLEDGED",
    "Deferral",
    "InteractionError",
    "answer_interaction",
    "deferral",
    "reply_route",
]

#: Discord's REST base
DISCORD_API = "https://discord.com/api/v10"

USER_AGENT = f"DiscordBot (dccrelay-client, {__version__})"

#: seconds before a call to Discord gives up
TIMEOUT = 10.0


class InteractionError(Exception):
    """
    Discord refused an answer to an interaction.

    :ivar status: the HTTP status.
    :ivar code: Discord's JSON error code, if any.
    """

    def __init__(self, status: int, code: int | None, message: str) -> None:
        super().__init__(f"Discord answered HTTP {status}: {message}")
        self.status = status
        self.code = code


def answer_interaction(
    payload: bytes | dict[str, Any],
    message: dict[str, Any],
    *,
    update: bool = False,
    http: HTTPClient | None = None,
    api_base: str = DISCORD_API,
) -> Deferred[None]:
    """
    Answer the interaction in ``payload`` with ``message``, whether or not
    the relay deferred it (see :func:`reply_route`).  If the callback is
    refused because the interaction was acknowledged already (40060: the
    relay deferred it while the bot was receiving it), answer through the
    webhook instead.

    :return: fires once Discord took the answer, or fails with
        :class:`InteractionError`.
    """
    return Deferred.fromCoroutine(_answer(_event(payload), message, update, http, api_base))


async def _answer(
    event: dict[str, Any],
    message: dict[str, Any],
    update: bool,
    http: HTTPClient | None,
    api_base: str,
) -> None:
    method, path, body = reply_route(event, message, update=update)
    try:
        await _call(http, method, api_base.rstrip("/") + path, body)
    except InteractionError as e:
        if e.code != ALREADY_ACKNOWLEDGED or method != "POST" or "/callback" not in path:
            raise
        # deferred meanwhile: as the relay defers such an interaction
        method, path, body = after_deferral(event, message, update=update)
        await _call(http, method, api_base.rstrip("/") + path, body)


async def _call(http: HTTPClient | None, method: str, url: str, body: dict[str, Any]) -> None:
    client: Any = http if http is not None else treq
    response = await client.request(
        method,
        url,
        data=orjson.dumps(body),
        headers={"Content-Type": ["application/json"], "User-Agent": [USER_AGENT]},
        timeout=TIMEOUT,
    )
    content = await response.content()
    if 200 <= response.code < 300:
        return
    try:
        parsed = orjson.loads(content)
    except orjson.JSONDecodeError:
        parsed = None
    code = parsed.get("code") if isinstance(parsed, dict) else None
    text = parsed.get("message") if isinstance(parsed, dict) else None
    raise InteractionError(
        response.code, code if type(code) is int else None, str(text or "no message")[:200]
    )
