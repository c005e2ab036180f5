"""
A bot's side of the relay's registration API (DESIGN.md, "Registration
API"), over treq.

Every call authenticates with ``Authorization: Basic base64(secret)``, the
whole clientSecret encoded as it is, as the prototype's client did.  The
relay accepts only secrets shaped ``user:password``, so that ``curl -u`` takes
them whole too.  The relay answers JSON: a status
object on success, ``{"error": ..., "field": <json pointer>}`` otherwise,
which becomes a :class:`RegistrationError`.

::

    d = register(
        "https://relay.example", "sample_cookout",
        token=os.environ["DISCORD_TOKEN"],
        dst="wss://bot.example/dcc/v1/sample_cookout",
        client_secret=os.environ["DCC_SECRET"],
        criteria={"t": "MESSAGE_CREATE", "d.content": {"$regex": "^cookout\\\\b"}},
    )
    d.addCallback(lambda status: print(status["enabled"]))
"""

from __future__ import annotations

import json
from typing import Any

import treq
from hyperlink import DecodedURL
from treq.client import HTTPClient
from twisted.internet.defer import Deferred

from dccrelay import __version__
from dccrelay_client.registration import (
    RegistrationError,
    _error_from,
    basic_authorization,
    registration_body,
)

__all__ = [
    "RegistrationError",
    "basic_authorization",
    "delete",
    "disable",
    "put_registration",
    "register",
    "registration_body",
    "relay_url_for",
    "send_command",
    "status",
]

USER_AGENT = f"dccrelay-client/{__version__}"

#: seconds before a call to the relay gives up
TIMEOUT = 30.0


def register(
    relay_url: str,
    alias: str,
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
    current_secret: str | None = None,
    registration_key: str | None = None,
    http: HTTPClient | None = None,
) -> Deferred[dict[str, Any]]:
    """
    Create or update the registration of ``alias`` (``PUT
    /relays/{alias}``).  Idempotent: call it at every start-up.

    :param relay_url: the relay's base URL, e.g. ``https://relay.example``.
    :param client_secret: the secret the relay will present to the bot from
        now on.
    :param current_secret: the secret the relay has now, when it differs
        from ``client_secret``: that is how a secret is rotated.  Default:
        ``client_secret``.
    :param registration_key: the relay's registration key, for a relay
        whose operator requires one to create bots (sent as
        ``Dcc-Registration-Key``, beside the Basic credentials).
    :param http: the treq client to use; default: treq's own.
    :return: fires with the relay's full status of the bot (token masked),
        or fails with :class:`RegistrationError`.

    The other keyword arguments are the body's fields (see
    :func:`registration_body`).
    """
    body = registration_body(
        token=token,
        dst=dst,
        client_secret=client_secret,
        intents=intents,
        criteria=criteria,
        filter=filter,
        shards=shards,
        delivery_protocol=delivery_protocol,
        typing_while_waking=typing_while_waking,
        defer_interactions=defer_interactions,
        wake_url=wake_url,
        defer_ephemeral=defer_ephemeral,
    )
    return put_registration(
        relay_url, alias, body, current_secret=current_secret,
        registration_key=registration_key, http=http,
    )


def put_registration(
    relay_url: str,
    alias: str,
    body: dict[str, Any],
    *,
    current_secret: str | None = None,
    registration_key: str | None = None,
    http: HTTPClient | None = None,
) -> Deferred[dict[str, Any]]:
    """
    ``PUT /relays/{alias}`` with a body already built (from a file, say).

    Authenticates with ``current_secret``, else the body's ``clientSecret``.
    """
    secret = current_secret if current_secret is not None else body.get("clientSecret")
    return _call(
        http, "PUT", relay_url, alias, secret=secret if isinstance(secret, str) else None,
        body=body, registration_key=registration_key,
    )


def status(
    relay_url: str, alias: str, client_secret: str, *, http: HTTPClient | None = None
) -> Deferred[dict[str, Any]]:
    """
    ``GET /relays/{alias}``: the bot's full status and settings.
    """
    return _call(http, "GET", relay_url, alias, secret=client_secret)


def disable(
    relay_url: str, alias: str, client_secret: str, *, http: HTTPClient | None = None
) -> Deferred[dict[str, Any]]:
    """
    ``POST /relays/{alias}/disable``: end the bot's gateway session until
    the next :func:`register`.  Fires with the status after disabling.
    """
    return _call(http, "POST", relay_url, alias, "disable", secret=client_secret)


def delete(
    relay_url: str, alias: str, client_secret: str, *, http: HTTPClient | None = None
) -> Deferred[dict[str, Any]]:
    """
    ``DELETE /relays/{alias}``: stop and forget the bot.  Fires with
    ``{"alias": ..., "deleted": bool}``; ``deleted`` is false when the relay
    did not know the alias (not an error: deleting is idempotent).
    """
    return _call(http, "DELETE", relay_url, alias, secret=client_secret)


def send_command(
    relay_url: str,
    alias: str,
    client_secret: str,
    op: int,
    d: dict[str, Any],
    *,
    http: HTTPClient | None = None,
) -> Deferred[dict[str, Any]]:
    """
    ``POST /relays/{alias}/commands``: send a gateway command on the bot's
    gateway session (docs/waking.rst, "Talking back").

    :param op: 3 (Update Presence) or 8 (Request Guild Members).
    :param d: the command's data, as Discord documents it.
    :return: fires with ``{"op", "shards", "nonce"?}`` (an op 8's
        ``GUILD_MEMBERS_CHUNK`` answers carry that nonce), or fails with
        :class:`RegistrationError` (its ``code`` 503 or 429: try again
        later).
    """
    return _call(
        http, "POST", relay_url, alias, "commands", secret=client_secret,
        body={"op": op, "d": d},
    )


def relay_url_for(relay_url: str, alias: str, *rest: str) -> str:
    """
    ``{relay_url}/relays/{alias}[/rest...]``, keeping any path prefix of
    ``relay_url`` and percent-encoding the alias, so that a malformed alias
    reaches the relay (which explains what is wrong with it) rather than
    some other path.
    """
    url = DecodedURL.from_text(relay_url.rstrip("/"))
    return str(url.child("relays", alias, *rest).to_uri())


async def _request(
    http: HTTPClient | None,
    method: str,
    url: str,
    secret: str | None,
    body: dict[str, Any] | None,
    registration_key: str | None = None,
) -> dict[str, Any]:
    headers = {"User-Agent": [USER_AGENT], "Accept": ["application/json"]}
    if secret is not None:
        headers["Authorization"] = [basic_authorization(secret)]
    if registration_key is not None:
        headers["Dcc-Registration-Key"] = [registration_key]
    data = None
    if body is not None:
        headers["Content-Type"] = ["application/json"]
        data = json.dumps(body).encode("utf-8")
    client: Any = http if http is not None else treq
    response = await client.request(method, url, headers=headers, data=data, timeout=TIMEOUT)
    content = await response.content()
    try:
        answer = json.loads(content)
    except ValueError:
        answer = None
    if 200 <= response.code < 300 and isinstance(answer, dict):
        return answer
    raise _error_from(response.code, answer, content)


def _call(
    http: HTTPClient | None,
    method: str,
    relay_url: str,
    alias: str,
    *rest: str,
    secret: str | None,
    body: dict[str, Any] | None = None,
    registration_key: str | None = None,
) -> Deferred[dict[str, Any]]:
    url = relay_url_for(relay_url, alias, *rest)
    return Deferred.fromCoroutine(_request(http, method, url, secret, body, registration_key))
