"""
Checking the relay's webhook deliveries, from any web framework: the
verifier is :mod:`dccrelay_client.webhook` (the asyncio client
distribution, one copy of the logic); this module lets it take Twisted's
``Headers`` as well.

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

from typing import Any, Union

from twisted.web.http_headers import Headers

from dccrelay_client.webhook import HeadersLike as _PlainHeaders
from dccrelay_client.webhook import WebhookVerificationError
from dccrelay_client.webhook import verify_webhook as _verify

#: a plain mapping, ``(name, value)`` pairs, or Twisted's ``Headers``
HeadersLike = Union[_PlainHeaders, Headers]

__all__ = ["HeadersLike", "WebhookVerificationError", "verify_webhook"]


def verify_webhook(headers: HeadersLike, body: bytes | str, secret: str) -> Any:
    """
    Check that a webhook delivery comes from the relay, and parse it (see
    :func:`dccrelay_client.webhook.verify_webhook`).

    :raise WebhookVerificationError: saying what is wrong.
    """
    if isinstance(headers, Headers):
        headers = [(name, value) for name, values in headers.getAllRawHeaders() for value in values]
    return _verify(headers, body, secret)
