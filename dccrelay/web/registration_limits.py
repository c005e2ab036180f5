"""
How often the registration API lets a client hand the relay a new bot token.

Every new token makes the relay call Discord with it (``GET /gateway/bot``),
and a bad token costs one of the node's invalid requests (401), which
Discord counts per IP address for every bot on the node: 5,000 PUTs with a
bogus token each once spent the node's whole budget, and every bot's
``GET /gateway/bot`` was refused for ten minutes.  So creating a
registration and changing its token are limited, per client network (IPv4
/24, IPv6 /64, as failed authentications are counted) and per alias; a PUT
that keeps the token (other settings, re-enabling) is not.  Over a limit,
the answer is 429 with ``Retry-After`` and nothing is changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime

from dccrelay.web.responses import HTTPError
from dccrelay.web.throttle import EventLimiter


@dataclass(frozen=True)
class RegistrationRates:
    """
    The operator's limits on new tokens; each bucket allows ``burst`` at
    once, then one more every ``refill`` seconds.
    """

    #: new registrations and token changes from one client network
    client_burst: int = 10
    client_refill: float = 360.0
    #: token changes (and creations) of one alias
    alias_burst: int = 3
    alias_refill: float = 600.0


class RegistrationLimits:
    """
    The buckets of new tokens per client network and per alias.
    """

    def __init__(self, clock: IReactorTime, rates: RegistrationRates = RegistrationRates()) -> None:
        self.rates = rates
        self._clients = EventLimiter(clock, burst=rates.client_burst, refill=rates.client_refill)
        self._aliases = EventLimiter(
            clock, burst=rates.alias_burst, refill=rates.alias_refill, key=lambda alias: alias
        )

    def new_token(self, host: str, alias: str) -> None:
        """
        Count a PUT that hands the relay a token it did not use for
        ``alias``: a creation or a token change.

        :raise HTTPError: 429 with ``Retry-After`` if the client's network or
            the alias is over its limit; then nothing is counted.
        """
        wait = self._clients.retry_after(host)
        if wait is not None:
            raise _too_many(
                wait,
                "too many new registrations and token changes from your network "
                f"(at most {self.rates.client_burst} at once, then one every "
                f"{self.rates.client_refill:g} s): each makes the relay call Discord "
                "with the token",
            )
        wait = self._aliases.retry_after(alias)
        if wait is not None:
            raise _too_many(
                wait,
                f"too many token changes for {alias!r} (at most {self.rates.alias_burst} "
                f"at once, then one every {self.rates.alias_refill:g} s): each makes the "
                "relay call Discord with the token",
            )
        self._clients.count(host)
        self._aliases.count(alias)


def _too_many(wait: int, why: str) -> HTTPError:
    return HTTPError(
        429, f"{why}; try again in {wait} s",
        headers={b"Retry-After": str(wait).encode("ascii")},
    )
