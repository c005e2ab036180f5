"""
Checking the relay's webhook deliveries, from any web framework.

For an ``http(s)://`` dst the relay POSTs each batch of dispatches as JSON,
signed per the Standard Webhooks specification: headers ``webhook-id``,
``webhook-timestamp`` (unix seconds) and ``webhook-signature`` (``v1,`` and
the base64 HMAC-SHA256 of ``id.timestamp.body``), keyed with the UTF-8 bytes
of the bot's clientSecret.  Verification is the specification's reference
library (``standardwebhooks``), so this accepts exactly what its other
published verifiers accept, including its ±5 minute replay window.

Answer 2xx only once the batch is safely handled: anything else makes the
relay retry, in order.  The same ``webhook-id`` on a retry is the same
batch, so a bot that keeps recent ids can drop duplicates.

With Flask, say::

    @app.post("/dcc")
    def dcc():
        try:
            batch = verify_webhook(request.headers, request.get_data(), SECRET)
        except WebhookVerificationError as e:
            return str(e), 400
        for dispatch in batch["dispatches"]:
            ...
        return "", 204
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Union

from standardwebhooks.webhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as _ReferenceError

_NAMES = ("webhook-id", "webhook-timestamp", "webhook-signature")

#: What :func:`verify_webhook` takes as headers: a plain mapping (str or
#: bytes names; a value may be a list, as Twisted and WSGI adapters give
#: them; aiohttp's multidicts too), or ``(name, value)`` pairs (ASGI).
HeadersLike = Union[Mapping[Any, Any], Iterable[tuple[Any, Any]]]


class WebhookVerificationError(ValueError):
    """
    A delivery that must not be trusted: a header missing or malformed, a
    timestamp outside the replay window, or no signature that matches.
    Answer it with HTTP 400 (or 401); the message says which.
    """


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _webhook_headers(headers: HeadersLike) -> dict[str, str]:
    """
    The three Standard Webhooks headers, names lower-cased.  A header sent
    more than once keeps its first value, except ``webhook-signature``,
    whose values are joined with spaces as the specification separates
    several signatures.
    """
    pairs: Iterable[tuple[Any, Any]]
    if isinstance(headers, Mapping):
        # items(), not keys: a multidict repeats a name once per value
        pairs = headers.items()
    else:
        pairs = headers
    found: dict[str, list[str]] = {}
    for name, value in pairs:
        key = _text(name).lower()
        if key not in _NAMES:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        found.setdefault(key, []).extend(_text(v).strip() for v in values)
    selected = {
        key: (" ".join(values) if key == "webhook-signature" else values[0])
        for key, values in found.items()
        if values
    }
    missing = [name for name in _NAMES if not selected.get(name)]
    if missing:
        raise WebhookVerificationError(
            "not a signed dccrelay delivery: missing " + ", ".join(missing) + " header"
            + ("s" if len(missing) > 1 else "")
        )
    return selected


def _well_formed_signatures(header: str) -> str:
    # The reference library assumes every space-separated entry is
    # "version,signature" and fails with a bare ValueError otherwise; such
    # an entry can never match, so it is left out here.
    entries = [entry for entry in header.split() if "," in entry]
    if not entries:
        raise WebhookVerificationError("webhook-signature has no version,signature entry")
    return " ".join(entries)


def verify_webhook(headers: HeadersLike, body: bytes | str, secret: str) -> Any:
    """
    Check that a webhook delivery comes from the relay, and parse it.

    :param headers: the request's headers, in whatever shape the framework
        has them (see :data:`HeadersLike`).
    :param body: the request body exactly as received; parsing and
        re-serialising it first would break the signature.
    :param secret: the bot's clientSecret, as registered.
    :return: the parsed JSON batch, ``{"type": "dispatches", "dispatches":
        [...], "ids": [...]}``: each dispatch a gateway payload as Discord
        sent it (``{"op": 0, "t": ..., "s": ..., "d": {...}}``), and ``ids``
        their relay ids in the same order, increasing (a bot that keeps the
        highest id it handled can drop redelivered ones).
    :raise WebhookVerificationError: saying what is wrong.
    """
    selected = _webhook_headers(headers)
    selected["webhook-signature"] = _well_formed_signatures(selected["webhook-signature"])
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise WebhookVerificationError("the body is not UTF-8 JSON") from None
    else:
        text = body
    if not secret:
        raise WebhookVerificationError("the clientSecret to verify with is empty")
    try:
        # Keyed with the secret's bytes, not a "whsec_" base64 secret: that
        # is how the relay signs (a str here would be base64-decoded).
        Webhook(secret.encode("utf-8")).verify(text, selected, json_parse=False)
    except _ReferenceError as e:
        raise WebhookVerificationError(_explain(str(e))) from None
    except ValueError:
        # a signature that is not base64, a timestamp that is not a number
        raise WebhookVerificationError("malformed webhook-signature header") from None
    try:
        return json.loads(text)
    except ValueError:
        raise WebhookVerificationError("the signed body is not JSON") from None


def _explain(reference_message: str) -> str:
    explained = {
        "Message timestamp too old": (
            "webhook-timestamp is more than 5 minutes old: a replayed delivery, or this "
            "host's clock is wrong"
        ),
        "Message timestamp too new": (
            "webhook-timestamp is more than 5 minutes in the future: this host's or the "
            "relay's clock is wrong"
        ),
        "Invalid Signature Headers": "webhook-timestamp is not a unix time in seconds",
        "No matching signature found": (
            "no webhook-signature matches: the body was changed, or the relay signs with "
            "another clientSecret"
        ),
    }
    return explained.get(reference_message, reference_message)
