"""
HTTP Basic authentication with a bot's clientSecret.

The prototype's client sends ``Authorization: Basic base64(clientSecret)``,
with the secret itself shaped ``user:password``; the whole decoded value is
compared with the stored secret, in constant time.
"""

from __future__ import annotations

import binascii
import hmac
from base64 import b64decode

from twisted.web.server import Request

from dccrelay.web.responses import HTTPError

CHALLENGE = {b"WWW-Authenticate": b'Basic realm="dccrelay", charset="UTF-8"'}


def presented_credentials(request: Request, scheme: bytes) -> bytes | None:
    """
    What follows ``scheme`` (lower case, such as ``b"basic"``) in the
    ``Authorization`` header of ``request``, if it uses that scheme.
    """
    header = request.getHeader(b"authorization")
    if not header:
        return None
    presented, _, credentials = header.partition(b" ")
    if presented.lower() != scheme:
        return None
    return credentials.strip()


def presented_secret(request: Request) -> bytes | None:
    """
    The decoded Basic credentials of ``request``, if any.
    """
    encoded = presented_credentials(request, b"basic")
    if encoded is None:
        return None
    try:
        return b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None


def require_secret(request: Request, secret: str) -> None:
    """
    :raise HTTPError: 401, unless ``request`` presents ``secret``.
    """
    presented = presented_secret(request)
    if presented is None:
        raise HTTPError(
            401, "this needs the bot's clientSecret (the whole user:password string) as "
                "HTTP Basic credentials, as with curl -u \"$DCC_SECRET\"",
            headers=CHALLENGE,
        )
    if not hmac.compare_digest(presented, secret.encode("utf-8")):
        raise HTTPError(401, "wrong clientSecret for this alias", headers=CHALLENGE)
