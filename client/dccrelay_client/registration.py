"""
A bot's side of the relay's registration API, on aiohttp: create or update
a registration (``PUT /relays/{alias}``), read its status, and send gateway
commands (``POST /relays/{alias}/commands``).

Every call authenticates with ``Authorization: Basic base64(secret)``, the
whole clientSecret encoded as it is.  The relay answers JSON: a status
object on success, ``{"error": ..., "field": <json pointer>}`` otherwise,
which becomes a :class:`RegistrationError`.
"""

from __future__ import annotations

import asyncio
import json
from base64 import b64encode
from typing import Any
from urllib.parse import quote

import aiohttp

from dccrelay_client import __version__

USER_AGENT = f"dccrelay-client/{__version__}"

#: seconds before a call to the relay gives up
TIMEOUT = 30.0

#: seconds a command waits for the bot's gateway session to be ready
COMMAND_PATIENCE = 30.0


class RegistrationError(Exception):
    """
    The relay refused a call, or answered something that is not JSON.

    :ivar code: the HTTP status.
    :ivar error: the relay's message, meant for a person.
    :ivar field: JSON pointer to the offending body field (``"/dst"``), ``""``
        for the body as a whole, or None when the relay named no field.
    :ivar retry_after: seconds after which trying again may work (a 429 or
        503 to a command), when the relay said.
    """

    def __init__(
        self, code: int, error: str, field: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(code, error, field)
        self.code = code
        self.error = error
        self.field = field
        self.retry_after = retry_after

    def __str__(self) -> str:
        if self.field:
            return f"{self.field}: {self.error}"
        return self.error


def registration_body(
    *,
    token: str,
    dst: str,
    client_secret: str,
    intents: int | None = None,
    criteria: Any = None,
    filter: str | None = None,
    shards: str | int | None = None,
    delivery_protocol: int | None = None,
    typing_while_waking: bool | None = None,
    defer_interactions: bool | None = None,
    wake_url: str | None = None,
    defer_ephemeral: bool | None = None,
) -> dict[str, Any]:
    """
    The JSON body of ``PUT /relays/{alias}``.

    Fields left as None are left out, so the relay applies its documented
    defaults; the first five are the prototype client's, in its order.
    """
    body: dict[str, Any] = {"token": token}
    if intents is not None:
        body["intents"] = intents
    if criteria is not None:
        body["criteria"] = criteria
    body["dst"] = dst
    body["clientSecret"] = client_secret
    optional = {
        "filter": filter,
        "shards": shards,
        "delivery": None if delivery_protocol is None else {"protocol": delivery_protocol},
        "typingWhileWaking": typing_while_waking,
        "deferInteractions": defer_interactions,
        "wakeUrl": wake_url,
        "deferEphemeral": defer_ephemeral,
    }
    body.update((name, value) for name, value in optional.items() if value is not None)
    return body


def basic_authorization(secret: str) -> str:
    """
    ``Basic base64(secret)``: the relay's and the prototype's scheme.
    """
    return "Basic " + b64encode(secret.encode("utf-8")).decode("ascii")


def _error_from(code: int, answer: Any, content: bytes) -> RegistrationError:
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        field = answer.get("field")
        retry_after = answer.get("retryAfter")
        return RegistrationError(
            code,
            answer["error"],
            field if isinstance(field, str) else None,
            float(retry_after) if isinstance(retry_after, (int, float)) else None,
        )
    # Not the relay speaking (a proxy's error page, say): show a little of it.
    snippet = content[:200].decode("utf-8", "replace").strip()
    if 200 <= code < 300:
        return RegistrationError(code, f"the relay answered HTTP {code} without a JSON object")
    described = f"the relay answered HTTP {code}"
    return RegistrationError(code, f"{described}: {snippet}" if snippet else described)


def relay_url_for(relay_url: str, alias: str, *rest: str) -> str:
    """
    ``{relay_url}/relays/{alias}[/rest...]``, keeping any path prefix of
    ``relay_url`` and percent-encoding the alias.
    """
    parts = [quote(alias, safe=""), *(quote(part, safe="") for part in rest)]
    return relay_url.rstrip("/") + "/relays/" + "/".join(parts)


class RelayAPI:
    """
    The registration API of one relay for one bot.

    :param session: the aiohttp session to call with (its owner closes it).
    """

    def __init__(
        self, session: aiohttp.ClientSession, relay_url: str, alias: str, client_secret: str
    ) -> None:
        self._session = session
        self.relay_url = relay_url
        self.alias = alias
        self._secret = client_secret

    async def register(
        self, body: dict[str, Any], *, registration_key: str | None = None
    ) -> dict[str, Any]:
        """
        ``PUT /relays/{alias}``: create or update (idempotent).  ``body`` as
        :func:`registration_body` makes it.
        """
        return await self._call("PUT", body=body, registration_key=registration_key)

    async def status(self) -> dict[str, Any]:
        """``GET /relays/{alias}``: the bot's full status and settings."""
        return await self._call("GET")

    async def guild_snapshot(self) -> dict[str, Any] | None:
        """
        ``GET /relays/{alias}/snapshot``: ``{"user", "guilds"}`` as the
        relay keeps them for the bot, or None when it keeps none.
        """
        try:
            return await self._call("GET", "snapshot")
        except RegistrationError as e:
            if e.code == 404:
                return None
            raise

    async def claim_interaction(self, interaction_id: str) -> dict[str, Any]:
        """
        ``POST /relays/{alias}/claim``: may the bot answer this interaction
        through Discord's callback?  ``{"owner": "bot"}``, or ``{"owner":
        "relay", "deferred": {"type", "ephemeral"}}`` when the relay
        deferred it (see :mod:`dccrelay_client.answers`).
        """
        return await self._call("POST", "claim", body={"interaction": interaction_id})

    async def send_command(
        self, op: int, d: dict[str, Any], *, patience: float = COMMAND_PATIENCE
    ) -> dict[str, Any]:
        """
        ``POST /relays/{alias}/commands``: op 3 (Update Presence) or 8
        (Request Guild Members) on the bot's gateway session.  Fires with
        ``{"op", "shards", "nonce"?}``.  A 503 (the gateway session is not
        ready yet) or 429 is tried again after the relay's ``retryAfter``,
        for ``patience`` seconds at most.
        """
        waited = 0.0
        while True:
            try:
                return await self._call("POST", "commands", body={"op": op, "d": d})
            except RegistrationError as e:
                if e.code not in (429, 503) or waited >= patience:
                    raise
                pause = min(max(e.retry_after or 1.0, 0.1), patience - waited)
                await asyncio.sleep(pause)
                waited += pause

    async def _call(
        self,
        method: str,
        *rest: str,
        body: dict[str, Any] | None = None,
        registration_key: str | None = None,
    ) -> dict[str, Any]:
        headers = {
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Authorization": basic_authorization(self._secret),
        }
        if registration_key is not None:
            headers["Dcc-Registration-Key"] = registration_key
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode("utf-8")
        async with self._session.request(
            method,
            relay_url_for(self.relay_url, self.alias, *rest),
            headers=headers,
            data=data,
            timeout=aiohttp.ClientTimeout(total=TIMEOUT),
            allow_redirects=False,
        ) as response:
            content = await response.read()
        try:
            answer = json.loads(content)
        except ValueError:
            answer = None
        if 200 <= response.status < 300 and isinstance(answer, dict):
            return answer
        raise _error_from(response.status, answer, content)
