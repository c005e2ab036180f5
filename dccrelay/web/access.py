"""
Who may do what with the registration API.

- A bot's owner proves itself with the bot's clientSecret as HTTP Basic
  credentials (:mod:`dccrelay.web.auth`): update, status, disable, delete.
- If the operator set a *registration key*, creating a relay needs it,
  either as ``Authorization: Bearer <key>`` or, so that a client can send
  its Basic credentials in the same idempotent ``PUT``, as
  ``Dcc-Registration-Key: <key>``.  Without one anyone may register.
- If the operator set an *operator key*, ``Authorization: Bearer <key>``
  sees every bot's full status (``GET /relays`` and ``GET
  /relays/{alias}``) and may disable or delete any bot; it can also create
  relays.  It cannot change a bot's settings: only the owner can.

Keys are compared in constant time (as digests, so their length does not
show either).  Every wrong credential counts against the client's address
in a :class:`~dccrelay.web.throttle.FailedAuthLimiter`; over its limit the
client gets 429 with ``Retry-After`` before anything it presents is
checked.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

from twisted.web.server import Request

from dccrelay.web.auth import CHALLENGE, presented_credentials, presented_secret
from dccrelay.web.responses import HTTPError
from dccrelay.web.registration_limits import RegistrationLimits
from dccrelay.web.throttle import AliasGuessLimiter, FailedAuthLimiter

#: the header that may carry the registration key next to Basic credentials
REGISTRATION_KEY_HEADER = b"dcc-registration-key"

BEARER_CHALLENGE = {b"WWW-Authenticate": b'Bearer realm="dccrelay"'}

Role = Literal["owner", "operator"]


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def _same(presented: bytes, expected: bytes | None) -> bool:
    if expected is None:
        return False
    return hmac.compare_digest(_digest(presented), _digest(expected))


def presented_bearer(request: Request) -> bytes | None:
    """
    The token of ``Authorization: Bearer <token>``, if that is what
    ``request`` presents.
    """
    return presented_credentials(request, b"bearer")


def _client_host(request: Request) -> str:
    address = request.getClientAddress()
    return str(getattr(address, "host", None) or address)


class Access:
    """
    The API's access rules for one node.

    :param registration_key: needed to create a relay, or ``None`` if
        anyone may.
    :param operator_key: the operator's key, or ``None`` for no operator
        access over HTTP.
    :param limiter: counts failed attempts per client; ``None`` counts
        nothing (for tests that do not care).
    :param registrations: limits new tokens per client and per alias;
        ``None`` limits nothing (for tests that do not care).
    :param guesses: counts failed attempts per alias, from every client;
        ``None`` counts nothing.
    """

    def __init__(
        self,
        *,
        registration_key: str | None = None,
        operator_key: str | None = None,
        limiter: FailedAuthLimiter | None = None,
        registrations: RegistrationLimits | None = None,
        guesses: AliasGuessLimiter | None = None,
    ) -> None:
        self._registration_key = registration_key.encode("utf-8") if registration_key else None
        self._operator_key = operator_key.encode("utf-8") if operator_key else None
        self.limiter = limiter
        self.registrations = registrations
        self.guesses = guesses

    @property
    def registration_key_required(self) -> bool:
        """
        Whether creating a relay needs the registration key.
        """
        return self._registration_key is not None

    # -- throttling -------------------------------------------------------

    def _check_throttle(self, request: Request) -> None:
        if self.limiter is None:
            return
        wait = self.limiter.retry_after(_client_host(request))
        if wait is not None:
            raise HTTPError(
                429,
                "too many failed authentication attempts from your address; "
                f"try again in {wait} s",
                headers={b"Retry-After": str(wait).encode("ascii")},
            )

    def _check_alias_throttle(self, request: Request, alias: str | None) -> None:
        if self.guesses is None or alias is None:
            return
        wait = self.guesses.retry_after(alias, _client_host(request))
        if wait is not None:
            raise HTTPError(
                429,
                f"too many failed authentications for {alias!r} lately, from every "
                "network together (networks that authenticated for it before are "
                f"not held back); try again in {wait} s",
                headers={b"Retry-After": str(wait).encode("ascii")},
            )

    def _fail(
        self,
        request: Request,
        message: str,
        challenge: dict[bytes, bytes],
        alias: str | None = None,
    ) -> HTTPError:
        if self.limiter is not None:
            self.limiter.failed(_client_host(request))
        if self.guesses is not None and alias is not None:
            self.guesses.failed(alias)
        return HTTPError(401, message, headers=challenge)

    # -- the rules ----------------------------------------------------------

    def require_owner(
        self,
        request: Request,
        secret: str,
        *,
        operator_may: bool = True,
        alias: str | None = None,
    ) -> Role:
        """
        Let ``request`` act on one bot: with its clientSecret as Basic
        credentials, or (if ``operator_may``) with the operator key.

        :param alias: the bot's, for the failed attempts counted per alias.

        :return: who it is.
        :raise HTTPError: 401 for missing or wrong credentials, 429 while
            the client's address has failed too often.
        """
        header = request.getHeader(b"authorization")
        if not header:
            raise HTTPError(
                401,
                "this needs the bot's clientSecret (the whole user:password string) as "
                "HTTP Basic credentials, as with curl -u \"$DCC_SECRET\"",
                headers=CHALLENGE,
            )
        self._check_throttle(request)
        self._check_alias_throttle(request, alias)
        bearer = presented_bearer(request)
        if bearer is not None:
            if operator_may and _same(bearer, self._operator_key):
                return "operator"
            if operator_may:
                raise self._fail(request, "wrong operator key", BEARER_CHALLENGE)
            raise self._fail(
                request,
                "only the bot's owner can do this: use its clientSecret as HTTP "
                "Basic credentials",
                CHALLENGE,
            )
        presented = presented_secret(request)
        if presented is None:
            raise self._fail(
                request,
                "Authorization must be Basic base64(clientSecret) (or Bearer with the "
                "operator key)",
                CHALLENGE,
            )
        if not hmac.compare_digest(presented, secret.encode("utf-8")):
            raise self._fail(request, "wrong clientSecret for this alias", CHALLENGE, alias)
        if self.guesses is not None and alias is not None:
            self.guesses.succeeded(alias, _client_host(request))
        return "owner"

    def require_registrant(self, request: Request) -> None:
        """
        Let ``request`` create a relay: anyone, unless a registration key is
        set; then the registration key or the operator key.

        :raise HTTPError: 401 or 429, as :meth:`require_owner`.
        """
        if self._registration_key is None:
            return
        presented = request.getHeader(REGISTRATION_KEY_HEADER)
        key = presented.strip() if presented else presented_bearer(request)
        if key is None:
            raise HTTPError(
                401,
                "creating a relay needs this relay's registration key, as "
                "'Authorization: Bearer <key>' or a 'Dcc-Registration-Key: <key>' "
                "header; its operator gives it out",
                headers=BEARER_CHALLENGE,
            )
        self._check_throttle(request)
        if _same(key, self._registration_key) or _same(key, self._operator_key):
            return
        raise self._fail(request, "wrong registration key", BEARER_CHALLENGE)

    def count_new_token(self, request: Request, alias: str) -> None:
        """
        ``request`` creates ``alias`` or changes its token.  The operator's
        key is not limited: the limits keep strangers from spending the
        node's Discord budget, and the operator provisions the node's bots.

        :raise HTTPError: 429 with ``Retry-After`` over the limits of
            :mod:`dccrelay.web.registration_limits`.
        """
        if self.registrations is None:
            return
        bearer = presented_bearer(request)
        if bearer is not None and _same(bearer, self._operator_key):
            return
        self.registrations.new_token(_client_host(request), alias)

    def is_operator(self, request: Request) -> bool:
        """
        Whether ``request`` presents the operator key.  A request with no
        Bearer token is simply not the operator (public access); a wrong
        token is a failed attempt.

        :raise HTTPError: 401 for a wrong token, 429 while throttled.
        """
        bearer = presented_bearer(request)
        if bearer is None:
            return False
        self._check_throttle(request)
        if _same(bearer, self._operator_key):
            return True
        raise self._fail(request, "wrong operator key", BEARER_CHALLENGE)
