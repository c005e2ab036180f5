"""
Failed authentication attempts, limited per client address.

Each address has a bucket of :attr:`FailedAuthLimiter.burst` failures that
refills at one failure per :attr:`FailedAuthLimiter.refill` seconds: a
person who mistypes a secret a few times notices nothing, while guessing
runs at a few attempts a minute at most.  An address whose bucket is empty
is answered 429 with ``Retry-After`` before its credentials are even
looked at.

Memory is bounded: at most :attr:`FailedAuthLimiter.max_clients` addresses
are remembered (the least recently failing are forgotten first), and an
address whose bucket has refilled is forgotten as soon as it is seen.
Clients are counted per network, not per address: IPv4 per /24 and IPv6
per /64, the blocks one party usually holds, so that hopping between its
addresses (60 IPv4 addresses of one /24 once made 600 guesses in a second)
does not multiply the guesses.  Neighbours in one /24 share a bucket: a
person who mistypes still has the burst.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from typing import Callable

from twisted.internet.interfaces import IReactorTime


def client_key(host: str) -> str:
    """
    The unit failures are counted in: an IPv4 /24, an IPv6 /64, or the
    text itself for anything else (a UNIX socket's peer).
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is None:
            return str(ipaddress.IPv6Network((address, 64), strict=False))
        address = address.ipv4_mapped
    return str(ipaddress.IPv4Network((address, 24), strict=False))


class EventLimiter:
    """
    A token bucket of events per subject (a client's address, an alias).

    :param clock: where the time comes from.
    :param burst: events allowed in a row before the subject must wait.
    :param refill: seconds for one more event to be allowed.
    :param max_clients: subjects remembered at most.
    :param key: the unit a subject is counted in (by default a client's
        network, :func:`client_key`).
    """

    def __init__(
        self,
        clock: IReactorTime,
        *,
        burst: int = 10,
        refill: float = 6.0,
        max_clients: int = 10_000,
        key: Callable[[str], str] = client_key,
    ) -> None:
        self._clock = clock
        self.burst = burst
        self.refill = refill
        self.max_clients = max_clients
        self._key = key
        # key -> (failures still allowed, when that was computed)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _allowance(self, key: str, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            return float(self.burst)
        allowed, then = bucket
        allowed = min(float(self.burst), allowed + max(0.0, now - then) / self.refill)
        if allowed >= self.burst:
            del self._buckets[key]
        return allowed

    def retry_after(self, host: str) -> int | None:
        """
        :return: whole seconds ``host`` must wait before its credentials
            are checked again, or ``None`` if it may try now.
        """
        now = self._clock.seconds()
        allowed = self._allowance(self._key(host), now)
        if allowed >= 1.0:
            return None
        return max(1, math.ceil((1.0 - allowed) * self.refill))

    def count(self, host: str) -> None:
        """
        Count one event of ``host``.
        """
        key = self._key(host)
        now = self._clock.seconds()
        allowed = self._allowance(key, now)
        self._buckets[key] = (max(0.0, allowed - 1.0), now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)


class FailedAuthLimiter(EventLimiter):
    """
    Failed authentication attempts per client network.
    """

    def failed(self, host: str) -> None:
        """
        Count one failed attempt by ``host``.
        """
        self.count(host)


class AliasGuessLimiter:
    """
    Failed authentications per alias, from every network together, so that
    guesses at one bot's clientSecret spread over many networks (each within
    its own :class:`FailedAuthLimiter` bucket) still run at a few a minute.

    Such a limit would lock the owner out while an attack lasts; so a
    network that authenticated for the alias before is trusted for it and
    not held back (its own network bucket still applies).  An owner on a
    new network waits like everyone else, with ``Retry-After``.

    :param max_trusted: (alias, network) pairs remembered at most.
    """

    def __init__(
        self,
        clock: IReactorTime,
        *,
        burst: int = 60,
        refill: float = 30.0,
        max_aliases: int = 10_000,
        max_trusted: int = 100_000,
    ) -> None:
        self.failures = EventLimiter(
            clock, burst=burst, refill=refill, max_clients=max_aliases, key=lambda alias: alias
        )
        self.max_trusted = max_trusted
        self._trusted: OrderedDict[tuple[str, str], None] = OrderedDict()

    def retry_after(self, alias: str, host: str) -> int | None:
        """
        Whole seconds before ``host`` may try a secret for ``alias`` again,
        or ``None`` if it may now.
        """
        if (alias, client_key(host)) in self._trusted:
            return None
        return self.failures.retry_after(alias)

    def failed(self, alias: str) -> None:
        """Count one failed authentication for ``alias``."""
        self.failures.count(alias)

    def succeeded(self, alias: str, host: str) -> None:
        """``host`` authenticated for ``alias``: trust its network for it."""
        pair = (alias, client_key(host))
        self._trusted[pair] = None
        self._trusted.move_to_end(pair)
        while len(self._trusted) > self.max_trusted:
            self._trusted.popitem(last=False)
